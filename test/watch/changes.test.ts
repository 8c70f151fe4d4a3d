// The watch of every election (WatchHub.changes, behind WatchElections): the snapshot comes
// first and is consistent with the feed (nothing lost or repeated around it), the filters
// apply, a slow reader gets one latest state per election and, past its buffer, a fresh
// snapshot instead; deletions are named; the watch is released the moment its client
// leaves, even while the stream is suspended waiting for the client to read.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ElectionStore } from "../../server/store/store.js";
import type { DirectoryBatch } from "../../server/watch/hub.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--max-watches", "2", "--watch-elections-buffer", "5"]);
const { hub, store } = server;

/** Commits a leader change: one new version of the election. */
function lead(target: ElectionStore, name: string, leader: string) {
  return target.update(name, (e) => ({
    ok: true,
    changed: true,
    state: { ...e.state, term: e.state.term + 1n, leader },
  }));
}

const summary = (batch: DirectoryBatch | undefined) =>
  (batch?.elections ?? []).map((e) => [e.name, e.state.leader, e.version]);

describe("the watch of every election", () => {
  it("sends the snapshot first, marked reset and complete, then only later changes", async () => {
    const controller = new AbortController();
    await store.create("first/a", []);
    await lead(store, "first/a", "before");
    const feed = hub.changes({ prefix: "first/" }, controller.signal, 100);
    try {
      const snapshot = (await feed.next()).value as DirectoryBatch;
      assert.deepEqual(summary(snapshot), [["first/a", "before", 2]]);
      assert.equal(snapshot.reset, true);
      assert.equal(snapshot.snapshotComplete, true);
      await store.create("other/x", []);
      await lead(store, "first/a", "after");
      const change = (await feed.next()).value as DirectoryBatch;
      assert.deepEqual(summary(change), [["first/a", "after", 3]]);
      assert.equal(change.reset, false);
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("pages the snapshot in name order; only the first page is reset, only the last complete", async () => {
    const controller = new AbortController();
    for (const n of ["p/c", "p/a", "p/e", "p/b", "p/d"]) await store.create(n, []);
    const feed = hub.changes({ prefix: "p/" }, controller.signal, 2);
    try {
      const pages: DirectoryBatch[] = [];
      for (let i = 0; i < 3; i++) pages.push((await feed.next()).value as DirectoryBatch);
      assert.deepEqual(
        pages.map((p) => [p.elections.map((e) => e.name), p.reset, p.snapshotComplete]),
        [
          [["p/a", "p/b"], true, false],
          [["p/c", "p/d"], false, false],
          [["p/e"], false, true],
        ],
      );
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("stops paging its snapshot once the watch is released, even if asked for more", async () => {
    const controller = new AbortController();
    for (const n of ["stop/a", "stop/b", "stop/c"]) await store.create(n, []);
    const feed = hub.changes({ prefix: "stop/" }, controller.signal, 1);
    const first = (await feed.next()).value as DirectoryBatch;
    assert.deepEqual(
      first.elections.map((e) => e.name),
      ["stop/a"],
    );
    // The client is gone; a transport may still ask for the next message.
    controller.abort();
    assert.equal(hub.size, 0);
    assert.equal((await feed.next()).done, true);
  });

  it("follows one election by exact name, not the others its name prefixes", async () => {
    const controller = new AbortController();
    await store.create("exact", []);
    await store.create("exact-1", []);
    const feed = hub.changes({ name: "exact" }, controller.signal, 100);
    try {
      assert.deepEqual(summary((await feed.next()).value as DirectoryBatch), [["exact", "", 1]]);
      await lead(store, "exact-1", "x");
      await lead(store, "exact", "y");
      assert.deepEqual(summary((await feed.next()).value as DirectoryBatch), [["exact", "y", 2]]);
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("coalesces each election to its latest state while the reader is busy", async () => {
    const controller = new AbortController();
    const feed = hub.changes({ prefix: "slow/" }, controller.signal, 100);
    try {
      assert.deepEqual(summary((await feed.next()).value as DirectoryBatch), []);
      await store.create("slow/a", []);
      await store.create("slow/b", []);
      for (let i = 0; i < 50; i++) await lead(store, "slow/a", `c${i}`);
      assert.deepEqual(summary((await feed.next()).value as DirectoryBatch), [
        ["slow/b", "", 1],
        ["slow/a", "c49", 51],
      ]);
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("sends a fresh snapshot, marked reset, to a reader that left too many elections unread", async () => {
    const controller = new AbortController();
    const feed = hub.changes({ prefix: "flood/" }, controller.signal, 100);
    try {
      await feed.next();
      // WATCH_ELECTIONS_BUFFER is 5: six elections changed while the reader is away.
      for (let i = 0; i < 6; i++) await store.create(`flood/${i}`, []);
      const again = (await feed.next()).value as DirectoryBatch;
      assert.equal(again.reset, true);
      assert.equal(again.snapshotComplete, true);
      assert.equal(again.elections.length, 6);
      await lead(store, "flood/0", "z");
      const next = (await feed.next()).value as DirectoryBatch;
      assert.deepEqual(summary(next), [["flood/0", "z", 2]]);
      assert.equal(next.reset, false);
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("names deleted elections, and shows one created again with its term going on", async () => {
    const controller = new AbortController();
    await store.create("gone/a", []);
    await lead(store, "gone/a", "x");
    const feed = hub.changes({ prefix: "gone/" }, controller.signal, 100);
    try {
      await feed.next();
      await store.delete("gone/a");
      const deletion = (await feed.next()).value as DirectoryBatch;
      assert.deepEqual(deletion.deleted, ["gone/a"]);
      assert.deepEqual(deletion.elections, []);
      await store.create("gone/a", []);
      const back = (await feed.next()).value as DirectoryBatch;
      assert.deepEqual(
        back.elections.map((e) => [e.name, e.state.term, e.state.leader, e.version]),
        [["gone/a", 1n, "", 4]],
      );
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("counts against MAX_WATCHES and gives the slot back when its client aborts, even if the stream is never resumed", async () => {
    const controllers = [new AbortController(), new AbortController()];
    await store.create("held", []);
    const feeds = [
      hub.changes({}, controllers[0]?.signal as AbortSignal, 100),
      hub.election("held", controllers[1]?.signal as AbortSignal),
    ];
    // Each stream is left suspended after its first message, as a transport waiting for
    // a client that stopped reading leaves it: nobody calls next() again.
    for (const feed of feeds) await feed.next();
    assert.equal(hub.size, 2);
    const refused = hub.changes({}, new AbortController().signal, 100);
    await assert.rejects(refused.next(), /MAX_WATCHES/);
    for (const c of controllers) c.abort();
    assert.equal(hub.size, 0);
    const again = new AbortController();
    const next = hub.changes({}, again.signal, 100);
    await next.next();
    assert.equal(hub.size, 1);
    again.abort();
    assert.equal(hub.size, 0);
  });
});
