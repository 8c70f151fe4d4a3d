// What only the durable store promises: everything comes back after reopening, terms are
// kept exactly as uint64, and nothing that is not yet committed is ever shown.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import type { Decision, Election } from "../../server/election/change.js";
import { apply, type Operation } from "../../server/election/rules.js";
import { ElectdError } from "../../server/errors.js";
import { type CommitFailure, DATA_FILE, openDurableStore } from "../../server/store/durable.js";
import type { LocalStore } from "../../server/store/store.js";
import { tempDir } from "../support/tempdir.js";

const limits = { maxCandidates: 100 };

function rule(op: Operation, bind?: readonly [string, string]) {
  return (e: Election): Decision => {
    const outcome = apply(e.state, op, limits);
    if (!outcome.ok || !outcome.changed || bind === undefined) return outcome;
    return { ...outcome, bind };
  };
}

function directory(): string {
  return tempDir("durable");
}

function open(dataDir: string): LocalStore {
  return openDurableStore({ dataDir, maxElections: 1000 });
}

describe("durable store", () => {
  it("brings back elections, tags, leaders, queues, owners, versions and sessions on reopen", async () => {
    const dataDir = directory();
    const first = open(dataDir);
    await first.create("e", ["team:a", "zone:1"]);
    await first.create("f", []);
    await first.update("e", rule({ kind: "enter", candidate: "a" }, ["a", "s1"]));
    await first.update("e", rule({ kind: "enter", candidate: "b" }));
    await first.update("e", rule({ kind: "enter", candidate: "c" }, ["c", "s2"]));
    await first.update("e", rule({ kind: "promote", candidate: "b" }));
    await first.putSession({ id: "s1", ttlMs: 10_000 });
    await first.putSession({ id: "s2", ttlMs: 3_000 });
    await first.deleteSession("s2");
    // The last change's description is history's, not the election's: read back from there.
    const stateOf = (e: Election | undefined) => {
      if (!e) return e;
      const { change: _change, ...rest } = e;
      return rest;
    };
    const before = [stateOf(await first.get("e")), stateOf(await first.get("f"))];
    const history = await first.history("e", { limit: 10, order: "oldest" });
    assert.equal(history.length, 5);
    await first.close();

    const second = open(dataDir);
    after(() => second.close());
    assert.deepEqual([await second.get("e"), await second.get("f")], before);
    assert.deepEqual(await second.history("e", { limit: 10, order: "oldest" }), history);
    assert.deepEqual((await second.get("e"))?.state, {
      term: 2n,
      leader: "b",
      candidates: ["a", "c"],
    });
    assert.deepEqual(await second.listSessions(), [{ id: "s1", ttlMs: 10_000 }]);
    assert.equal(second.size(), 2);
  });

  it("counts the candidates it loads against the total candidates limit", async () => {
    const dataDir = directory();
    const first = open(dataDir);
    await first.create("e", []);
    for (const c of ["a", "b", "c"]) await first.update("e", rule({ kind: "enter", candidate: c }));
    await first.close();
    // Started again with a lower limit: what is there stays and can leave; nobody joins.
    const second = openDurableStore({ dataDir, maxElections: 1000, maxCandidatesTotal: 2 });
    after(() => second.close());
    assert.deepEqual(await second.update("e", rule({ kind: "enter", candidate: "d" })), {
      ok: false,
      limit: "candidatesTotal",
      max: 2,
    });
    await second.update("e", rule({ kind: "withdraw", candidate: "a" }));
    assert.equal((await second.update("e", rule({ kind: "enter", candidate: "d" })))?.ok, false);
    await second.update("e", rule({ kind: "withdraw", candidate: "b" }));
    const entered = await second.update("e", rule({ kind: "enter", candidate: "d" }));
    assert.ok(entered?.ok && entered.changed);
    assert.deepEqual((await second.get("e"))?.state, { term: 3n, leader: "c", candidates: ["d"] });
  });

  it("keeps a deleted election's term across a restart, also when deleted and created in one commit", async () => {
    const dataDir = directory();
    const first = open(dataDir);
    await first.create("gone", []);
    await first.update("gone", rule({ kind: "enter", candidate: "a" }));
    await first.update("gone", rule({ kind: "enter", candidate: "b" }));
    await first.update("gone", rule({ kind: "withdraw", candidate: "a" })); // term 2
    await first.create("flip", []);
    await first.update("flip", rule({ kind: "enter", candidate: "a" })); // term 1
    // In one event-loop turn, so in one batch: deleted, created again, deleted again.
    await Promise.all([first.delete("gone"), first.delete("flip"), first.create("flip", [])]);
    await Promise.all([first.delete("flip"), first.create("brief", []), first.delete("brief")]);
    await first.close();

    const second = open(dataDir);
    after(() => second.close());
    assert.equal(second.size(), 0);
    assert.deepEqual(await second.list({ limit: 10 }), []);
    const gone = await second.create("gone", []);
    assert.ok(gone.ok);
    assert.equal(gone.election.state.term, 2n);
    assert.equal(gone.election.version, 6);
    const flip = await second.create("flip", []);
    assert.ok(flip.ok);
    assert.equal(flip.election.state.term, 1n);
    const brief = await second.create("brief", []);
    assert.ok(brief.ok);
    assert.equal(brief.election.version, 3);
  });

  it("keeps a term beyond 2^53 and up to 2^64-1 exactly", async () => {
    const dataDir = directory();
    const first = open(dataDir);
    await first.create("e", []);
    const top = 2n ** 64n - 2n;
    await first.update("e", () => ({
      ok: true,
      changed: true,
      state: { term: top, leader: "", candidates: [] },
    }));
    await first.update("e", rule({ kind: "enter", candidate: "a" }));
    await first.update("e", rule({ kind: "withdraw", candidate: "a" }));
    await first.close();
    const second = open(dataDir);
    after(() => second.close());
    assert.equal((await second.get("e"))?.state.term, 2n ** 64n - 1n);
  });

  it("shows a change to readers and watchers only once it is committed", async () => {
    const store = open(directory());
    after(() => store.close());
    await store.create("e", []);
    const heard: bigint[] = [];
    store.subscribe((e) => heard.push(e.state.term));
    const pending = store.update("e", rule({ kind: "enter", candidate: "a" }));
    // Staged in this turn, committed when the turn ends: not visible yet.
    assert.equal((await store.get("e"))?.state.leader, "");
    assert.deepEqual(heard, []);
    await pending;
    assert.equal((await store.get("e"))?.state.leader, "a");
    assert.deepEqual(heard, [1n]);
  });

  it("answers a no-op on a staged state only after that state is committed", async () => {
    const store = open(directory());
    after(() => store.close());
    await store.create("e", []);
    const change = store.update("e", rule({ kind: "enter", candidate: "a" }));
    const noop = await store.update("e", rule({ kind: "enter", candidate: "a" }));
    assert.ok(noop?.ok);
    assert.equal(noop.changed, false);
    assert.equal(noop.election.state.term, 1n);
    // The term the no-op answered with is already what a reader sees.
    assert.equal((await store.get("e"))?.state.term, 1n);
    await change;
  });

  it("commits the changes of one turn together and resolves them all", async () => {
    const dataDir = directory();
    const store = open(dataDir);
    const names = Array.from({ length: 200 }, (_, i) => `e${i}`);
    await Promise.all(names.map((n) => store.create(n, [])));
    const results = await Promise.all(
      names.map((n) => store.update(n, rule({ kind: "enter", candidate: "a" }))),
    );
    assert.ok(results.every((r) => r?.ok && r.changed && r.election.state.term === 1n));
    await store.close();
    const again = open(dataDir);
    after(() => again.close());
    const listed = await again.list({ limit: 1000 });
    assert.equal(listed.length, 200);
    assert.ok(listed.every((e) => e.state.leader === "a" && e.version === 2));
  });

  it("refuses a change it could not save, shows none of it, and carries on from what is saved", async () => {
    const dataDir = directory();
    const failures: CommitFailure[] = [];
    const store = openDurableStore({
      dataDir,
      maxElections: 10,
      busyTimeoutMs: 20,
      onCommitError: (failure) => failures.push(failure),
    });
    after(() => store.close());
    await store.create("e", []);
    const heard: string[] = [];
    store.subscribe((e) => heard.push(e.state.leader));
    // An outside writer holds the file, so the next commit cannot happen.
    const outside = new Database(join(dataDir, DATA_FILE));
    outside.exec("BEGIN IMMEDIATE");
    try {
      const failed = store.update("e", rule({ kind: "enter", candidate: "a" }));
      const noop = store.update("e", rule({ kind: "enter", candidate: "a" }));
      await assert.rejects(failed, (error) => {
        assert.ok(error instanceof ElectdError);
        assert.equal(error.kind, "unavailable");
        // The caller learns why, but not where the server keeps its files.
        assert.equal(
          error.message,
          "the change could not be saved: the data file is locked by another process; retry",
        );
        return true;
      });
      // The no-op answered from the unsaved state, so it must fail too.
      await assert.rejects(noop, ElectdError);
      // The operator learns both, once for the one failed commit.
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.code, "SQLITE_BUSY");
      assert.equal(failures[0]?.file, join(dataDir, DATA_FILE));
      assert.match(
        failures[0]?.message ?? "",
        /to \/\S+\/electd\.db: SQLITE_BUSY: database is locked/,
      );
    } finally {
      outside.exec("ROLLBACK");
      outside.close();
    }
    assert.equal((await store.get("e"))?.state.leader, "");
    assert.deepEqual(heard, []);
    const next = await store.update("e", rule({ kind: "enter", candidate: "b" }));
    assert.ok(next?.ok);
    assert.deepEqual(next.election.state, { term: 1n, leader: "b", candidates: [] });
    assert.equal(next.election.version, 2);
    assert.deepEqual(heard, ["b"]);
  });

  it("refuses calls after it is closed", async () => {
    const store = open(directory());
    await store.create("e", []);
    await store.close();
    await assert.rejects(
      store.update("e", rule({ kind: "enter", candidate: "a" })),
      /shutting down/,
    );
  });
});
