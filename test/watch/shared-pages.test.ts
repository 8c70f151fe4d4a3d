// Snapshot pages shared between directory watchers (WatchHub.changes): watchers whose
// snapshots hold the same elections are handed the same page objects, which the rpc layer
// encodes once; a snapshot taken after a change never gets a page of an earlier one.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DirectoryBatch, DirectoryFilter } from "../../server/watch/hub.js";
import { startServer } from "../support/server.js";

const { hub, store } = await startServer();

/** Opens a watch and reads its whole snapshot. */
async function snapshotOf(filter: DirectoryFilter, pageSize: number, signal: AbortSignal) {
  const feed = hub.changes(filter, signal, pageSize);
  const pages: DirectoryBatch[] = [];
  for (;;) {
    const page = (await feed.next()).value as DirectoryBatch;
    pages.push(page);
    if (page.snapshotComplete) return { feed, pages };
  }
}

const names = (pages: DirectoryBatch[]) => pages.map((p) => p.elections.map((e) => e.name));

describe("snapshot pages shared between directory watchers", () => {
  it("hands watchers of the same snapshot the same pages", async () => {
    for (const n of ["same/a", "same/b", "same/c", "same/d", "same/e"]) await store.create(n, []);
    const controller = new AbortController();
    try {
      const one = await snapshotOf({ prefix: "same/" }, 2, controller.signal);
      const two = await snapshotOf({ prefix: "same/" }, 2, controller.signal);
      assert.deepEqual(names(two.pages), [["same/a", "same/b"], ["same/c", "same/d"], ["same/e"]]);
      assert.equal(two.pages.length, one.pages.length);
      for (const [i, page] of two.pages.entries()) assert.equal(page, one.pages[i]);
      // Another filter or page size is another snapshot.
      const tagged = await snapshotOf({ prefix: "same/", tag: "t" }, 2, controller.signal);
      assert.deepEqual(names(tagged.pages), [[]]);
      const wider = await snapshotOf({ prefix: "same/" }, 3, controller.signal);
      assert.deepEqual(names(wider.pages), [
        ["same/a", "same/b", "same/c"],
        ["same/d", "same/e"],
      ]);
    } finally {
      controller.abort();
    }
  });

  it("never hands a snapshot taken after a change a page of one taken before", async () => {
    for (const n of ["later/a", "later/b", "later/c"]) await store.create(n, []);
    const controller = new AbortController();
    try {
      // The first watcher reads one page of its snapshot, then a change comes.
      const before = hub.changes({ prefix: "later/" }, controller.signal, 1);
      const pages = [(await before.next()).value as DirectoryBatch];
      await store.create("later/aa", []);
      const after = await snapshotOf({ prefix: "later/" }, 1, controller.signal);
      assert.deepEqual(names(after.pages), [["later/a"], ["later/aa"], ["later/b"], ["later/c"]]);
      // The first watcher goes on with its own snapshot, then is sent the change.
      for (let i = 0; i < 3; i++) pages.push((await before.next()).value as DirectoryBatch);
      assert.deepEqual(names(pages), [["later/a"], ["later/b"], ["later/c"], ["later/aa"]]);
      assert.deepEqual(
        pages.map((p) => [p.reset, p.snapshotComplete]),
        [
          [true, false],
          [false, false],
          [false, true],
          [false, false],
        ],
      );
    } finally {
      controller.abort();
    }
  });

  it("pages a watcher in step with one that started the same snapshot earlier", async () => {
    for (const n of ["step/a", "step/b", "step/c", "step/d"]) await store.create(n, []);
    const controller = new AbortController();
    try {
      const first = hub.changes({ prefix: "step/" }, controller.signal, 1);
      const second = hub.changes({ prefix: "step/" }, controller.signal, 1);
      const pages: [DirectoryBatch, DirectoryBatch][] = [];
      for (let i = 0; i < 4; i++) {
        const a = (await first.next()).value as DirectoryBatch;
        const b = (await second.next()).value as DirectoryBatch;
        pages.push([a, b]);
      }
      for (const [a, b] of pages) assert.equal(a, b);
      assert.deepEqual(
        pages.map(([a]) => [a.elections[0]?.name, a.reset, a.snapshotComplete]),
        [
          ["step/a", true, false],
          ["step/b", false, false],
          ["step/c", false, false],
          ["step/d", false, true],
        ],
      );
    } finally {
      controller.abort();
    }
  });
});
