// ElectionDirectoryService over every protocol (Connect JSON over HTTP/1.1, Connect binary
// over HTTP/2, gRPC, gRPC-Web over fetch) against a real server: listing, paging, filters, the watch of the list, and
// the error rules of API.md section 4. Each test works under its own name prefix so tests
// sharing a server do not see each other's elections.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport as createFetchGrpcWebTransport } from "@connectrpc/connect-web";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  ElectionDirectoryService,
  type WatchElectionsResponse,
} from "../../gen/electd/v1/directory_pb.js";
import { sessionFingerprint } from "../../server/rpc/directory.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";

const protocols: Record<string, (baseUrl: string) => Transport> = {
  "Connect JSON": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
  "Connect binary": (baseUrl) =>
    createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  gRPC: (baseUrl) => createGrpcTransport({ baseUrl }),
  // As a browser sends it: over fetch.
  "gRPC-Web": (baseUrl) => createFetchGrpcWebTransport({ baseUrl }),
};

/** Reads a watch into a queue the test can await one response at a time. */
function reader(stream: AsyncIterable<WatchElectionsResponse>) {
  const iterator = stream[Symbol.asyncIterator]();
  return async (): Promise<WatchElectionsResponse> => {
    const next = await iterator.next();
    if (next.done) throw new Error("the watch ended");
    return next.value;
  };
}

// Started at the top level: startServer stops them when this file ends.
const server = await startServer();
const limited = await startServer(["--max-page-size", "3", "--max-watches", "1"]);
for (const name of ["a", "b", "c", "d", "e"]) await limited.store.create(name, []);

/** Waits until the limited server has released every watch (aborts are seen async). */
async function watchesReleased(): Promise<void> {
  for (let i = 0; i < 200 && limited.hub.size > 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(limited.hub.size, 0, "watches still open on the limited server");
}

for (const [protocol, transportFor] of Object.entries(protocols)) {
  describe(`ElectionDirectoryService over ${protocol}`, () => {
    let election: ReturnType<typeof createClient<typeof LeaderElection>>;
    let directory: ReturnType<typeof createClient<typeof ElectionDirectoryService>>;
    let small: ReturnType<typeof createClient<typeof ElectionDirectoryService>>;
    const p = `${protocol.replace(/\W/g, "")}-`;
    const make = async (name: string, tags: string[] = []) =>
      election.create({ id: { name: p + name }, tags });

    before(async () => {
      election = createClient(LeaderElection, transportFor(server.url));
      directory = createClient(ElectionDirectoryService, transportFor(server.url));
      small = createClient(ElectionDirectoryService, transportFor(limited.url));
      await watchesReleased();
    });

    it("lists elections in name order with tags and the current term", async () => {
      await make("list/b", ["blue"]);
      await make("list/a", ["red", "blue"]);
      await election.enter({ id: { name: `${p}list/a` }, candidate: "x" });
      await election.enter({ id: { name: `${p}list/a` }, candidate: "y" });
      const page = await directory.listElections({ namePrefix: `${p}list/` });
      assert.deepEqual(
        page.elections.map((e) => [
          e.name,
          e.tags,
          e.term?.term,
          e.term?.leader,
          e.term?.candidates,
        ]),
        [
          [`${p}list/a`, ["red", "blue"], 1n, "x", ["y"]],
          [`${p}list/b`, ["blue"], 0n, "", []],
        ],
      );
      assert.equal(page.nextPageToken, "");
    });

    it("pages with page_size and the next_page_token, ending with an empty token", async () => {
      for (const n of ["1", "2", "3", "4", "5"]) await make(`page/${n}`);
      const seen: string[][] = [];
      let pageToken = "";
      do {
        const page = await directory.listElections({
          namePrefix: `${p}page/`,
          pageSize: 2,
          pageToken,
        });
        seen.push(page.elections.map((e) => e.name.slice(p.length)));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      assert.deepEqual(seen, [["page/1", "page/2"], ["page/3", "page/4"], ["page/5"]]);
    });

    it("filters by tag", async () => {
      await make("tag/a", ["prod", "eu"]);
      await make("tag/b", ["dev"]);
      await make("tag/c", ["eu"]);
      const page = await directory.listElections({ namePrefix: `${p}tag/`, tag: "eu" });
      assert.deepEqual(
        page.elections.map((e) => e.name),
        [`${p}tag/a`, `${p}tag/c`],
      );
    });

    it("lowers a page_size above the limit to MAX_PAGE_SIZE and keeps paging", async () => {
      const first = await small.listElections({ pageSize: 50 });
      assert.deepEqual(
        first.elections.map((e) => e.name),
        ["a", "b", "c"],
      );
      assert.equal(first.nextPageToken, "c");
      const second = await small.listElections({ pageToken: first.nextPageToken });
      assert.deepEqual(
        second.elections.map((e) => e.name),
        ["d", "e"],
      );
      assert.equal(second.nextPageToken, "");
    });

    it("refuses a negative page_size and bad filters with invalid_argument naming the field", async () => {
      await rejects(
        directory.listElections({ pageSize: -1 }),
        Code.InvalidArgument,
        /^page_size must not be negative but is -1$/,
      );
      await rejects(
        directory.listElections({ namePrefix: "a\u0007" }),
        Code.InvalidArgument,
        /^name_prefix must not contain control characters$/,
      );
      await rejects(
        directory.listElections({ tag: "x".repeat(300) }),
        Code.InvalidArgument,
        /^tag is 300 bytes .*MAX_NAME_BYTES/,
      );
      await rejects(
        directory.listElections({ pageToken: "\u0000" }),
        Code.InvalidArgument,
        /^page_token must not contain control characters$/,
      );
      const watch = directory.watchElections({ tag: "\u001b" });
      await rejects(reader(watch)(), Code.InvalidArgument, /^tag must not contain control/);
    });

    it("watch sends the snapshot, then each created election and each change", async () => {
      await make("watch/a", ["t"]);
      const controller = new AbortController();
      const next = reader(
        directory.watchElections({ namePrefix: `${p}watch/` }, { signal: controller.signal }),
      );
      try {
        const snapshot = await next();
        assert.equal(snapshot.snapshotComplete, true);
        assert.deepEqual(
          snapshot.elections.map((e) => e.name),
          [`${p}watch/a`],
        );

        await make("watch/b", ["u"]);
        const created = await next();
        assert.equal(created.snapshotComplete, false);
        assert.deepEqual(
          created.elections.map((e) => [e.name, e.tags, e.term?.term]),
          [[`${p}watch/b`, ["u"], 0n]],
        );

        await election.enter({ id: { name: `${p}watch/a` }, candidate: "leader-1" });
        const changed = await next();
        assert.deepEqual(
          changed.elections.map((e) => [e.name, e.term?.term, e.term?.leader]),
          [[`${p}watch/a`, 1n, "leader-1"]],
        );

        await election.enter({ id: { name: `${p}watch/a` }, candidate: "leader-1" });
        await make("other/ignored");
        await election.enter({ id: { name: `${p}watch/a` }, candidate: "second" });
        const queued = await next();
        assert.deepEqual(
          queued.elections.map((e) => [e.name, e.term?.candidates]),
          [[`${p}watch/a`, ["second"]]],
          "a no-op and an election outside the filter send nothing",
        );
      } finally {
        controller.abort();
      }
    });

    it("watch sends an empty, complete snapshot when nothing matches", async () => {
      const controller = new AbortController();
      const next = reader(
        directory.watchElections({ namePrefix: `${p}nothing/` }, { signal: controller.signal }),
      );
      try {
        const snapshot = await next();
        assert.equal(snapshot.snapshotComplete, true);
        assert.deepEqual(snapshot.elections, []);
      } finally {
        controller.abort();
      }
    });

    it("watch splits a large snapshot into chunks of MAX_PAGE_SIZE, the last marked complete", async () => {
      const controller = new AbortController();
      const next = reader(small.watchElections({}, { signal: controller.signal }));
      try {
        const first = await next();
        const second = await next();
        assert.deepEqual(
          [first, second].map((r) => [r.elections.map((e) => e.name), r.snapshotComplete]),
          [
            [["a", "b", "c"], false],
            [["d", "e"], true],
          ],
        );
      } finally {
        controller.abort();
      }
    });

    it("refuses a watch beyond MAX_WATCHES with resource_exhausted", async () => {
      await watchesReleased();
      const controller = new AbortController();
      const next = reader(small.watchElections({}, { signal: controller.signal }));
      try {
        await next();
        await rejects(
          reader(small.watchElections({ namePrefix: "a" }))(),
          Code.ResourceExhausted,
          /MAX_WATCHES/,
        );
      } finally {
        controller.abort();
      }
    });
  });
}

describe("the election summary", () => {
  it("shows session-bound candidates by a fingerprint, never the session id", async () => {
    const session = await server.sessions.open(60_000);
    await server.store.create("bound", []);
    await server.store.update("bound", (e) => ({
      ok: true,
      changed: true,
      state: { ...e.state, term: 1n, leader: "x" },
      bind: ["x", session.id] as const,
    }));
    const directory = createClient(
      ElectionDirectoryService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const page = await directory.listElections({ namePrefix: "bound" });
    const sessions = page.elections[0]?.candidateSessions;
    assert.deepEqual(sessions, { x: sessionFingerprint(session.id) });
    assert.ok(
      !JSON.stringify(page, (_, v) => (typeof v === "bigint" ? String(v) : v)).includes(session.id),
    );
  });
});
