// The watch of every election (WatchHub.changes, behind WatchElections): the snapshot comes
// first, nothing committed around it is lost or repeated, the filter applies, a slow reader
// gets one latest state per election, and the watch is released when its client leaves.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Election, ElectionStore } from "../../server/store/store.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--max-watches", "2"]);
const { hub, store } = server;

/** Commits a leader change: one new version of the election. */
function lead(target: ElectionStore, name: string, leader: string) {
  return target.update(name, (e) => ({
    ok: true,
    changed: true,
    state: { ...e.state, term: e.state.term + 1n, leader },
  }));
}

const summary = (batch: readonly Election[] | undefined) =>
  (batch ?? []).map((e) => [e.name, e.state.leader, e.version]);

describe("the watch of every election", () => {
  it("sends the snapshot first, then later changes, skipping what the snapshot already showed", async () => {
    const controller = new AbortController();
    await store.create("first/a", []);
    const feed = hub.changes(
      (e) => e.name.startsWith("first/"),
      controller.signal,
      async () => {
        // A change committed while the snapshot is read: the snapshot includes it, so the
        // feed must not send it again.
        await lead(store, "first/a", "during");
        return store.list({ prefix: "first/", limit: 100 });
      },
    );
    try {
      assert.deepEqual(summary((await feed.next()).value), [["first/a", "during", 2]]);
      await store.create("other/x", []);
      await lead(store, "first/a", "after");
      assert.deepEqual(summary((await feed.next()).value), [["first/a", "after", 3]]);
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("coalesces each election to its latest state while the reader is busy", async () => {
    const controller = new AbortController();
    const feed = hub.changes(
      (e) => e.name.startsWith("slow/"),
      controller.signal,
      async () => [],
    );
    try {
      assert.deepEqual((await feed.next()).value, []);
      await store.create("slow/a", []);
      await store.create("slow/b", []);
      for (let i = 0; i < 50; i++) await lead(store, "slow/a", `c${i}`);
      assert.deepEqual(summary((await feed.next()).value), [
        ["slow/b", "", 1],
        ["slow/a", "c49", 51],
      ]);
    } finally {
      controller.abort();
      await feed.return(undefined);
    }
  });

  it("counts against MAX_WATCHES and is released when its client aborts", async () => {
    const controllers = [new AbortController(), new AbortController()];
    const feeds = controllers.map((c) =>
      hub.changes(
        () => true,
        c.signal,
        async () => [],
      ),
    );
    for (const feed of feeds) await feed.next();
    assert.equal(hub.size, 2);
    const refused = hub.changes(
      () => true,
      new AbortController().signal,
      async () => [],
    );
    await assert.rejects(refused.next(), /MAX_WATCHES/);
    for (const c of controllers) c.abort();
    for (const feed of feeds) assert.equal((await feed.next()).done, true);
    assert.equal(hub.size, 0);
  });
});
