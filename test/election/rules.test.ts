// Example-based tests of the election rules (server/election/rules.ts): one case per rule
// and per no-op, the worked example of the contract, the candidate limit, release, and the
// purity of apply (it never mutates the state it is given).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  apply,
  type ElectionState,
  emptyElection,
  type Operation,
  type Outcome,
  type RuleLimits,
} from "../../server/election/rules.js";
import { deepFreeze } from "../support/freeze.js";

const limits: RuleLimits = { maxCandidates: 10 };

/** Deeply frozen state, so any mutation by apply throws in strict-mode ESM. */
function state(term: bigint, leader: string, candidates: string[]): ElectionState {
  return deepFreeze({ term, leader, candidates });
}

function expectChanged(outcome: Outcome): ElectionState {
  assert.equal(outcome.ok, true, "expected ok:true");
  if (!outcome.ok) throw new Error("unreachable");
  assert.equal(outcome.changed, true, "expected changed:true");
  return outcome.state;
}

/** Asserts the operation is a no-op: ok, changed:false and the very same state back. */
function expectNoop(input: ElectionState, op: Operation, lim: RuleLimits = limits): void {
  const outcome = apply(input, op, lim);
  assert.equal(outcome.ok, true, "expected ok:true");
  if (!outcome.ok) throw new Error("unreachable");
  assert.equal(outcome.changed, false, "expected changed:false");
  assert.deepEqual(outcome.state, input);
  assert.equal(outcome.state, input, "a no-op returns the current state itself");
}

function run(input: ElectionState, op: Operation, lim: RuleLimits = limits): ElectionState {
  return expectChanged(apply(input, op, lim));
}

const enter = (candidate: string): Operation => ({ kind: "enter", candidate });
const withdraw = (candidate: string): Operation => ({ kind: "withdraw", candidate });
const evict = (candidate: string): Operation => ({ kind: "evict", candidate });
const anoint = (candidate: string): Operation => ({ kind: "anoint", candidate });
const promote = (candidate: string): Operation => ({ kind: "promote", candidate });
const demote = (candidate: string): Operation => ({ kind: "demote", candidate });
const release = (...candidates: string[]): Operation => ({ kind: "release", candidates });

describe("emptyElection", () => {
  it("starts at term 0 with no leader and an empty queue", () => {
    assert.deepEqual(emptyElection, { term: 0n, leader: "", candidates: [] });
  });
});

describe("Enter", () => {
  it("Enter with no leader makes the candidate leader with term+1", () => {
    assert.deepEqual(run(state(0n, "", []), enter("a")), state(1n, "a", []));
  });

  it("Enter with no leader after earlier terms still grows the term by exactly 1", () => {
    assert.deepEqual(run(state(7n, "", []), enter("a")), state(8n, "a", []));
  });

  it("Enter with a leader appends the candidate to the end of the queue, term unchanged", () => {
    assert.deepEqual(run(state(3n, "a", ["b", "c"]), enter("d")), state(3n, "a", ["b", "c", "d"]));
  });

  it("Enter of the current leader is a no-op", () => {
    expectNoop(state(3n, "a", ["b"]), enter("a"));
  });

  it("Enter of an already queued candidate is a no-op (no duplicate, no move)", () => {
    expectNoop(state(3n, "a", ["b", "c"]), enter("b"));
  });
});

describe("Withdraw and Evict", () => {
  for (const [name, op] of [
    ["Withdraw", withdraw],
    ["Evict", evict],
  ] as const) {
    it(`${name} of the leader makes the queue head leader with term+1`, () => {
      assert.deepEqual(run(state(4n, "a", ["b", "c"]), op("a")), state(5n, "b", ["c"]));
    });

    it(`${name} of the leader with an empty queue leaves no leader and keeps the term`, () => {
      assert.deepEqual(run(state(4n, "a", []), op("a")), state(4n, "", []));
    });

    it(`${name} of a queued candidate removes it, keeping order and term`, () => {
      assert.deepEqual(run(state(4n, "a", ["b", "c", "d"]), op("c")), state(4n, "a", ["b", "d"]));
    });

    it(`${name} of the last queued candidate removes it`, () => {
      assert.deepEqual(run(state(4n, "a", ["b", "c"]), op("c")), state(4n, "a", ["b"]));
    });

    it(`${name} of an unknown candidate is a no-op`, () => {
      expectNoop(state(4n, "a", ["b"]), op("z"));
    });

    it(`${name} on an empty election is a no-op`, () => {
      expectNoop(state(4n, "", []), op("a"));
    });
  }
});

describe("Anoint", () => {
  it("Anoint of a queued candidate makes it leader with term+1 and queues the old leader first", () => {
    assert.deepEqual(
      run(state(2n, "a", ["b", "c", "d"]), anoint("c")),
      state(3n, "c", ["a", "b", "d"]),
    );
  });

  it("Anoint of the queue head makes it leader with term+1 and queues the old leader first", () => {
    assert.deepEqual(run(state(2n, "a", ["b", "c"]), anoint("b")), state(3n, "b", ["a", "c"]));
  });

  it("Anoint of the last queued candidate makes it leader and queues the old leader first", () => {
    assert.deepEqual(run(state(2n, "a", ["b", "c"]), anoint("c")), state(3n, "c", ["a", "b"]));
  });

  it("Anoint of the leader is a no-op", () => {
    expectNoop(state(2n, "a", ["b"]), anoint("a"));
  });

  it("Anoint of an unknown candidate is a no-op", () => {
    expectNoop(state(2n, "a", ["b"]), anoint("z"));
  });

  it("Anoint on an empty election is a no-op", () => {
    expectNoop(state(2n, "", []), anoint("a"));
  });
});

describe("Promote", () => {
  it("Promote of the queue head makes it leader with term+1 and queues the old leader first", () => {
    assert.deepEqual(run(state(5n, "a", ["b", "c"]), promote("b")), state(6n, "b", ["a", "c"]));
  });

  it("Promote of a candidate further back swaps it with the one just ahead, term unchanged", () => {
    assert.deepEqual(
      run(state(5n, "a", ["b", "c", "d"]), promote("d")),
      state(5n, "a", ["b", "d", "c"]),
    );
  });

  it("Promote of the second queued candidate swaps it with the queue head", () => {
    assert.deepEqual(run(state(5n, "a", ["b", "c"]), promote("c")), state(5n, "a", ["c", "b"]));
  });

  it("Promote of the leader is a no-op", () => {
    expectNoop(state(5n, "a", ["b"]), promote("a"));
  });

  it("Promote of an unknown candidate is a no-op", () => {
    expectNoop(state(5n, "a", ["b"]), promote("z"));
  });

  it("Promote on an empty election is a no-op", () => {
    expectNoop(state(5n, "", []), promote("a"));
  });
});

describe("Demote", () => {
  it("Demote of the leader makes the queue head leader with term+1 and puts the old leader at the head", () => {
    assert.deepEqual(run(state(6n, "a", ["b", "c"]), demote("a")), state(7n, "b", ["a", "c"]));
  });

  it("Demote of a queued candidate that is not last swaps it with the one just behind", () => {
    assert.deepEqual(
      run(state(6n, "a", ["b", "c", "d"]), demote("b")),
      state(6n, "a", ["c", "b", "d"]),
    );
  });

  it("Demote of a middle queued candidate swaps it with the one just behind", () => {
    assert.deepEqual(
      run(state(6n, "a", ["b", "c", "d"]), demote("c")),
      state(6n, "a", ["b", "d", "c"]),
    );
  });

  it("Demote of the leader with an empty queue is a no-op", () => {
    expectNoop(state(6n, "a", []), demote("a"));
  });

  it("Demote of the last queued candidate is a no-op", () => {
    expectNoop(state(6n, "a", ["b", "c"]), demote("c"));
  });

  it("Demote of an unknown candidate is a no-op", () => {
    expectNoop(state(6n, "a", ["b"]), demote("z"));
  });

  it("Demote on an empty election is a no-op", () => {
    expectNoop(state(6n, "", []), demote("a"));
  });
});

describe("Release", () => {
  it("Release of queued names removes them all, keeping the order of the rest and the term", () => {
    assert.deepEqual(
      run(state(3n, "a", ["b", "c", "d", "e"]), release("b", "d")),
      state(3n, "a", ["c", "e"]),
    );
  });

  it("Release of the leader makes the first remaining queued name leader with term+1 once", () => {
    assert.deepEqual(
      run(state(3n, "a", ["b", "c", "d", "e"]), release("a", "b", "d")),
      state(4n, "c", ["e"]),
    );
  });

  it("Release of the leader and the queue head does not expose the head as an interim leader", () => {
    // Sequential withdraws would go a -> b -> c (term+2); the atomic release goes a -> c (term+1).
    assert.deepEqual(run(state(3n, "a", ["b", "c"]), release("b", "a")), state(4n, "c", []));
  });

  it("Release of only the leader promotes the queue head with term+1", () => {
    assert.deepEqual(run(state(3n, "a", ["b", "c"]), release("a")), state(4n, "b", ["c"]));
  });

  it("Release of every name leaves no leader and keeps the term", () => {
    assert.deepEqual(run(state(3n, "a", ["b", "c"]), release("c", "a", "b")), state(3n, "", []));
  });

  it("Release ignores names that are not present", () => {
    assert.deepEqual(
      run(state(3n, "a", ["b", "c"]), release("x", "b", "y")),
      state(3n, "a", ["c"]),
    );
  });

  it("Release tolerates a name listed twice", () => {
    assert.deepEqual(run(state(3n, "a", ["b", "c"]), release("a", "a")), state(4n, "b", ["c"]));
  });

  it("Release of only unknown names is a no-op", () => {
    expectNoop(state(3n, "a", ["b"]), release("x", "y"));
  });

  it("Release of an empty list is a no-op", () => {
    expectNoop(state(3n, "a", ["b"]), release());
  });

  it("Release on an empty election is a no-op", () => {
    expectNoop(state(3n, "", []), release("a"));
  });
});

describe("worked example from a fresh election", () => {
  it("follows the contract step by step", () => {
    const steps: [Operation, ElectionState][] = [
      [enter("a"), state(1n, "a", [])],
      [enter("b"), state(1n, "a", ["b"])],
      [enter("c"), state(1n, "a", ["b", "c"])],
      [promote("c"), state(1n, "a", ["c", "b"])],
      [promote("c"), state(2n, "c", ["a", "b"])],
      [anoint("b"), state(3n, "b", ["c", "a"])],
      [withdraw("b"), state(4n, "c", ["a"])],
      [evict("c"), state(5n, "a", [])],
      [withdraw("a"), state(5n, "", [])],
    ];
    let current: ElectionState = deepFreeze({ ...emptyElection });
    for (const [op, expected] of steps) {
      const next = run(current, op);
      assert.deepEqual(next, expected, `after ${op.kind} ${JSON.stringify(op)}`);
      current = deepFreeze(next);
    }
  });
});

describe("candidate limit", () => {
  const small: RuleLimits = { maxCandidates: 3 };

  it("Enter of a new name at the limit is refused with the limit and state is unchanged", () => {
    const full = state(2n, "a", ["b", "c"]);
    const snapshot = structuredClone(full);
    assert.deepEqual(apply(full, enter("d"), small), { ok: false, limit: "candidates", max: 3 });
    assert.deepEqual(full, snapshot);
  });

  it("Enter of the leader at the limit is a no-op, not a refusal", () => {
    expectNoop(state(2n, "a", ["b", "c"]), enter("a"), small);
  });

  it("Enter of a queued name at the limit is a no-op, not a refusal", () => {
    expectNoop(state(2n, "a", ["b", "c"]), enter("c"), small);
  });

  it("Enter just below the limit is accepted and reaches the limit", () => {
    assert.deepEqual(run(state(2n, "a", ["b"]), enter("c"), small), state(2n, "a", ["b", "c"]));
  });

  it("Enter is accepted again after a withdraw frees a place", () => {
    const freed = run(state(2n, "a", ["b", "c"]), withdraw("b"), small);
    assert.deepEqual(run(deepFreeze(freed), enter("d"), small), state(2n, "a", ["c", "d"]));
  });

  it("a limit of 1 admits a leader and refuses any queued candidate", () => {
    const one: RuleLimits = { maxCandidates: 1 };
    const led = run(state(0n, "", []), enter("a"), one);
    assert.deepEqual(led, state(1n, "a", []));
    assert.deepEqual(apply(deepFreeze(led), enter("b"), one), {
      ok: false,
      limit: "candidates",
      max: 1,
    });
  });
});

describe("purity", () => {
  const input = (): ElectionState => state(9n, "a", ["b", "c", "d"]);
  const ops: Operation[] = [
    enter("e"),
    enter("a"),
    withdraw("a"),
    withdraw("c"),
    evict("a"),
    evict("d"),
    anoint("c"),
    promote("b"),
    promote("c"),
    demote("a"),
    demote("b"),
    demote("d"),
    release("a", "c"),
    release("b"),
    release("z"),
  ];

  for (const op of ops) {
    it(`apply never mutates its frozen input state (${op.kind} ${JSON.stringify(op)})`, () => {
      const frozen = input();
      const before = structuredClone(frozen);
      const outcome = apply(frozen, deepFreeze(op), limits);
      assert.equal(outcome.ok, true);
      assert.deepEqual(frozen, before);
    });
  }

  it("apply never mutates its input when refusing at the limit", () => {
    const frozen = input();
    const before = structuredClone(frozen);
    const outcome = apply(frozen, enter("e"), { maxCandidates: 4 });
    assert.equal(outcome.ok, false);
    assert.deepEqual(frozen, before);
  });

  it("a changed state does not share a mutable queue with the input", () => {
    const frozen = input();
    const next = run(frozen, promote("c"));
    assert.notEqual(next.candidates, frozen.candidates);
    assert.deepEqual(frozen.candidates, ["b", "c", "d"]);
  });
});
