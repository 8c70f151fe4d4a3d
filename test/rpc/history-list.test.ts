// ElectionHistoryService.WatchElectionList over Connect, gRPC and gRPC-Web: several
// elections on one stream, each resumed after its own version with exactly what
// WatchElection sends for it, live changes of each named and carrying the state a page
// shows (term, bindings, tags); an election not found, deleted or with a name that is not
// valid ends alone while the others go on; a request that cannot be served is refused whole.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { createGrpcWebTransport as createFetchGrpcWebTransport } from "@connectrpc/connect-web";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import {
  ElectionHistoryService,
  type WatchElectionListResponse,
  type WatchElectionResponse,
} from "../../gen/electd/v1/history_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { sessionFingerprint } from "../../server/rpc/summaries.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";

const MAX_PAGE_SIZE = 4;
const server = await startServer(["--max-page-size", String(MAX_PAGE_SIZE)]);

const transports: Record<string, Transport> = {
  "Connect JSON over HTTP/1.1": createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  "gRPC over h2c": createGrpcTransport({ baseUrl: server.url }),
  "gRPC-Web over fetch": createFetchGrpcWebTransport({ baseUrl: server.url }),
};

/** Reads a stream until `done` says so (or it ends); the messages it got. */
async function read<T>(
  open: (signal: AbortSignal) => AsyncIterable<T>,
  done: (m: T, seen: readonly T[]) => boolean = () => false,
): Promise<T[]> {
  const stop = new AbortController();
  const seen: T[] = [];
  const timer = setTimeout(() => stop.abort(), 10_000);
  try {
    for await (const m of open(stop.signal)) {
      seen.push(m);
      if (done(m, seen)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  return seen;
}

/** What a message says, in a form assert.deepEqual compares. */
function shape(m: WatchElectionResponse | undefined) {
  if (!m) return undefined;
  return {
    version: Number(m.version),
    change: m.change ? Number(m.change.version) : undefined,
    cause: m.change?.cause,
    term: m.term ? `${m.term.term}:${m.term.leader}:${m.term.candidates.join(",")}` : undefined,
    reset: m.reset,
    bindings: m.bindings.map((b) => `${b.candidate}=${b.sessionFingerprint}`),
    tags: [...m.tags],
  };
}

for (const [protocol, transport] of Object.entries(transports)) {
  const election = createClient(LeaderElection, transport);
  const history: Client<typeof ElectionHistoryService> = createClient(
    ElectionHistoryService,
    transport,
  );
  const sessions = createClient(SessionService, transport);
  const admin = createClient(ElectionAdminService, transport);
  let count = 0;
  const fresh = async (tags: string[] = []) => {
    const id = { name: `list ${protocol} ${++count}` };
    await election.create({ id, tags });
    return id;
  };

  describe(`WatchElectionList (${protocol})`, () => {
    it("sends for each election what WatchElection sends after its version, each message naming its election", async () => {
      const a = await fresh(["team:a"]);
      const b = await fresh();
      const c = await fresh();
      for (const candidate of ["x", "y", "z"]) {
        await election.enter({ id: a, candidate });
        await election.enter({ id: b, candidate });
      }
      await election.anoint({ id: a, candidate: "z" });
      // a at 5, b at 4, c at 1. Resumed after 2, after 4 (current) and from nothing.
      const cursors = [
        { name: a.name, afterVersion: 2n },
        { name: b.name, afterVersion: 4n },
        { name: c.name, afterVersion: 0n },
      ];
      const latest = new Map([
        [a.name, 5],
        [b.name, 4],
        [c.name, 1],
      ]);
      const caughtUp = (seen: readonly WatchElectionListResponse[]) =>
        [...latest].every(([name, version]) =>
          seen.some((m) => m.name === name && Number(m.response?.version) === version),
        );
      const list = await read(
        (signal) => history.watchElectionList({ elections: cursors }, { signal }),
        (_, seen) => caughtUp(seen),
      );
      for (const cursor of cursors) {
        const alone = await read(
          (signal) => history.watchElection(cursor, { signal }),
          (m) => Number(m.version) === latest.get(cursor.name),
        );
        assert.deepEqual(
          list.filter((m) => m.name === cursor.name).map((m) => shape(m.response)),
          alone.map(shape),
          cursor.name,
        );
      }
      // The starting states and live changes carry the tags; replayed changes do not.
      const first = list.find((m) => m.name === a.name && m.response?.term);
      assert.deepEqual(first?.response?.tags, ["team:a"]);
    });

    it("goes on live for every election, each change once and in its election's order", async () => {
      const a = await fresh();
      const b = await fresh();
      const stop = new AbortController();
      const got: WatchElectionListResponse[] = [];
      const stream = history.watchElectionList(
        {
          elections: [
            { name: a.name, afterVersion: 1n },
            { name: b.name, afterVersion: 1n },
          ],
        },
        { signal: stop.signal },
      );
      const reading = (async () => {
        try {
          for await (const m of stream) {
            got.push(m);
            if (got.filter((g) => g.response?.change).length === 6) break;
          }
        } finally {
          stop.abort();
        }
      })();
      // Both streams' starting states first: then every change is a live one.
      while (got.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
      const { sessionId } = await sessions.openSession({ ttl: durationFromMs(60_000) });
      const bound = { headers: { "electd-session": sessionId } };
      await election.enter({ id: a, candidate: "p" }, bound);
      await election.enter({ id: b, candidate: "q" });
      await election.enter({ id: a, candidate: "r" });
      await election.enter({ id: b, candidate: "s" }, bound);
      await election.anoint({ id: a, candidate: "r" });
      await election.withdraw({ id: b, candidate: "q" });
      await reading;
      const of = (name: string) =>
        got.filter((m) => m.name === name && m.response?.change).map((m) => m.response);
      assert.deepEqual(
        of(a.name).map((m) => [Number(m?.version), m?.term?.leader]),
        [
          [2, "p"],
          [3, "p"],
          [4, "r"],
        ],
      );
      assert.deepEqual(
        of(b.name).map((m) => [Number(m?.version), m?.term?.leader]),
        [
          [2, "q"],
          [3, "q"],
          [4, "s"],
        ],
      );
      const fingerprint = sessionFingerprint(sessionId);
      // The session-bound candidates, leader first then the queue, with every live change.
      assert.deepEqual(
        of(a.name).map((m) => m?.bindings.map((x) => `${x.candidate}=${x.sessionFingerprint}`)),
        [[`p=${fingerprint}`], [`p=${fingerprint}`], [`p=${fingerprint}`]],
      );
      assert.deepEqual(
        of(b.name).map((m) => m?.bindings.map((x) => `${x.candidate}=${x.sessionFingerprint}`)),
        [[], [`s=${fingerprint}`], [`s=${fingerprint}`]],
      );
      await sessions.closeSession({ sessionId });
    });

    it("ends an election not found, deleted or with a name that is not valid on its own, and the stream once all have ended", async () => {
      const kept = await fresh();
      const doomed = await fresh();
      const stop = new AbortController();
      const got: WatchElectionListResponse[] = [];
      const stream = history.watchElectionList(
        {
          elections: [
            { name: kept.name, afterVersion: 0n },
            { name: "never created", afterVersion: 0n },
            { name: "bad\u0007name", afterVersion: 0n },
            { name: doomed.name, afterVersion: 0n },
          ],
        },
        { signal: stop.signal },
      );
      let ended: unknown;
      const reading = (async () => {
        try {
          for await (const m of stream) got.push(m);
        } catch (error) {
          ended = error;
        }
      })();
      const until = async (check: () => boolean) => {
        while (!check()) await new Promise((resolve) => setTimeout(resolve, 10));
      };
      await until(() => got.length >= 4);
      const endOf = (name: string) => got.find((m) => m.name === name && m.ended)?.ended;
      assert.deepEqual(
        { ...endOf("never created") },
        {
          $typeName: "electd.v1.WatchEnded",
          code: "not_found",
          message: 'election "never created" not found',
        },
      );
      assert.equal(endOf("bad\u0007name")?.code, "invalid_argument");
      assert.match(endOf("bad\u0007name")?.message ?? "", /^name must not contain control/);
      await admin.deleteElection({ name: doomed.name });
      await until(() => endOf(doomed.name) !== undefined);
      assert.equal(endOf(doomed.name)?.code, "not_found");
      const doomedChanges = got.filter((m) => m.name === doomed.name && m.response?.change);
      assert.deepEqual(
        doomedChanges.map((m) => Number(m.response?.version)),
        [2],
        "the deletion is the change before the end",
      );
      // The election left goes on.
      await election.enter({ id: kept, candidate: "k" });
      await until(() => got.some((m) => m.name === kept.name && m.response?.term?.leader === "k"));
      assert.equal(ended, undefined);
      await admin.deleteElection({ name: kept.name });
      await reading;
      assert.equal(ended, undefined, "the stream ends without an error once all have ended");
      assert.equal(endOf(kept.name)?.code, "not_found");
    });

    it("refuses a request naming no election, one twice, or more than MAX_PAGE_SIZE", async () => {
      const a = await fresh();
      const drain = async (elections: { name: string; afterVersion: bigint }[]) => {
        for await (const _ of history.watchElectionList({ elections })) break;
      };
      await rejects(drain([]), Code.InvalidArgument, /^elections must name at least one/);
      await rejects(
        drain([
          { name: a.name, afterVersion: 0n },
          { name: a.name, afterVersion: 1n },
        ]),
        Code.InvalidArgument,
        /^elections\[1\]\.name names an election twice/,
      );
      await rejects(
        drain(
          Array.from({ length: MAX_PAGE_SIZE + 1 }, (_, i) => ({
            name: `${a.name} ${i}`,
            afterVersion: 0n,
          })),
        ),
        Code.InvalidArgument,
        /^elections has 5 elections but at most 4 \(MAX_PAGE_SIZE\)/,
      );
    });
  });
}
