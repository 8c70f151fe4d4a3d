// SessionService and the electd-session header over real ports, once per protocol: TTLs,
// expiry replacing the leader with term+1 (seen through Watch), keep-alive, closing,
// Close(id) with the header, unknown and expired sessions, session-less candidates, and
// the sessions limit.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import type { Electd } from "../../server/electd.js";
import { start } from "../../server/electd.js";
import { rejects } from "../support/rejects.js";
import { testConfig } from "../support/server.js";
import { protocols } from "./protocols.js";
import { watchTerms } from "./terms.js";

const HEADER = "electd-session";
const flags = ["--session-ttl-min", "100ms", "--session-ttl", "3s", "--session-ttl-max", "1m"];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let electd: Electd;
before(async () => {
  electd = await start(testConfig(flags));
});
after(() => electd.stop(500));

for (const [index, protocol] of protocols.entries()) {
  describe(`sessions over ${protocol.name}`, () => {
    let sessions: Client<typeof SessionService>;
    let elections: Client<typeof LeaderElection>;
    let close: () => void;
    let count = 0;
    /** A fresh, created election for one test. */
    const election = async () => {
      const name = `p${index}-e${++count}`;
      await elections.create({ id: { name } });
      return { name };
    };
    const open = async (ttlMs: number) =>
      (await sessions.openSession({ ttl: durationFromMs(ttlMs) })).sessionId;
    const bound = (session: string) => ({ headers: { [HEADER]: session } });

    before(() => {
      const opened = protocol.open(electd.url);
      close = opened.close;
      sessions = createClient(SessionService, opened.transport);
      elections = createClient(LeaderElection, opened.transport);
    });
    after(() => close());

    it("opens a session with the TTL asked for and reports the time it has left", async () => {
      const opened = await sessions.openSession({ ttl: durationFromMs(2000) });
      assert.ok(opened.ttl);
      assert.equal(durationMs(opened.ttl), 2000);
      await sleep(150);
      const got = await sessions.getSession({ sessionId: opened.sessionId });
      assert.ok(got.ttl && got.remaining);
      assert.equal(durationMs(got.ttl), 2000);
      const remaining = durationMs(got.remaining);
      assert.ok(remaining <= 1850 && remaining > 1500, `remaining ${remaining} ms`);
      const kept = await sessions.keepAlive({ sessionId: opened.sessionId });
      assert.ok(kept.ttl);
      assert.equal(durationMs(kept.ttl), 2000);
      const again = await sessions.getSession({ sessionId: opened.sessionId });
      assert.ok(again.remaining && durationMs(again.remaining) > 1900);
      await sessions.closeSession({ sessionId: opened.sessionId });
    });

    it("opens a session with the server default TTL when none is asked for", async () => {
      const opened = await sessions.openSession({});
      assert.ok(opened.ttl);
      assert.equal(durationMs(opened.ttl), 3000);
      await sessions.closeSession({ sessionId: opened.sessionId });
    });

    it("refuses a TTL outside the configured bounds with invalid_argument naming ttl", async () => {
      await rejects(
        sessions.openSession({ ttl: durationFromMs(50) }),
        Code.InvalidArgument,
        /^ttl .*minimum is 0\.1s \(SESSION_TTL_MIN\)$/,
      );
      await rejects(
        sessions.openSession({ ttl: durationFromMs(61_000) }),
        Code.InvalidArgument,
        /^ttl .*maximum is 60s \(SESSION_TTL_MAX\)$/,
      );
      await rejects(
        sessions.openSession({ ttl: durationFromMs(-1000) }),
        Code.InvalidArgument,
        /^ttl /,
      );
    });

    it("replaces a leader whose session expires by the next candidate with term+1, seen through Watch", async () => {
      const id = await election();
      const sentAt = performance.now();
      const session = await open(500);
      const openedAt = performance.now();
      await elections.enter({ id, candidate: "a" }, bound(session));
      await elections.enter({ id, candidate: "b" });
      const watch = watchTerms(elections, id.name);
      try {
        const first = await watch.until(() => true);
        assert.deepEqual([first.term.term, first.term.leader], [1n, "a"]);
        const next = await watch.until((t) => t.leader !== "a", 2000);
        assert.equal(next.term.term, 2n);
        assert.equal(next.term.leader, "b");
        assert.deepEqual(next.term.candidates, []);
        // Never before the TTL has passed since the open was sent; within TTL + 1 s of its answer.
        assert.ok(next.at - sentAt >= 500, `replaced ${next.at - sentAt} ms after the open`);
        assert.ok(next.at - openedAt < 1500, `replaced ${next.at - openedAt} ms after the open`);
      } finally {
        await watch.close();
      }
    });

    it("keeps the candidates of a session that is kept alive", async () => {
      const id = await election();
      const session = await open(1000);
      await elections.enter({ id, candidate: "a" }, bound(session));
      await elections.enter({ id, candidate: "b" });
      const watch = watchTerms(elections, id.name);
      try {
        // Well past twice the TTL, kept alive every fifth of it.
        for (let i = 0; i < 12; i++) {
          await sleep(200);
          await sessions.keepAlive({ sessionId: session });
        }
        const { term } = await elections.getTerm({ id });
        assert.equal(term?.leader, "a");
        assert.equal(term?.term, 1n);
        assert.equal(watch.seen.length, 1, "no change was published while kept alive");
      } finally {
        await watch.close();
        await sessions.closeSession({ sessionId: session });
      }
    });

    it("withdraws the candidates of a closed session in every election, forgets it, and takes a repeated close as done", async () => {
      const one = await election();
      const two = await election();
      const session = await open(5000);
      await elections.enter({ id: one, candidate: "a" }, bound(session));
      await elections.enter({ id: one, candidate: "b" });
      await elections.enter({ id: two, candidate: "x" });
      await elections.enter({ id: two, candidate: "a" }, bound(session));
      await elections.enter({ id: two, candidate: "y" });
      const watch = watchTerms(elections, one.name);
      try {
        await sessions.closeSession({ sessionId: session });
        const next = await watch.until((t) => t.leader === "b");
        assert.equal(next.term.term, 2n);
        const other = (await elections.getTerm({ id: two })).term;
        assert.deepEqual([other?.term, other?.leader, other?.candidates], [1n, "x", ["y"]]);
        await rejects(sessions.keepAlive({ sessionId: session }), Code.NotFound, /not found/);
        await rejects(sessions.getSession({ sessionId: session }), Code.NotFound, /not found/);
        // Closing it again is a retry of the same request: it succeeds and changes nothing.
        await sessions.closeSession({ sessionId: session });
        await rejects(
          sessions.closeSession({ sessionId: "never-opened" }),
          Code.NotFound,
          /not found/,
        );
      } finally {
        await watch.close();
      }
    });

    it("Close(id) with the session header withdraws that session's candidates in that election only", async () => {
      const one = await election();
      const two = await election();
      const session = await open(5000);
      await elections.enter({ id: one, candidate: "a" }, bound(session));
      await elections.enter({ id: one, candidate: "b" });
      await elections.enter({ id: one, candidate: "c" }, bound(session));
      await elections.enter({ id: one, candidate: "d" });
      await elections.enter({ id: two, candidate: "a" }, bound(session));
      const watch = watchTerms(elections, one.name);
      try {
        await elections.close({ id: one });
        assert.equal(
          (await elections.getTerm({ id: one })).term?.leader,
          "a",
          "no header: no change",
        );
        await elections.close({ id: one }, bound(session));
        // a and c leave as one change: b leads with term 2, d follows; a watcher never
        // sees an intermediate state.
        const next = await watch.until((t) => t.leader !== "a");
        assert.deepEqual(
          [next.term.term, next.term.leader, next.term.candidates],
          [2n, "b", ["d"]],
        );
        assert.equal(watch.seen.length, 2);
        assert.equal((await elections.getTerm({ id: two })).term?.leader, "a");
        await sessions.keepAlive({ sessionId: session });
      } finally {
        await watch.close();
        await sessions.closeSession({ sessionId: session });
      }
    });

    it("answers not_found for unknown, closed and expired sessions, and changes nothing", async () => {
      const id = await election();
      const unknown = "AAAAAAAAAAAAAAAAAAAAAAAA";
      await rejects(
        sessions.keepAlive({ sessionId: unknown }),
        Code.NotFound,
        /session .*not found/,
      );
      await rejects(sessions.getSession({ sessionId: unknown }), Code.NotFound, /not found/);
      await rejects(sessions.closeSession({ sessionId: unknown }), Code.NotFound, /not found/);
      await rejects(
        elections.enter({ id, candidate: "a" }, bound(unknown)),
        Code.NotFound,
        /electd-session header not found/,
      );
      await rejects(
        elections.close({ id }, bound(unknown)),
        Code.NotFound,
        /electd-session header/,
      );
      const expired = await open(100);
      await sleep(250);
      await rejects(sessions.keepAlive({ sessionId: expired }), Code.NotFound, /expired/);
      await rejects(
        elections.enter({ id, candidate: "a" }, bound(expired)),
        Code.NotFound,
        /electd-session header not found/,
      );
      const { term } = await elections.getTerm({ id });
      assert.deepEqual([term?.term, term?.leader, term?.candidates], [0n, "", []]);
    });

    it("refuses an empty session id or header with invalid_argument naming it", async () => {
      const id = await election();
      await rejects(
        sessions.keepAlive({ sessionId: "" }),
        Code.InvalidArgument,
        /^session_id must not be empty$/,
      );
      await rejects(
        elections.enter({ id, candidate: "a" }, bound("")),
        Code.InvalidArgument,
        /^electd-session header must not be empty$/,
      );
    });

    it("leaves candidates entered without a session in place when a session expires", async () => {
      const id = await election();
      await elections.enter({ id, candidate: "x" });
      const session = await open(500);
      await elections.enter({ id, candidate: "a" }, bound(session));
      await elections.enter({ id, candidate: "y" });
      const watch = watchTerms(elections, id.name);
      try {
        const next = await watch.until((t) => !t.candidates.includes("a"));
        assert.deepEqual(
          [next.term.term, next.term.leader, next.term.candidates],
          [1n, "x", ["y"]],
        );
      } finally {
        await watch.close();
      }
    });

    it("binds a candidate to the session that entered it first: a later Enter with another session changes nothing", async () => {
      const id = await election();
      const second = await open(5000);
      const first = await open(500);
      await elections.enter({ id, candidate: "a" }, bound(first));
      await elections.enter({ id, candidate: "a" }, bound(second));
      await elections.enter({ id, candidate: "b" });
      const watch = watchTerms(elections, id.name);
      try {
        const next = await watch.until((t) => t.leader === "b");
        assert.equal(next.term.term, 2n);
      } finally {
        await watch.close();
        await sessions.closeSession({ sessionId: second });
      }
    });
  });
}

describe("the sessions limit", () => {
  it("refuses a session beyond MAX_SESSIONS with resource_exhausted, until one closes", async (t) => {
    const small = await start(testConfig([...flags, "--max-sessions", "2"]));
    t.after(() => small.stop(500));
    const [protocol] = protocols;
    assert.ok(protocol);
    const opened = protocol.open(small.url);
    t.after(() => opened.close());
    const sessions = createClient(SessionService, opened.transport);
    const one = await sessions.openSession({});
    await sessions.openSession({});
    await rejects(
      sessions.openSession({}),
      Code.ResourceExhausted,
      /limit reached with 2 sessions \(MAX_SESSIONS\)/,
    );
    await sessions.closeSession({ sessionId: one.sessionId });
    await sessions.openSession({});
  });
});

describe("reading a session with an HTTP GET", () => {
  it("answers GetSession as a cacheable Connect GET, as a dashboard would call it", async () => {
    const [protocol] = protocols;
    assert.ok(protocol);
    const opened = protocol.open(electd.url);
    const sessions = createClient(SessionService, opened.transport);
    const { sessionId } = await sessions.openSession({ ttl: durationFromMs(5000) });
    const message = encodeURIComponent(JSON.stringify({ sessionId }));
    const response = await fetch(
      `${electd.url}/electd.v1.SessionService/GetSession?encoding=json&message=${message}`,
    );
    assert.equal(response.status, 200);
    const body = (await response.json()) as { ttl: string; remaining: string };
    assert.equal(body.ttl, "5s");
    assert.match(body.remaining, /^[0-9.]+s$/);
    assert.ok(Number.parseFloat(body.remaining) > 4);
    await sessions.closeSession({ sessionId });
    opened.close();
  });
});
