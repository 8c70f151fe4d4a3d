// Model-based property tests of the election rules (server/election/rules.ts).
//
// The model is a deliberately naive reference written independently of rules.ts: the
// election is one array `line` where line[0] is the leader and line[1..] the queue, plus
// the term. Every rule is then a small array edit, and the term grows by one exactly when
// line[0] becomes a different (present) name.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import {
  apply,
  type ElectionState,
  emptyElection,
  type Operation,
  type Outcome,
  type RuleLimits,
} from "../../server/election/rules.js";
import { deepFreeze } from "../support/freeze.js";

const NAMES = ["a", "b", "c", "d", "e", "f"] as const;
const LIMITS: RuleLimits = { maxCandidates: 5 };

interface Model {
  line: string[];
  term: bigint;
}

interface Real {
  state: ElectionState;
}

type ModelResult = { refused: true } | { refused: false; line: string[]; term: bigint };

/** The reference: the next line and term for `op`, or refused at the candidate limit. */
function modelStep(line: readonly string[], term: bigint, op: Operation, max: number): ModelResult {
  const next = [...line];
  let grew = false;
  if (op.kind === "release") {
    const kept = next.filter((n) => !op.candidates.includes(n));
    const leaderGone = next.length > 0 && kept[0] !== next[0];
    return { refused: false, line: kept, term: leaderGone && kept.length > 0 ? term + 1n : term };
  }
  const c = op.candidate;
  const i = next.indexOf(c);
  const last = next.length - 1;
  switch (op.kind) {
    case "enter":
      if (i >= 0) break;
      if (next.length >= max) return { refused: true };
      next.push(c);
      grew = next.length === 1;
      break;
    case "withdraw":
    case "evict":
      if (i < 0) break;
      next.splice(i, 1);
      grew = i === 0 && next.length > 0;
      break;
    case "anoint":
      if (i <= 0) break;
      next.splice(i, 1);
      next.unshift(c);
      grew = true;
      break;
    case "promote":
      if (i <= 0) break;
      next[i] = next[i - 1] as string;
      next[i - 1] = c;
      grew = i === 1;
      break;
    case "demote":
      if (i < 0 || i === last) break;
      next[i] = next[i + 1] as string;
      next[i + 1] = c;
      grew = i === 0;
      break;
  }
  return { refused: false, line: next, term: grew ? term + 1n : term };
}

function toState(line: readonly string[], term: bigint): ElectionState {
  return { term, leader: line[0] ?? "", candidates: line.slice(1) };
}

function describeOp(op: Operation): string {
  return op.kind === "release"
    ? `release(${op.candidates.join(",")})`
    : `${op.kind}(${op.candidate})`;
}

let commandsRun = 0;

class OpCommand implements fc.Command<Model, Real> {
  constructor(readonly op: Operation) {}

  check(): boolean {
    return true; // every operation is legal in every state; no-ops are part of the contract
  }

  run(model: Model, real: Real): void {
    commandsRun++;
    const prev = deepFreeze(real.state);
    const outcome: Outcome = apply(prev, this.op, LIMITS);
    const expected = modelStep(model.line, model.term, this.op, LIMITS.maxCandidates);

    if (expected.refused) {
      assert.deepEqual(outcome, { ok: false, limit: "candidates", max: LIMITS.maxCandidates });
      assert.deepEqual(prev, toState(model.line, model.term), "refusal must not change state");
      return;
    }
    assert.equal(outcome.ok, true, `${this} should be accepted`);
    if (!outcome.ok) return;
    const next = outcome.state;

    // Agreement with the reference model.
    assert.deepEqual(
      { term: next.term, leader: next.leader, candidates: [...next.candidates] },
      toState(expected.line, expected.term),
      `${this} from ${JSON.stringify(toState(model.line, model.term), bigintJson)}`,
    );

    // Invariants.
    const all = next.leader === "" ? [...next.candidates] : [next.leader, ...next.candidates];
    assert.equal(new Set(all).size, all.length, "a name appears at most once");
    assert.ok(!next.candidates.includes(next.leader), "the leader is never queued");
    if (next.leader === "") assert.equal(next.candidates.length, 0, "no leader implies no queue");
    assert.ok(all.length <= LIMITS.maxCandidates, "never more than maxCandidates names");
    assert.ok(next.term >= prev.term, "term never decreases");
    if (next.leader !== prev.leader && next.leader !== "") {
      assert.equal(next.term, prev.term + 1n, "term +1 when a different name leads");
    } else {
      assert.equal(next.term, prev.term, "term unchanged unless a different name leads");
    }

    // `changed` is true iff the state differs; an unchanged outcome returns the same state.
    assert.equal(outcome.changed, !isDeepStrictEqual(prev, next), `changed flag of ${this}`);
    if (!outcome.changed) assert.equal(next, prev, "no-op returns the current state itself");

    real.state = next;
    model.line = expected.line;
    model.term = expected.term;
  }

  toString(): string {
    return describeOp(this.op);
  }
}

function bigintJson(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? `${value}n` : value;
}

const name = fc.constantFrom(...NAMES);
const candidateKinds = ["enter", "withdraw", "evict", "anoint", "promote", "demote"] as const;

const commandArbs = [
  // Enter three times over so elections fill up and reach the limit regularly.
  name.map((c) => new OpCommand({ kind: "enter", candidate: c })),
  name.map((c) => new OpCommand({ kind: "enter", candidate: c })),
  name.map((c) => new OpCommand({ kind: "enter", candidate: c })),
  ...candidateKinds.map((kind) => name.map((c) => new OpCommand({ kind, candidate: c }))),
  fc
    .array(fc.constantFrom(...NAMES, "zz"), { maxLength: 4 })
    .map((cs) => new OpCommand({ kind: "release", candidates: cs })),
];

describe("election rules against a reference model", () => {
  it("random command sequences agree with the model and keep every invariant", () => {
    commandsRun = 0;
    fc.assert(
      fc.property(fc.commands(commandArbs, { maxCommands: 60, size: "max" }), (cmds) => {
        const setup = () => ({
          model: { line: [], term: 0n } as Model,
          real: { state: emptyElection },
        });
        fc.modelRun(setup, cmds);
      }),
      { numRuns: 1000 },
    );
    // Make sure the property really exercised thousands of operations.
    assert.ok(commandsRun >= 10000, `only ${commandsRun} commands were run`);
  });
});

/** A valid state: unique names, leader first; terms arbitrary but non-negative. */
const validState = fc
  .tuple(
    fc.uniqueArray(name, { maxLength: LIMITS.maxCandidates }),
    fc.bigInt({ min: 0n, max: 1n << 64n }),
  )
  .map(([line, term]) => ({ line, term }));

/** Every operation the contract says leaves `line` unchanged. */
function noOpsFor(line: readonly string[]): Operation[] {
  const unknown = [...NAMES.filter((n) => !line.includes(n)), "zz"];
  const ops: Operation[] = [];
  for (const c of line) ops.push({ kind: "enter", candidate: c });
  for (const c of unknown) {
    for (const kind of ["withdraw", "evict", "anoint", "promote", "demote"] as const) {
      ops.push({ kind, candidate: c });
    }
  }
  ops.push({ kind: "release", candidates: [] });
  ops.push({ kind: "release", candidates: unknown });
  const leader = line[0];
  if (leader !== undefined) {
    ops.push({ kind: "anoint", candidate: leader });
    ops.push({ kind: "promote", candidate: leader });
    if (line.length === 1) ops.push({ kind: "demote", candidate: leader });
    else ops.push({ kind: "demote", candidate: line[line.length - 1] as string });
  }
  return ops;
}

describe("no-op operations", () => {
  it("applying a no-op returns changed:false and a state deep-equal to the input", () => {
    fc.assert(
      fc.property(
        validState.chain((s) => fc.tuple(fc.constant(s), fc.constantFrom(...noOpsFor(s.line)))),
        ([{ line, term }, op]) => {
          // Cross-check the chosen op against the model, then against rules.ts.
          const expected = modelStep(line, term, op, LIMITS.maxCandidates);
          assert.ok(!expected.refused);
          assert.deepEqual(toState(expected.line, expected.term), toState(line, term));

          const input = deepFreeze(toState(line, term));
          const outcome = apply(input, deepFreeze(op), LIMITS);
          assert.deepEqual(outcome, { ok: true, state: toState(line, term), changed: false });
          if (outcome.ok) assert.equal(outcome.state, input);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
