// What the directory tells about sessions, over Connect JSON (HTTP/1.1), gRPC (HTTP/2) and
// gRPC-Web against a real server: GetElectionSessions (fingerprints, TTLs and remaining
// time of one election's session-bound candidates, never session ids), its error rules,
// and the cause WatchElections reports for changes the server made because a session
// expired or was closed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type Duration, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  ChangeCause,
  type Election,
  ElectionDirectoryService,
} from "../../gen/electd/v1/directory_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { SESSION_HEADER } from "../../server/rpc/session.js";
import { protocols } from "../session/protocols.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";

// Short TTLs are allowed so expiry tests are quick; TTLs meant to outlive a test are long,
// so a busy machine never expires them early.
const server = await startServer(["--session-ttl-min", "100ms"]);
const LONG = { seconds: 60n };
const SHORT_MS = 300;

/** Milliseconds of a Duration the server must have sent. */
function ms(duration: Duration | undefined): number {
  assert.ok(duration, "a duration is missing");
  return durationMs(duration);
}

for (const protocol of protocols) {
  describe(`directory sessions over ${protocol.name}`, () => {
    let connection: ReturnType<typeof protocol.open>;
    let election: ReturnType<typeof createClient<typeof LeaderElection>>;
    let directory: ReturnType<typeof createClient<typeof ElectionDirectoryService>>;
    let sessions: ReturnType<typeof createClient<typeof SessionService>>;
    const p = `${protocol.name.replace(/\W/g, "")}-`;

    before(() => {
      connection = protocol.open(server.url);
      election = createClient(LeaderElection, connection.transport);
      directory = createClient(ElectionDirectoryService, connection.transport);
      sessions = createClient(SessionService, connection.transport);
    });
    after(() => connection.close());

    async function enter(name: string, candidate: string, session?: string): Promise<void> {
      await election.enter(
        { id: { name }, candidate },
        session === undefined ? {} : { headers: { [SESSION_HEADER]: session } },
      );
    }

    /** A watch of one election's summaries; ends with the test. */
    function watchOne(name: string, signal: AbortSignal) {
      const iterator = directory
        .watchElections({ namePrefix: name }, { signal })
        [Symbol.asyncIterator]();
      return async (): Promise<Election> => {
        for (;;) {
          const next = await iterator.next();
          if (next.done) throw new Error("the watch ended");
          const found = next.value.elections.find((e) => e.name === name);
          if (found) return found;
        }
      };
    }

    it("GetElectionSessions lists session-bound candidates, leader first, with fingerprint, TTL and time left, never the session id", async () => {
      const name = `${p}bound`;
      await election.create({ id: { name } });
      const a = (await sessions.openSession({ ttl: LONG })).sessionId;
      const b = (await sessions.openSession({ ttl: { seconds: 30n } })).sessionId;
      await enter(name, "free-1");
      await enter(name, "a-1", a);
      await enter(name, "b-1", b);
      await enter(name, "a-2", a);
      await election.anoint({ id: { name }, candidate: "a-2" });

      const reply = await directory.getElectionSessions({ name });
      assert.deepEqual(
        reply.candidates.map((c) => c.candidate),
        ["a-2", "a-1", "b-1"],
      );
      const [a2, a1, b1] = reply.candidates;
      assert.ok(a2 && a1 && b1);
      assert.equal(a1.sessionFingerprint, a2.sessionFingerprint);
      assert.notEqual(a1.sessionFingerprint, b1.sessionFingerprint);
      assert.match(a1.sessionFingerprint, /^[0-9a-f]{12}$/);
      assert.equal(ms(a1.ttl), 60_000);
      assert.equal(ms(b1.ttl), 30_000);
      const left = ms(b1.remaining);
      assert.ok(left > 25_000 && left <= 30_000, `${left} ms left of 30 s`);
      // The fingerprints agree with the listing, and no session id is in either.
      const listed = (await directory.listElections({ namePrefix: name })).elections[0];
      assert.equal(listed?.candidateSessions["b-1"], b1.sessionFingerprint);
      const everything = JSON.stringify(reply, (_, v) => (typeof v === "bigint" ? `${v}` : v));
      assert.ok(!everything.includes(a) && !everything.includes(b), everything);
      await sessions.closeSession({ sessionId: a });
      await sessions.closeSession({ sessionId: b });
    });

    it("GetElectionSessions shows the time left shrinking and a keep-alive restoring it", async () => {
      const name = `${p}countdown`;
      await election.create({ id: { name } });
      const id = (await sessions.openSession({ ttl: { seconds: 20n } })).sessionId;
      await enter(name, "c", id);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const earlier = ms((await directory.getElectionSessions({ name })).candidates[0]?.remaining);
      assert.ok(earlier <= 19_750, `${earlier} ms left after 300 ms of a 20 s TTL`);
      await sessions.keepAlive({ sessionId: id });
      const afterKeepAlive = ms(
        (await directory.getElectionSessions({ name })).candidates[0]?.remaining,
      );
      assert.ok(
        afterKeepAlive > earlier,
        `${afterKeepAlive} ms after keep-alive, ${earlier} before`,
      );
      await sessions.closeSession({ sessionId: id });
      assert.deepEqual((await directory.getElectionSessions({ name })).candidates, []);
    });

    it("GetElectionSessions refuses an unknown election with not_found and a bad name with invalid_argument naming the field", async () => {
      await rejects(
        directory.getElectionSessions({ name: `${p}no-such` }),
        Code.NotFound,
        /not found/,
      );
      await rejects(directory.getElectionSessions({ name: "" }), Code.InvalidArgument, /^name /);
      await rejects(
        directory.getElectionSessions({ name: "x".repeat(300) }),
        Code.InvalidArgument,
        /^name is 300 bytes/,
      );
      await rejects(
        directory.getElectionSessions({ name: "bad\u0007" }),
        Code.InvalidArgument,
        /^name must not contain control characters/,
      );
    });

    it("WatchElections reports a leader replaced because its session expired, then ordinary changes without a cause", async () => {
      const name = `${p}expiry`;
      await election.create({ id: { name } });
      const controller = new AbortController();
      try {
        const next = watchOne(name, controller.signal);
        const snapshot = await next();
        assert.equal(snapshot.lastChangeCause, ChangeCause.UNSPECIFIED);
        const id = (await sessions.openSession({ ttl: { nanos: SHORT_MS * 1e6 } })).sessionId;
        await enter(name, "doomed", id);
        await enter(name, "next");
        let seen = await next();
        while (seen.term?.leader !== "next") {
          assert.equal(seen.lastChangeCause, ChangeCause.UNSPECIFIED, "before the expiry");
          seen = await next();
        }
        assert.equal(seen.term?.term, 2n);
        assert.equal(seen.lastChangeCause, ChangeCause.SESSION_EXPIRED);
        assert.deepEqual(seen.candidateSessions, {});
        await enter(name, "later");
        const ordinary = await next();
        assert.deepEqual(ordinary.term?.candidates, ["later"]);
        assert.equal(ordinary.lastChangeCause, ChangeCause.UNSPECIFIED);
      } finally {
        controller.abort();
      }
    });

    it("WatchElections reports candidates withdrawn because their session was closed", async () => {
      const name = `${p}closed`;
      await election.create({ id: { name } });
      const id = (await sessions.openSession({ ttl: LONG })).sessionId;
      await enter(name, "leader", id);
      await enter(name, "waiting");
      const controller = new AbortController();
      try {
        const next = watchOne(name, controller.signal);
        await next();
        await sessions.closeSession({ sessionId: id });
        const seen = await next();
        assert.equal(seen.term?.leader, "waiting");
        assert.equal(seen.term?.term, 2n);
        assert.equal(seen.lastChangeCause, ChangeCause.SESSION_CLOSED);
      } finally {
        controller.abort();
      }
    });
  });
}

describe("GetElectionSessions over HTTP GET", () => {
  it("answers a Connect GET, as a browser or curl may send it, having no side effects", async () => {
    const name = "get-sessions";
    const election = createClient(
      LeaderElection,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    await election.create({ id: { name } });
    const message = encodeURIComponent(JSON.stringify({ name }));
    const response = await fetch(
      `${server.url}/electd.v1.ElectionDirectoryService/GetElectionSessions?connect=v1&encoding=json&message=${message}`,
    );
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {});
    const missing = await fetch(
      `${server.url}/electd.v1.ElectionDirectoryService/GetElectionSessions?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ name: "nope" }))}`,
    );
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { code: string }).code, "not_found");
  });
});
