// Group commit on a real etcd cluster: changes to many elections made at once share
// transactions (fewer revisions than changes) and each lands exactly as it would alone;
// when another server changes one of them meanwhile, the shared transaction fails and
// each change is decided again on its own, none lost, none applied twice.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Decision, Election } from "../../server/election/change.js";
import { apply } from "../../server/election/rules.js";
import { EtcdStore } from "../../server/store/etcd.js";
import { type EtcdCluster, startEtcd } from "../support/etcd.js";

let cluster: EtcdCluster;
before(async () => {
  cluster = await startEtcd();
});
after(() => cluster?.stop());

let prefixes = 0;
async function open(prefix: string, maxTxnOps?: number): Promise<EtcdStore> {
  const store = await EtcdStore.open({
    maxElections: 1000,
    maxSessions: 10,
    etcd: { endpoints: cluster.endpoints, prefix, timeoutMs: 10_000, maxTxnOps },
  });
  after(() => store.close());
  return store;
}

const enter =
  (candidate: string) =>
  (e: Election): Decision => {
    const outcome = apply(e.state, { kind: "enter", candidate }, { maxCandidates: 100 });
    if (!outcome.ok || !outcome.changed) return outcome;
    return { ...outcome, what: { cause: "enter", candidates: [candidate] } };
  };

/** The mod revisions of the prefix's election keys. */
async function revisions(store: EtcdStore, names: readonly string[]): Promise<string[]> {
  return Promise.all(
    names.map(async (name) => {
      const read = await store.client.kv.range({ key: store.keys.election(name) });
      return read.kvs[0]?.mod_revision ?? "";
    }),
  );
}

describe("group commit on etcd", () => {
  it("commits changes to many elections together, each exactly as alone", async () => {
    const store = await open(`/group-${prefixes++}/`);
    const names = Array.from({ length: 60 }, (_, i) => `g${i}`);
    for (const name of names) await store.create(name, []);
    // Three candidates per election, all at once: changes of one election go one after the
    // other, changes of different ones together.
    const results = await Promise.all(
      names.flatMap((name) => ["a", "b", "c"].map((c) => store.update(name, enter(c)))),
    );
    assert.ok(results.every((r) => r?.ok && r.changed));
    for (const name of names) {
      const e = await store.get(name);
      assert.deepEqual([e?.state.leader, ...(e?.state.candidates ?? [])].sort(), ["a", "b", "c"]);
      assert.equal(e?.version, 4);
      const history = await store.history(name, { limit: 10, order: "oldest" });
      assert.deepEqual(
        history.map((r) => r.version),
        [1, 2, 3, 4],
      );
    }
    // The last changes of the 60 elections: far fewer revisions than elections.
    const distinct = new Set(await revisions(store, names)).size;
    assert.ok(distinct < names.length / 2, `${distinct} revisions for ${names.length} elections`);
  });

  it("keeps each transaction within --etcd-max-txn-ops", async () => {
    // Two operations per change here (compare, put) and two more for the history record and
    // its trimming: 4 fits one change per transaction, so nothing is shared.
    const prefix = `/group-${prefixes++}/`;
    const store = await open(prefix, 4);
    const names = Array.from({ length: 20 }, (_, i) => `m${i}`);
    for (const name of names) await store.create(name, []);
    await Promise.all(names.map((name) => store.update(name, enter("a"))));
    const distinct = new Set(await revisions(store, names)).size;
    assert.equal(distinct, names.length, "one change per transaction");
  });

  it("decides each change again when another server changed one of them meanwhile", async () => {
    const prefix = `/group-${prefixes++}/`;
    const one = await open(prefix);
    const other = await open(prefix);
    const names = Array.from({ length: 30 }, (_, i) => `r${i}`);
    for (const name of names) await one.create(name, []);
    // Both servers enter a candidate of their own in every election at once: the shared
    // transactions of each find elections the other just changed.
    const results = await Promise.all(
      names.flatMap((name) => [one.update(name, enter("x")), other.update(name, enter("y"))]),
    );
    assert.ok(results.every((r) => r?.ok && r.changed));
    for (const name of names) {
      const e = await one.get(name);
      assert.deepEqual([e?.state.leader, ...(e?.state.candidates ?? [])].sort(), ["x", "y"]);
      assert.equal(e?.version, 3);
    }
  });
});
