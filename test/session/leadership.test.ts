// The leadership client (client/leadership.ts) against a real server, over Connect JSON
// and gRPC: election and deposal callbacks, stop(), giving up leadership on its own clock
// when it cannot keep alive, leading on while its lease holds when its server dies, moving
// to the next server with its session, campaigning again with a new session, eviction, and
// a campaigning process killed with SIGKILL being replaced within TTL + 1 s. Tests of the
// lease's timing step a ManualClock instead of waiting, so machine load cannot change them.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { campaign, type Leadership, type LeadershipOptions } from "../../client/leadership.js";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { type Electd, start } from "../../server/electd.js";
import { ManualClock } from "../support/clock.js";
import { tcpProxy } from "../support/proxy.js";
import { testConfig } from "../support/server.js";
import { watchTerms } from "./terms.js";

const TTL_MS = 1000;
/**
 * TTL of the campaigns on a ManualClock: the server's real-time TTL must outlast the test,
 * since their keep-alives are sent only when the test steps the clock.
 */
const LONG_TTL_MS = 60_000;
/** The default margin: a tenth of the TTL. */
const LONG_MARGIN_MS = LONG_TTL_MS / 10;

/** Lets real I/O (calls to the server and their answers) run. */
const settle = (ms = 20) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits (in real time, at most 5 s) until `done()`; I/O is real even when the clock is not. */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 5000;
  while (!done()) {
    assert.ok(performance.now() < deadline, `${what} within 5 s`);
    await settle(5);
  }
}

/** Counts the keep-alives a server answered, seen by the client. */
function keepAliveCounter() {
  const counter = {
    answered: 0,
    interceptor: ((next) => async (req) => {
      const res = await next(req);
      if (req.method.name === "KeepAlive") counter.answered++;
      return res;
    }) as Interceptor,
  };
  return counter;
}

/** Campaign events as they happen, with the time each was called. */
function recorder() {
  const events: { kind: "elected" | "deposed"; term: bigint; at: number }[] = [];
  const waiters = new Set<() => void>();
  return {
    events,
    onElected(term: bigint) {
      events.push({ kind: "elected", term, at: performance.now() });
      for (const wake of waiters) wake();
    },
    onDeposed(term: bigint) {
      events.push({ kind: "deposed", term, at: performance.now() });
      for (const wake of waiters) wake();
    },
    async next(kind: "elected" | "deposed", timeoutMs = 5000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const found = events.find((e) => e.kind === kind);
        if (found) return found;
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`not ${kind} within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          const wake = () => {
            clearTimeout(timer);
            waiters.delete(wake);
            resolve();
          };
          waiters.add(wake);
        });
      }
    },
  };
}

interface Variant {
  readonly name: string;
  readonly child: "connect" | "grpc";
  transport(url: string, interceptors?: Interceptor[]): Transport;
}

let electd: Electd;
const managers: Http2SessionManager[] = [];
before(async () => {
  electd = await start(testConfig(["--session-ttl-min", "100ms"]));
});
after(async () => {
  for (const manager of managers) manager.abort();
  await electd.stop(500);
});

const variants: Variant[] = [
  {
    name: "Connect JSON over HTTP/1.1",
    child: "connect",
    transport: (baseUrl, interceptors = []) =>
      createConnectTransport({ baseUrl, httpVersion: "1.1", interceptors }),
  },
  {
    name: "gRPC over HTTP/2",
    child: "grpc",
    transport(baseUrl, interceptors = []) {
      const sessionManager = new Http2SessionManager(baseUrl);
      managers.push(sessionManager);
      return createGrpcTransport({ baseUrl, sessionManager, interceptors });
    },
  },
];

for (const [index, variant] of variants.entries()) {
  describe(`leadership client over ${variant.name}`, () => {
    let count = 0;
    const election = () => `lead-${index}-${++count}`;
    const running: Leadership[] = [];
    after(() => Promise.all(running.map((c) => c.stop())));
    const run = (
      options: Omit<LeadershipOptions, "transport"> & { interceptors?: Interceptor[] },
    ) => {
      const { interceptors, ...rest } = options;
      const c = campaign({ transport: variant.transport(electd.url, interceptors), ...rest });
      running.push(c);
      return c;
    };

    it("keeps its session and does not push the term up while it cannot watch, then claims the term it holds", async () => {
      const full = await start(testConfig(["--session-ttl-min", "100ms", "--max-watches", "1"]));
      const name = election();
      const elections = createClient(LeaderElection, variant.transport(full.url));
      await elections.create({ id: { name } });
      // Another client holds the only watch slot.
      const holder = new AbortController();
      const held = elections
        .watch({ id: { name } }, { signal: holder.signal })
        [Symbol.asyncIterator]();
      await held.next();
      const a = recorder();
      const errors: unknown[] = [];
      const clock = new ManualClock();
      const c = campaign({
        transport: variant.transport(full.url),
        election: name,
        candidate: "a",
        ttlMs: LONG_TTL_MS,
        clock,
        ...a,
        onError: (e) => errors.push(e),
      });
      try {
        // Entered and leading on the server, but unable to confirm it by a watch, tried
        // again after 100, 200 and 400 ms of its clock.
        while (errors.length < 3) {
          await clock.advance(50);
          await settle();
        }
        const { term } = await elections.getTerm({ id: { name } });
        assert.deepEqual([term?.term, term?.leader], [1n, "a"]);
        assert.equal(c.leading, false);
        assert.ok(errors.every((e) => ConnectError.from(e).code === Code.ResourceExhausted));
        holder.abort();
        while (!a.events.length) {
          await clock.advance(50);
          await settle();
        }
        assert.equal((await a.next("elected")).term, 1n);
        assert.equal((await elections.getTerm({ id: { name } })).term?.term, 1n);
      } finally {
        await c.stop();
        await full.stop(500);
      }
    });

    it("elects the first campaigner, and the next one with term+1 when the first stops", async () => {
      const name = election();
      const a = recorder();
      const b = recorder();
      const first = run({ election: name, candidate: "a", ttlMs: TTL_MS, ...a });
      assert.equal((await a.next("elected")).term, 1n);
      assert.ok(first.leading);
      assert.equal(first.term, 1n);
      const second = run({ election: name, candidate: "b", ttlMs: TTL_MS, ...b });
      const elections = createClient(LeaderElection, variant.transport(electd.url));
      const watch = watchTerms(elections, name);
      try {
        await watch.until((t) => t.candidates.includes("b"));
        assert.equal(second.leading, false);
        await first.stop();
        assert.deepEqual(
          a.events.map((e) => [e.kind, e.term]),
          [
            ["elected", 1n],
            ["deposed", 1n],
          ],
        );
        assert.equal(first.leading, false);
        assert.equal((await b.next("elected")).term, 2n);
        assert.equal(second.term, 2n);
        // stop() closed the session: "a" is gone, not merely no longer leading.
        const { term } = await elections.getTerm({ id: { name } });
        assert.deepEqual([term?.leader, term?.candidates], ["b", []]);
      } finally {
        await watch.close();
        await second.stop();
      }
    });

    it("stops claiming leadership on its own clock when it cannot keep alive, before the server hands it on, then campaigns again", async () => {
      const name = election();
      const a = recorder();
      const b = recorder();
      const clock = new ManualClock();
      let cut = false;
      /** Clock time at which the last keep-alive (or OpenSession) that succeeded was sent. */
      let confirmedSentAt = 0;
      // A partition for keep-alives: they fail; the open Watch and CloseSession get through.
      const partition: Interceptor = (next) => async (req) => {
        const keepAlive = req.method.name === "KeepAlive" || req.method.name === "OpenSession";
        if (cut && keepAlive) throw new ConnectError("partitioned", Code.Unavailable);
        const sentAt = clock.now();
        const res = await next(req);
        if (keepAlive) confirmedSentAt = sentAt;
        return res;
      };
      const first = run({
        election: name,
        candidate: "a",
        ttlMs: LONG_TTL_MS,
        retryMs: 50,
        clock,
        interceptors: [partition],
        ...a,
      });
      await a.next("elected");
      const second = run({ election: name, candidate: "b", ttlMs: TTL_MS, ...b });
      const elections = createClient(LeaderElection, variant.transport(electd.url));
      const watch = watchTerms(elections, name);
      try {
        await watch.until((t) => t.candidates.includes("b"));
        // One keep-alive gets through, then the partition.
        const opened = confirmedSentAt;
        await clock.advance(LONG_TTL_MS / 3);
        await until(() => confirmedSentAt !== opened, "a keep-alive answered");
        const sessionBefore = first.sessionId;
        cut = true;
        const giveUpAt = confirmedSentAt + LONG_TTL_MS - LONG_MARGIN_MS;
        await clock.advance(giveUpAt - 1 - clock.now());
        await settle();
        assert.equal(first.leading, true, "leads until the lease less the margin");
        assert.equal((await elections.getTerm({ id: { name } })).term?.leader, "a");
        await clock.advance(1);
        const deposed = await a.next("deposed", 1000);
        assert.equal(clock.now(), giveUpAt);
        assert.equal(first.leading, false);
        // The server would hand on only at its TTL: "b" leads once "a" closed its session.
        const replaced = await watch.until((t) => t.leader === "b");
        assert.ok(deposed.at < replaced.at);
        assert.equal(replaced.term.term, 2n);
        cut = false;
        // Back in touch: a new session, and "a" queues behind the new leader.
        while (!watch.seen.some((t) => t.term.leader === "b" && t.term.candidates.includes("a"))) {
          await clock.advance(50);
          await settle();
        }
        assert.notEqual(first.sessionId, sessionBefore);
        assert.equal(b.events.at(-1)?.kind, "elected");
      } finally {
        await watch.close();
        await first.stop();
        await second.stop();
      }
    });

    it("keeps leading while its lease holds when its server dies, then gives up on its own clock", async () => {
      const doomed = await start(testConfig(["--session-ttl-min", "100ms"]));
      const name = election();
      const a = recorder();
      const errors: unknown[] = [];
      const clock = new ManualClock();
      const c = campaign({
        transport: variant.transport(doomed.url),
        election: name,
        candidate: "a",
        ttlMs: LONG_TTL_MS,
        clock,
        ...a,
        onError: (e) => errors.push(e),
      });
      try {
        assert.equal((await a.next("elected")).term, 1n);
        await doomed.stop(0);
        // The watch and then a keep-alive fail; leadership holds until the lease is out.
        while (errors.length < 2) {
          await clock.advance(LONG_TTL_MS / 3);
          await settle();
        }
        const giveUpAt = LONG_TTL_MS - LONG_MARGIN_MS;
        assert.ok(clock.now() < giveUpAt);
        await clock.advance(giveUpAt - 1 - clock.now());
        await settle();
        assert.equal(c.leading, true);
        assert.deepEqual(
          a.events.map((e) => e.kind),
          ["elected"],
        );
        await clock.advance(1);
        assert.equal((await a.next("deposed", 1000)).term, 1n);
        assert.equal(c.leading, false);
      } finally {
        const stopped = c.stop();
        // Closing the session on a dead server waits no longer than the clock says.
        await clock.advance(LONG_TTL_MS);
        await stopped;
      }
    });

    it("moves to the next server when its server cannot be reached, keeping its session and leadership", async () => {
      // Two addresses of one server: as two servers sharing their sessions' store would be.
      const first = await tcpProxy(electd.url);
      const second = await tcpProxy(electd.url);
      const name = election();
      const a = recorder();
      const clock = new ManualClock();
      const kept = keepAliveCounter();
      const c = campaign({
        transport: [
          variant.transport(first.url, [kept.interceptor]),
          variant.transport(second.url, [kept.interceptor]),
        ],
        election: name,
        candidate: "a",
        ttlMs: LONG_TTL_MS,
        clock,
        ...a,
      });
      const elections = createClient(LeaderElection, variant.transport(electd.url));
      try {
        assert.equal((await a.next("elected")).term, 1n);
        const session = c.sessionId;
        assert.equal(second.connections, 0);
        await first.cut();
        // The watch is opened again through the second address, then a keep-alive goes there.
        while (second.connections === 0) {
          await clock.advance(50);
          await settle();
        }
        // Well past the lease it had when the first server went away: kept alive.
        for (let i = 1; i <= 4; i++) {
          await clock.advance(LONG_TTL_MS / 3);
          await until(() => kept.answered === i, `keep-alive ${i} answered`);
        }
        assert.ok(clock.now() > LONG_TTL_MS);
        assert.equal(c.leading, true);
        assert.equal(c.sessionId, session);
        assert.equal(c.term, 1n);
        assert.deepEqual(
          a.events.map((e) => e.kind),
          ["elected"],
        );
        const { term } = await elections.getTerm({ id: { name } });
        assert.deepEqual([term?.term, term?.leader], [1n, "a"]);
      } finally {
        const stopped = c.stop();
        await clock.advance(LONG_TTL_MS);
        await stopped;
        await second.cut();
      }
    });

    it("ends its campaign when an operator evicts the candidate", async () => {
      const name = election();
      const a = recorder();
      const first = run({ election: name, candidate: "a", ttlMs: TTL_MS, ...a });
      await a.next("elected");
      const elections = createClient(LeaderElection, variant.transport(electd.url));
      await elections.evict({ id: { name }, candidate: "a" });
      await first.done;
      assert.equal((await a.next("deposed")).term, 1n);
      assert.equal(first.sessionId, undefined);
      const { term } = await elections.getTerm({ id: { name } });
      assert.deepEqual([term?.leader, term?.candidates], ["", []]);
    });

    it("replaces a campaigning process killed with SIGKILL within TTL + 1 s", async (t) => {
      const name = election();
      const elections = createClient(LeaderElection, variant.transport(electd.url));
      const script = fileURLToPath(new URL("./fixtures/campaigner.ts", import.meta.url));
      const child: ChildProcess = spawn(
        process.execPath,
        ["--import", "tsx", script, electd.url, variant.child, name, "doomed", String(TTL_MS)],
        { stdio: ["ignore", "pipe", "inherit"] },
      );
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      });
      let output = "";
      child.stdout?.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      const deadline = performance.now() + 15_000;
      while (!output.includes("elected 1\n")) {
        assert.ok(performance.now() < deadline, "the child was not elected within 15 s");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await elections.enter({ id: { name }, candidate: "survivor" });
      const watch = watchTerms(elections, name);
      try {
        await watch.until((term) => term.candidates.includes("survivor"));
        const exited = once(child, "exit");
        const killedAt = performance.now();
        child.kill("SIGKILL");
        await exited;
        const replaced = await watch.until((term) => term.leader === "survivor", TTL_MS + 2000);
        const took = replaced.at - killedAt;
        t.diagnostic(`replaced ${took.toFixed(0)} ms after SIGKILL (TTL ${TTL_MS} ms)`);
        assert.ok(took <= TTL_MS + 1000, `replaced after ${took} ms`);
        assert.equal(replaced.term.term, 2n);
      } finally {
        await watch.close();
      }
    });
  });
}
