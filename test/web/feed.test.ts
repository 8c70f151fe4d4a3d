// The dashboard's one stream for every election tab (web/src/feed.ts), against a real
// server over gRPC-Web as a browser sends it: a page hears every change of its election
// once and in order while other tabs' elections join and leave the stream (each time
// opened again with each election's last version as its cursor), a page joining an
// election another already shows starts from the state the feed has, an election deleted
// ends alone, and a lost stream resumes each election after its last version.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import {
  ElectionHistoryService,
  type WatchElectionListRequest,
  type WatchElectionResponse,
  type WatchEnded,
} from "../../gen/electd/v1/history_pb.js";
import type { ConnectionState } from "../../web/src/connection.js";
import { ElectionFeed, type FeedListener } from "../../web/src/feed.js";
import { startServer } from "../support/server.js";

const server = await startServer();
const transport = createGrpcWebTransport({ baseUrl: server.url });
const election = createClient(LeaderElection, transport);
const admin = createClient(ElectionAdminService, transport);
const history = createClient(ElectionHistoryService, transport);

/**
 * The history client the feed is given: the real one, recording each stream it opens and
 * able to drop the one open now, as a lost connection would.
 */
function recordingClient() {
  const opened: WatchElectionListRequest[] = [];
  let drop = new AbortController();
  const client = {
    watchElectionList(request: WatchElectionListRequest, options: { signal: AbortSignal }) {
      opened.push(request);
      const signal = AbortSignal.any([options.signal, drop.signal]);
      return history.watchElectionList(request, { signal });
    },
  } as unknown as Client<typeof ElectionHistoryService>;
  return {
    client,
    opened,
    drop() {
      drop.abort();
      drop = new AbortController();
    },
  };
}

/** A page's listener that records what it heard. */
function page() {
  const heard = {
    messages: [] as WatchElectionResponse[],
    states: [] as ConnectionState["kind"][],
    resumed: 0,
    ended: undefined as WatchEnded | undefined,
  };
  const listener: FeedListener = {
    connection: (state) => heard.states.push(state.kind),
    resumed: () => heard.resumed++,
    message: (m) => heard.messages.push(m),
    ended: (e) => {
      heard.ended = e;
    },
  };
  return { listener, heard };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`waited 10 s for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The changes heard, by version: each once, with no gap. */
function assertEveryChangeOnce(messages: readonly WatchElectionResponse[]): number[] {
  const versions = messages.flatMap((m) => (m.change ? [Number(m.change.version)] : []));
  for (const [i, v] of versions.entries()) {
    if (i > 0) assert.equal(v, (versions[i - 1] ?? 0) + 1, `changes ${versions.join(",")}`);
  }
  const all = messages.map((m) => Number(m.version));
  assert.deepEqual(
    all,
    all.toSorted((a, b) => a - b),
    "versions never go back",
  );
  return versions;
}

let count = 0;
async function fresh(tags: string[] = []): Promise<string> {
  const name = `feed ${++count}`;
  await election.create({ id: { name }, tags });
  return name;
}

describe("ElectionFeed", () => {
  const feeds: { leave: () => void }[] = [];
  after(() => {
    for (const f of feeds) f.leave();
  });

  it("passes every change of an election once and in order while other elections join and leave", async () => {
    const { client, opened } = recordingClient();
    const feed = new ElectionFeed(client);
    const [a, b, c] = [await fresh(["team:a"]), await fresh(), await fresh()];
    const pa = page();
    feed.follow(a, 0n, pa.listener);
    feeds.push({ leave: () => feed.leave(a, pa.listener) });
    await until(() => pa.heard.messages.length > 0, "a's first state");
    assert.deepEqual(pa.heard.messages[0]?.tags, ["team:a"]);
    // Changes to a while other pages open and close b and c, each reopening the stream.
    const changing = (async () => {
      for (let i = 0; i < 30; i++) {
        await election.enter({ id: { name: a }, candidate: `c${i}` });
        if (i % 3 === 0) await new Promise((resolve) => setTimeout(resolve, 60));
      }
    })();
    const pb = page();
    const pc = page();
    feed.follow(b, 0n, pb.listener);
    await until(() => pb.heard.messages.length > 0, "b's state");
    feed.follow(c, 0n, pc.listener);
    await until(() => pc.heard.messages.length > 0, "c's state");
    feed.leave(b, pb.listener);
    await until(() => opened.length === 4, "the stream opened without b");
    feed.leave(c, pc.listener);
    await changing;
    await until(() => pa.heard.messages.at(-1)?.version === 31n, "a's last change");
    const versions = assertEveryChangeOnce(pa.heard.messages);
    assert.deepEqual(
      versions,
      Array.from({ length: 30 }, (_, i) => i + 2),
    );
    assert.equal(pa.heard.messages.at(-1)?.term?.candidates.length, 29);
    // The stream was opened again as the set changed, each time resuming a where it was.
    assert.deepEqual(
      opened.map((r) => r.elections.map((e) => e.name)),
      [[a], [a, b], [a, b, c], [a, c], [a]],
    );
    // a from nothing, then after the version it had reached each time.
    const cursors = opened.map((r) => Number(r.elections[0]?.afterVersion));
    assert.equal(cursors[0], 0);
    assert.ok(
      cursors.slice(1).every((v, i) => v >= 1 && v >= (cursors[i] ?? 0)),
      `${cursors}`,
    );
    assert.deepEqual(pa.heard.states, ["connecting", "live"]);
  });

  it("starts a page joining an election another page shows from the state the feed has", async () => {
    const feed = new ElectionFeed(recordingClient().client);
    const name = await fresh(["shared"]);
    await election.enter({ id: { name }, candidate: "x" });
    const first = page();
    feed.follow(name, 0n, first.listener);
    await until(() => first.heard.messages.length > 0, "the first page's state");
    const second = page();
    feed.follow(name, 0n, second.listener);
    assert.equal(second.heard.messages.length, 1, "at once, from what the feed has");
    const start = second.heard.messages[0];
    assert.equal(start?.term?.leader, "x");
    assert.equal(start?.version, 2n);
    assert.deepEqual(start?.tags, ["shared"]);
    assert.equal(start?.change, undefined);
    await election.enter({ id: { name }, candidate: "y" });
    await until(() => second.heard.messages.length === 2, "the next change");
    assert.equal(first.heard.messages.at(-1)?.version, 3n);
    feed.leave(name, first.listener);
    feed.leave(name, second.listener);
  });

  it("ends a deleted election alone, and an unknown one, while the others go on", async () => {
    const feed = new ElectionFeed(recordingClient().client);
    const [kept, doomed] = [await fresh(), await fresh()];
    const pk = page();
    const pd = page();
    const pu = page();
    feed.follow(kept, 0n, pk.listener);
    feed.follow(doomed, 0n, pd.listener);
    feed.follow("feed never created", 0n, pu.listener);
    await until(() => pd.heard.messages.length > 0 && pu.heard.ended !== undefined, "starts");
    assert.equal(pu.heard.ended?.code, "not_found");
    await admin.deleteElection({ name: doomed });
    await until(() => pd.heard.ended !== undefined, "the deletion");
    assert.equal(pd.heard.ended?.code, "not_found");
    assert.equal(pd.heard.messages.at(-1)?.version, 2n, "the deletion came first");
    await election.enter({ id: { name: kept }, candidate: "k" });
    await until(() => pk.heard.messages.at(-1)?.term?.leader === "k", "kept's change");
    assert.equal(pk.heard.ended, undefined);
    feed.leave(kept, pk.listener);
  });

  it("resumes every election after its last version when the stream is lost, and says so", async () => {
    const { client, opened, drop } = recordingClient();
    const feed = new ElectionFeed(client);
    const [a, b] = [await fresh(), await fresh()];
    const pa = page();
    const pb = page();
    feed.follow(a, 0n, pa.listener);
    feed.follow(b, 0n, pb.listener);
    feeds.push({ leave: () => feed.leave(a, pa.listener) });
    feeds.push({ leave: () => feed.leave(b, pb.listener) });
    await until(() => pa.heard.messages.length > 0 && pb.heard.messages.length > 0, "starts");
    const before = opened.length;
    drop();
    await until(() => pa.heard.states.at(-1) === "offline", "offline");
    // Made while the feed waits to reconnect.
    await election.enter({ id: { name: a }, candidate: "p" });
    await election.enter({ id: { name: a }, candidate: "q" });
    await until(() => pa.heard.messages.at(-1)?.version === 3n, "a's changes");
    await until(() => pb.heard.states.at(-1) === "live", "live again");
    assert.deepEqual(
      opened.slice(before).map((r) => r.elections.map((e) => [e.name, e.afterVersion])),
      [
        [
          [a, 1n],
          [b, 1n],
        ],
      ],
    );
    assert.equal(pa.heard.resumed, 1);
    assert.equal(pb.heard.resumed, 1);
    assert.deepEqual(assertEveryChangeOnce(pa.heard.messages), [2, 3]);
    // b, unchanged, gets its state again: the page knows it is caught up.
    assert.equal(pb.heard.messages.at(-1)?.version, 1n);
    assert.ok(pb.heard.messages.at(-1)?.term);
  });
});
