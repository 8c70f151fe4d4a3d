// ElectionHistoryService over real transports: an election's kept changes a page at a
// time, and WatchElection resuming after any version with no gap and no repeat, from
// history and then live, a reset when the changes are no longer kept, the deletion as the
// last change, and the history of the durable store across a restart.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { durationFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { ChangeCause } from "../../gen/electd/v1/directory_pb.js";
import {
  ElectionHistoryService,
  type WatchElectionResponse,
} from "../../gen/electd/v1/history_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { spawnServer } from "../support/process.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

const server = await startServer(["--history-per-election", "20"]);

/** Reads a WatchElection until `done` says so; the messages it got. */
async function follow(
  history: Client<typeof ElectionHistoryService>,
  name: string,
  afterVersion: number,
  done: (m: WatchElectionResponse) => boolean,
): Promise<WatchElectionResponse[]> {
  const stop = new AbortController();
  const seen: WatchElectionResponse[] = [];
  const timer = setTimeout(() => stop.abort(), 10_000);
  try {
    for await (const m of history.watchElection(
      { name, afterVersion: BigInt(afterVersion) },
      { signal: stop.signal },
    )) {
      seen.push(m);
      if (done(m)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return seen;
}

const transports: Record<string, Transport> = {
  "Connect JSON over HTTP/1.1": createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  "gRPC over h2c": createGrpcTransport({ baseUrl: server.url }),
};

for (const [protocol, transport] of Object.entries(transports)) {
  const election = createClient(LeaderElection, transport);
  const history = createClient(ElectionHistoryService, transport);
  const sessions = createClient(SessionService, transport);
  const admin = createClient(ElectionAdminService, transport);
  let count = 0;
  const fresh = async () => {
    const id = { name: `history ${protocol} ${++count}` };
    await election.create({ id });
    return id;
  };

  describe(`ListHistory (${protocol})`, () => {
    it("lists every change with its cause, candidates, time and terms, newest or oldest first", async () => {
      const before = Date.now();
      const id = await fresh();
      await election.enter({ id, candidate: "a" });
      await election.enter({ id, candidate: "b" });
      await election.enter({ id, candidate: "b" }); // no change
      await election.withdraw({ id, candidate: "a" });
      const { sessionId } = await sessions.openSession({ ttl: durationFromMs(60_000) });
      await election.enter({ id, candidate: "c" }, { headers: { "electd-session": sessionId } });
      await sessions.closeSession({ sessionId });
      const { changes, nextFromVersion } = await history.listHistory({ name: id.name });
      assert.equal(nextFromVersion, 0n);
      assert.deepEqual(
        changes.map((c) => [
          Number(c.version),
          ChangeCause[c.cause],
          c.candidates,
          `${c.termBefore}:${c.leaderBefore}`,
          `${c.term}:${c.leader}`,
        ]),
        [
          [6, "SESSION_CLOSED", ["c"], "2:b", "2:b"],
          [5, "ENTER", ["c"], "2:b", "2:b"],
          [4, "WITHDRAW", ["a"], "1:a", "2:b"],
          [3, "ENTER", ["b"], "1:a", "1:a"],
          [2, "ENTER", ["a"], "0:", "1:a"],
          [1, "CREATE", [], "0:", "0:"],
        ],
      );
      for (const c of changes) {
        assert.ok(c.time);
        const at = timestampMs(c.time);
        assert.ok(at >= before - 1000 && at <= Date.now() + 1000, `time ${at}`);
      }
      const page1 = await history.listHistory({ name: id.name, pageSize: 4, oldestFirst: true });
      assert.deepEqual(
        page1.changes.map((c) => c.version),
        [1n, 2n, 3n, 4n],
      );
      const page2 = await history.listHistory({
        name: id.name,
        pageSize: 4,
        oldestFirst: true,
        fromVersion: page1.nextFromVersion,
      });
      assert.deepEqual(
        page2.changes.map((c) => c.version),
        [5n, 6n],
      );
      assert.equal(page2.nextFromVersion, 0n);
    });

    it("answers not_found for an unknown election and invalid_argument for a page too large", async () => {
      await rejects(history.listHistory({ name: "never created" }), Code.NotFound, /not found/);
      await rejects(
        history.listHistory({ name: "x", pageSize: 100_000 }),
        Code.InvalidArgument,
        /^page_size /,
      );
      await rejects(history.listHistory({ name: "" }), Code.InvalidArgument, /^name /);
    });
  });

  describe(`WatchElection (${protocol})`, () => {
    it("resumes after every version of a change sequence with no gap and no repeat", async () => {
      const id = await fresh();
      for (const candidate of ["a", "b", "c"]) await election.enter({ id, candidate });
      await election.anoint({ id, candidate: "c" });
      await election.withdraw({ id, candidate: "a" });
      const latest = 6;
      for (let after = 1; after < latest; after++) {
        const seen = await follow(history, id.name, after, (m) => Number(m.version) === latest);
        assert.deepEqual(
          seen.map((m) => Number(m.version)),
          Array.from({ length: latest - after }, (_, i) => after + i + 1),
          `after ${after}`,
        );
        assert.ok(seen.every((m) => m.change && !m.reset));
        // The last one is the current state: it carries the whole term.
        assert.deepEqual(seen.at(-1)?.term?.candidates, ["b"]);
      }
      // From the start: the current state, then live changes with their causes.
      const stop = new AbortController();
      const stream = history
        .watchElection({ name: id.name, afterVersion: 0n }, { signal: stop.signal })
        [Symbol.asyncIterator]();
      const start = (await stream.next()).value as WatchElectionResponse;
      assert.deepEqual([start.version, start.reset, start.change], [6n, false, undefined]);
      assert.equal(start.term?.leader, "c");
      await election.promote({ id, candidate: "b" });
      const live = (await stream.next()).value as WatchElectionResponse;
      assert.deepEqual(
        [live.version, live.change && ChangeCause[live.change.cause], live.term?.leader],
        [7n, "PROMOTE", "b"],
      );
      stop.abort();
      await stream.return?.();
    });

    it("starts again from the current state, marked reset, when the changes after the client's are no longer kept", async () => {
      const id = await fresh();
      for (let i = 0; i < 25; i++) await election.enter({ id, candidate: `c${i}` });
      // 26 changes, 20 kept: versions 7 to 26.
      const seen = await follow(history, id.name, 3, () => true);
      assert.deepEqual(
        [seen[0]?.version, seen[0]?.reset, seen[0]?.change, seen[0]?.term?.candidates.length],
        [26n, true, undefined, 24],
      );
      const kept = await follow(history, id.name, 6, (m) => m.version === 26n);
      assert.equal(kept.length, 20);
      assert.ok(kept.every((m) => !m.reset));
    });

    it("ends with the deletion of the election, then not_found", async () => {
      const id = await fresh();
      await election.enter({ id, candidate: "a" });
      const stop = new AbortController();
      const stream = history
        .watchElection({ name: id.name, afterVersion: 2n }, { signal: stop.signal })
        [Symbol.asyncIterator]();
      // Already at version 2: the stream starts with that state, no change in it.
      const start = (await stream.next()).value as WatchElectionResponse;
      assert.deepEqual([start.version, start.change, start.reset], [2n, undefined, false]);
      const pending = stream.next();
      await admin.deleteElection({ name: id.name });
      const last = (await pending).value as WatchElectionResponse;
      assert.deepEqual(
        [last.version, last.change && ChangeCause[last.change.cause], last.change?.candidates],
        [3n, "ELECTION_DELETED", ["a"]],
      );
      // "was deleted", or "not found" when the deletion came before the stream looked.
      await rejects(stream.next(), Code.NotFound, /was deleted|not found/);
    });
  });
}

describe("history on the durable store", () => {
  it("resumes across a server restart from what was committed before it", async () => {
    const dataDir = tempDir("history");
    const flags = ["--port", "0", "--store", "durable", "--data-dir", dataDir];
    const first = await spawnServer(flags);
    const call = (url: string) =>
      createClient(LeaderElection, createGrpcTransport({ baseUrl: url }));
    const id = { name: "kept" };
    await call(first.url).create({ id });
    for (const candidate of ["a", "b"]) await call(first.url).enter({ id, candidate });
    first.child.kill("SIGKILL");
    await first.exited;
    const second = await spawnServer(flags);
    after(() => second.child.kill("SIGKILL"));
    await call(second.url).withdraw({ id, candidate: "a" });
    const history = createClient(
      ElectionHistoryService,
      createGrpcTransport({ baseUrl: second.url }),
    );
    const seen = await follow(history, "kept", 1, (m) => m.version === 4n);
    assert.deepEqual(
      seen.map((m) => [Number(m.version), m.change && ChangeCause[m.change.cause]]),
      [
        [2, "ENTER"],
        [3, "ENTER"],
        [4, "WITHDRAW"],
      ],
    );
  });
});
