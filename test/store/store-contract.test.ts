// The store seam's contract (server/store/store.ts), run against every implementation:
// creation, reads, serialised updates, listing, change order and sessions must behave the
// same whether elections live in memory, in the durable store or in a real three-member
// etcd cluster.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Decision, Election } from "../../server/election/change.js";
import { apply, type Operation } from "../../server/election/rules.js";
import { openDurableStore } from "../../server/store/durable.js";
import { EtcdStore, encodeSession } from "../../server/store/etcd.js";
import { createMemoryStore } from "../../server/store/memory.js";
import type { ElectionStore, LocalStore, StoreLimits } from "../../server/store/store.js";
import { type EtcdCluster, startEtcd } from "../support/etcd.js";
import { tempDir } from "../support/tempdir.js";

const limits = { maxCandidates: 5 };

interface Implementation {
  readonly name: string;
  open(limits: StoreLimits): Promise<ElectionStore>;
  /** Makes sessions exist where a store checks them before binding (etcd: leases). */
  sessions(store: ElectionStore, ids: readonly string[]): Promise<void>;
  /** Stores that keep session records for local timers. */
  readonly records?: (store: ElectionStore) => LocalStore;
}

let cluster: EtcdCluster | undefined;
let prefixes = 0;

const implementations: Implementation[] = [
  {
    name: "memory store",
    open: async (limits) => createMemoryStore(limits),
    sessions: async () => {},
    records: (store) => store as LocalStore,
  },
  {
    name: "durable store",
    open: async (limits) => openDurableStore({ dataDir: tempDir("contract"), ...limits }),
    sessions: async () => {},
    records: (store) => store as LocalStore,
  },
  {
    name: "etcd store",
    // Each test its own prefix on one cluster: as good as a fresh cluster, and faster.
    open: (limits) =>
      EtcdStore.open({
        ...limits,
        maxSessions: 100,
        etcd: {
          endpoints: (cluster as EtcdCluster).endpoints,
          prefix: `/contract-${prefixes++}/`,
          timeoutMs: 10_000,
        },
      }),
    async sessions(store, ids) {
      const etcd = store as EtcdStore;
      for (const id of ids) {
        const { ID } = await etcd.client.leaseClient.leaseGrant({ TTL: 60 });
        await etcd.client.kv.put({
          key: etcd.keys.session(id),
          value: encodeSession({ ttlMs: 60_000 }),
          lease: ID,
        });
      }
    },
  },
];

function rule(op: Operation, bind?: readonly [string, string]) {
  return (e: Election): Decision => {
    const outcome = apply(e.state, op, limits);
    if (!outcome.ok || !outcome.changed) return outcome;
    const what =
      op.kind === "release"
        ? { cause: "close" as const, candidates: op.candidates }
        : { cause: op.kind, candidates: [op.candidate] };
    return bind === undefined ? { ...outcome, what } : { ...outcome, what, bind };
  };
}

/** An election without its last change's description, to compare states. */
function state(election: Election | undefined) {
  if (!election) return election;
  const { change: _change, ...rest } = election;
  return rest;
}

const enter = (candidate: string, bind?: readonly [string, string]) =>
  rule({ kind: "enter", candidate }, bind);
const withdraw = (candidate: string) => rule({ kind: "withdraw", candidate });

for (const impl of implementations) {
  describe(`${impl.name} contract`, () => {
    if (impl.name === "etcd store") {
      before(async () => {
        cluster = await startEtcd();
      });
      after(() => cluster?.stop());
    }
    async function use(maxElections = 100, maxCandidatesTotal?: number): Promise<ElectionStore> {
      const store = await impl.open(
        maxCandidatesTotal === undefined ? { maxElections } : { maxElections, maxCandidatesTotal },
      );
      after(() => store.close());
      return store;
    }

    it("creates an election at term 0 with its tags and version 1", async () => {
      const store = await use();
      const result = await store.create("e", ["a", "b"]);
      assert.ok(result.ok);
      assert.equal(result.created, true);
      assert.deepEqual(state(result.election), {
        name: "e",
        tags: ["a", "b"],
        state: { term: 0n, leader: "", candidates: [] },
        owners: new Map(),
        version: 1,
      });
      assert.equal(result.election.change?.cause, "create");
      assert.deepEqual(state(await store.get("e")), state(result.election));
      assert.equal(store.size(), 1);
    });

    it("returns an existing election unchanged when it is created again", async () => {
      const store = await use();
      await store.create("e", ["first"]);
      await store.update("e", enter("a"));
      const again = await store.create("e", ["second"]);
      assert.ok(again.ok);
      assert.equal(again.created, false);
      assert.deepEqual(again.election.tags, ["first"]);
      assert.equal(again.election.state.leader, "a");
      assert.equal(again.election.version, 2);
    });

    it("refuses a new election beyond the elections limit", async () => {
      const store = await use(2);
      await store.create("a", []);
      await store.create("b", []);
      assert.deepEqual(await store.create("c", []), { ok: false, limit: "elections", max: 2 });
      const existing = await store.create("a", []);
      assert.ok(existing.ok);
      assert.equal(await store.get("c"), undefined);
    });

    it("answers undefined for an election that was never created", async () => {
      const store = await use();
      assert.equal(await store.get("nope"), undefined);
      assert.equal(await store.update("nope", enter("a")), undefined);
    });

    it("commits a change with version + 1 and keeps a no-op at the same version", async () => {
      const store = await use();
      await store.create("e", []);
      const changed = await store.update("e", enter("a"));
      assert.ok(changed?.ok);
      assert.equal(changed.changed, true);
      assert.deepEqual(changed.election.state, { term: 1n, leader: "a", candidates: [] });
      assert.equal(changed.election.version, 2);
      const same = await store.update("e", enter("a"));
      assert.ok(same?.ok);
      assert.equal(same.changed, false);
      assert.equal(same.election.version, 2);
      assert.deepEqual(await store.get("e"), changed.election);
    });

    it("passes a refused decision back and changes nothing", async () => {
      const store = await use();
      await store.create("e", []);
      for (const c of ["a", "b", "c", "d", "e"]) await store.update("e", enter(c));
      const refused = await store.update("e", enter("f"));
      assert.deepEqual(refused, { ok: false, limit: "candidates", max: 5 });
      assert.equal((await store.get("e"))?.version, 6);
    });

    it("refuses a candidate past the total candidates limit, changing nothing, and lets withdrawals through", async () => {
      const store = await use(100, 3);
      await impl.sessions(store, ["s1"]);
      await store.create("x", []);
      await store.create("y", []);
      await store.update("x", enter("a"));
      await store.update("x", enter("b"));
      await store.update("y", enter("c", ["c", "s1"]));
      const refusal = { ok: false, limit: "candidatesTotal", max: 3 };
      assert.deepEqual(await store.update("y", enter("d", ["d", "s1"])), refusal);
      assert.deepEqual(await store.update("x", enter("d")), refusal);
      assert.deepEqual(state(await store.get("x")), {
        name: "x",
        tags: [],
        state: { term: 1n, leader: "a", candidates: ["b"] },
        owners: new Map(),
        version: 3,
      });
      const y = await store.get("y");
      assert.equal(y?.version, 2);
      assert.deepEqual(y?.owners, new Map([["c", "s1"]]));
      // What adds nobody still goes through: entering a present name, a new order.
      const again = await store.update("x", enter("b"));
      assert.ok(again?.ok && !again.changed);
      const promoted = await store.update("x", rule({ kind: "promote", candidate: "b" }));
      assert.ok(promoted?.ok && promoted.changed);
      // A withdrawal, or deleting an election, gives places back.
      await store.update("x", withdraw("a"));
      const d = await store.update("y", enter("d"));
      assert.ok(d?.ok && d.changed);
      await store.delete("y");
      for (const name of ["e", "f"]) {
        const entered = await store.update("x", enter(name));
        assert.ok(entered?.ok && entered.changed, name);
      }
      assert.deepEqual(await store.update("x", enter("g")), refusal);
      assert.deepEqual((await store.get("x"))?.state.candidates, ["e", "f"]);
    });

    it("counts changes not yet committed against the total candidates limit", async () => {
      const store = await use(100, 3);
      const names = ["p", "q", "r", "s", "t"];
      for (const name of names) await store.create(name, []);
      const results = await Promise.all(names.map((name) => store.update(name, enter("c"))));
      // Which three get the places is up to the store (a cluster serialises them in its own
      // order); that exactly three do, and the others change nothing, is not.
      assert.equal(results.filter((r) => r?.ok).length, 3);
      const leaders = await Promise.all(
        names.map(async (name) => (await store.get(name))?.state.leader),
      );
      assert.deepEqual(
        leaders,
        results.map((r) => (r?.ok ? "c" : "")),
      );
    });

    it("serialises concurrent updates of one election so none is lost", async () => {
      const store = await use();
      await store.create("e", []);
      const names = Array.from({ length: 40 }, (_, i) => `c${i}`);
      const big = { maxCandidates: 100 };
      await Promise.all(
        names.map((c) =>
          store.update("e", (e) => apply(e.state, { kind: "enter", candidate: c }, big)),
        ),
      );
      // Every call applied once, in some serial order (call order on a single server).
      const e = await store.get("e");
      assert.deepEqual([e?.state.leader, ...(e?.state.candidates ?? [])].sort(), [...names].sort());
      assert.equal(e?.version, 41);
    });

    it("keeps session bindings only for candidates still present", async () => {
      const store = await use();
      await impl.sessions(store, ["s1", "s2"]);
      await store.create("e", []);
      await store.update("e", enter("a", ["a", "s1"]));
      await store.update("e", enter("b", ["b", "s2"]));
      assert.deepEqual(
        (await store.get("e"))?.owners,
        new Map([
          ["a", "s1"],
          ["b", "s2"],
        ]),
      );
      await store.update("e", withdraw("a"));
      assert.deepEqual((await store.get("e"))?.owners, new Map([["b", "s2"]]));
    });

    it("lists elections in name order by prefix, cursor, tag and limit", async () => {
      const store = await use();
      for (const [name, tags] of [
        ["svc/b", ["x"]],
        ["svc/a", []],
        ["other", ["x"]],
        ["svc/c", ["x"]],
      ] as const) {
        await store.create(name, tags);
      }
      const names = (es: Election[]) => es.map((e) => e.name);
      assert.deepEqual(names(await store.list({ limit: 10 })), [
        "other",
        "svc/a",
        "svc/b",
        "svc/c",
      ]);
      assert.deepEqual(names(await store.list({ prefix: "svc/", limit: 10 })), [
        "svc/a",
        "svc/b",
        "svc/c",
      ]);
      assert.deepEqual(names(await store.list({ after: "svc/a", limit: 10 })), ["svc/b", "svc/c"]);
      assert.deepEqual(names(await store.list({ tag: "x", limit: 2 })), ["other", "svc/b"]);
    });

    it("tells subscribers every creation and change once, in commit order", async () => {
      const store = await use();
      const heard: string[] = [];
      const stop = store.subscribe((e) => heard.push(`${e.name}@${e.version}:${e.state.leader}`));
      // Calls on one election in sequence, the two elections side by side: which
      // election's change commits first is up to the store, each one's order is not.
      await Promise.all([
        (async () => {
          await store.create("x", []);
          await store.update("x", enter("a"));
          await store.update("x", withdraw("a"));
          await store.update("x", enter("a")); // changes again: a is back
        })(),
        (async () => {
          await store.create("y", []);
          await store.update("y", enter("b"));
          await store.update("y", enter("b")); // no-op: heard nothing
        })(),
      ]);
      stop();
      await store.update("y", withdraw("b"));
      const of = (name: string) => heard.filter((h) => h.startsWith(`${name}@`));
      assert.deepEqual(of("x"), ["x@1:", "x@2:a", "x@3:", "x@4:a"]);
      assert.deepEqual(of("y"), ["y@1:", "y@2:b"]);
      assert.equal(heard.length, 6);
    });

    it("deletes an election, frees its place, and continues its term and version when the name is created again", async () => {
      const store = await use(2);
      await impl.sessions(store, ["s1"]);
      await store.create("e", ["t"]);
      await store.create("f", []);
      await store.update("e", enter("a", ["a", "s1"]));
      await store.update("e", enter("b"));
      await store.update("e", withdraw("a")); // term 2, leader b
      const heard: string[] = [];
      store.subscribe((e) => heard.push(`${e.name}@${e.version}${e.deleted ? ":deleted" : ""}`));
      const last = await store.delete("e");
      assert.deepEqual(last?.state, { term: 2n, leader: "b", candidates: [] });
      assert.equal(last?.deleted, true);
      assert.equal(last?.version, 5);
      assert.deepEqual(last?.owners, new Map());
      assert.equal(await store.get("e"), undefined);
      assert.equal(await store.delete("e"), undefined);
      assert.equal(store.size(), 1);
      assert.deepEqual(
        (await store.list({ limit: 10 })).map((e) => e.name),
        ["f"],
      );
      assert.deepEqual(
        (await store.list({ tag: "t", limit: 10 })).map((e) => e.name),
        [],
      );
      // Its place is free again (the limit is 2), and its term goes on from 2.
      const again = await store.create("e", []);
      assert.ok(again.ok && again.created);
      assert.deepEqual(again.election.state, { term: 2n, leader: "", candidates: [] });
      assert.equal(again.election.version, 6);
      const next = await store.update("e", enter("c"));
      assert.ok(next?.ok);
      assert.equal(next.election.state.term, 3n);
      assert.deepEqual(heard, ["e@5:deleted", "e@6", "e@7"]);
    });

    it("takes names such as __proto__ and constructor as data: bindings, tags and listing", async () => {
      const store = await use();
      const names = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];
      await impl.sessions(store, ["s-proto", ...names.map((name) => `session-${name}`)]);
      for (const name of names) {
        await store.create(name, [name]);
        await store.update(name, enter(name, [name, `session-${name}`]));
        await store.update(name, enter("__proto__", ["__proto__", "s-proto"]));
      }
      for (const name of names) {
        const e = await store.get(name);
        assert.equal(e?.name, name);
        assert.equal(e?.state.leader, name);
        assert.equal(e?.owners.get(name), `session-${name}`);
        assert.equal(
          e?.owners.get("__proto__"),
          name === "__proto__" ? `session-${name}` : "s-proto",
        );
        assert.deepEqual(
          (await store.list({ tag: name, limit: 10 })).map((x) => x.name),
          [name],
        );
      }
      assert.deepEqual(
        (await store.list({ limit: 10 })).map((e) => e.name),
        [...names].sort(),
      );
    });

    it("lists by tag while the elections carrying it come and go", async () => {
      const store = await use();
      const tagged = async (tag: string, after?: string) =>
        (await store.list({ tag, limit: 10, ...(after === undefined ? {} : { after }) })).map(
          (e) => e.name,
        );
      await store.create("m", ["t", "solo"]);
      assert.deepEqual(await tagged("t"), ["m"]);
      assert.deepEqual(await tagged("t", "m"), []);
      assert.deepEqual(await tagged("t", "a"), ["m"]);
      const one = store.snapshot({ tag: "t" });
      await store.create("b", ["t"]);
      await store.create("z", ["t", "t"]);
      assert.deepEqual(await tagged("t"), ["b", "m", "z"]);
      const three = store.snapshot({ tag: "t" });
      await store.delete("m");
      await store.delete("z");
      assert.deepEqual(await tagged("t"), ["b"]);
      assert.deepEqual(await tagged("solo"), []);
      await store.delete("b");
      assert.deepEqual(await tagged("t"), []);
      await store.create("b", ["t"]);
      assert.deepEqual(await tagged("t"), ["b"]);
      assert.deepEqual(
        [...one.scan({})].map((e) => e.name),
        ["m"],
      );
      assert.deepEqual(
        [...three.scan({ after: "b" })].map((e) => e.name),
        ["m", "z"],
      );
    });

    it("gives a snapshot that stays as it was while the elections change", async () => {
      const store = await use();
      await store.create("s/a", []);
      await store.create("s/b", ["x"]);
      const all = store.snapshot({ prefix: "s/" });
      const tagged = store.snapshot({ tag: "x" });
      await store.update("s/a", enter("new"));
      await store.create("s/c", ["x"]);
      await store.delete("s/b");
      assert.deepEqual(
        [...all.scan({})].map((e) => [e.name, e.state.leader]),
        [
          ["s/a", ""],
          ["s/b", ""],
        ],
      );
      assert.deepEqual(
        [...all.scan({ after: "s/a" })].map((e) => e.name),
        ["s/b"],
      );
      assert.deepEqual(
        [...tagged.scan({})].map((e) => e.name),
        ["s/b"],
      );
    });

    it("keeps every change in the election's history, a page at a time, oldest or newest first", async () => {
      const store = await use();
      const before = Date.now();
      await store.create("h", []);
      await store.update("h", enter("a"));
      await store.update("h", enter("b"));
      await store.update("h", enter("b")); // no change: no record
      await store.update("h", withdraw("a"));
      const all = await store.history("h", { limit: 10, order: "oldest" });
      assert.deepEqual(
        all.map((r) => [r.version, r.cause, r.candidates, r.before, r.after]),
        [
          [1, "create", [], { term: 0n, leader: "" }, { term: 0n, leader: "" }],
          [2, "enter", ["a"], { term: 0n, leader: "" }, { term: 1n, leader: "a" }],
          [3, "enter", ["b"], { term: 1n, leader: "a" }, { term: 1n, leader: "a" }],
          [4, "withdraw", ["a"], { term: 1n, leader: "a" }, { term: 2n, leader: "b" }],
        ],
      );
      assert.ok(all.every((r) => r.at >= before && r.at <= Date.now()));
      const page = (from: number | undefined, order: "oldest" | "newest") =>
        store
          .history("h", { ...(from === undefined ? {} : { from }), limit: 2, order })
          .then((records) => records.map((r) => r.version));
      assert.deepEqual(await page(undefined, "oldest"), [1, 2]);
      assert.deepEqual(await page(2, "oldest"), [3, 4]);
      assert.deepEqual(await page(4, "oldest"), []);
      assert.deepEqual(await page(undefined, "newest"), [4, 3]);
      assert.deepEqual(await page(3, "newest"), [2, 1]);
      assert.deepEqual(await page(1, "newest"), []);
      assert.deepEqual(await store.history("never", { limit: 10, order: "oldest" }), []);
    });

    it("keeps the last changes up to its limit, and only the deletion of a deleted election", async () => {
      const store = await impl.open({ maxElections: 10, historyPerElection: 3 });
      after(() => store.close());
      await store.create("h", []);
      for (const name of ["a", "b", "c", "d"]) await store.update("h", enter(name));
      const versions = async () =>
        (await store.history("h", { limit: 10, order: "oldest" })).map((r) => r.version);
      assert.deepEqual(await versions(), [3, 4, 5]);
      await store.delete("h");
      const deleted = await store.history("h", { limit: 10, order: "oldest" });
      assert.deepEqual(
        deleted.map((r) => [r.version, r.cause, r.candidates, r.before]),
        [[6, "election-deleted", ["a", "b", "c", "d"], { term: 1n, leader: "a" }]],
      );
      await store.create("h", []);
      assert.deepEqual(await versions(), [6, 7]);
    });

    it("keeps no history with HISTORY_PER_ELECTION 0", async () => {
      const store = await impl.open({ maxElections: 10, historyPerElection: 0 });
      after(() => store.close());
      await store.create("h", []);
      await store.update("h", enter("a"));
      assert.deepEqual(await store.history("h", { limit: 10, order: "oldest" }), []);
      await store.delete("h");
      assert.deepEqual(await store.history("h", { limit: 10, order: "oldest" }), []);
    });

    const { records } = impl;
    // Only stores whose sessions run on this server's timers keep session records.
    if (records) {
      it("persists, replaces and deletes sessions", async () => {
        const store = records(await use());
        await store.putSession({ id: "s1", ttlMs: 5000 });
        await store.putSession({ id: "s2", ttlMs: 1000 });
        await store.putSession({ id: "s1", ttlMs: 7000 });
        await store.deleteSession("s2");
        await store.deleteSession("never-existed");
        assert.deepEqual(await store.listSessions(), [{ id: "s1", ttlMs: 7000 }]);
      });
    }
  });
}
