// Two electd servers, each its own process, on one real three-member etcd cluster: what one
// server commits the other serves and watches; a session lives in the cluster, so it is
// kept alive through either server and outlives the server that opened it; conflicting
// calls on both servers at once yield the states of one serial order of those calls; and
// the loss of etcd members is answered, never hung on. These run in real time with
// generous bounds: the failover bound (TTL + 1 s) is the product's promise.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Etcd3 } from "etcd3";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { apply, type ElectionState, type Operation } from "../../server/election/rules.js";
import { watchTerms } from "../session/terms.js";
import { type EtcdCluster, startEtcd } from "../support/etcd.js";
import { type ServerProcess, spawnServer } from "../support/process.js";
import { rejects } from "../support/rejects.js";

const HEADER = "electd-session";

let cluster: EtcdCluster;
let prefixes = 0;
/** Killed when the file ends (an `after` inside a `before` hook would run at its end). */
const running: ServerProcess[] = [];

/** An electd process on the cluster; every server of one test shares its prefix. */
async function server(prefix: string, extra: readonly string[] = []): Promise<ServerProcess> {
  const electd = await spawnServer([
    ...["--port", "0", "--store", "etcd", "--etcd-endpoints", cluster.endpoints.join(",")],
    ...["--etcd-prefix", prefix, "--session-ttl-min", "1s", "--watch-buffer", "1000"],
    ...extra,
  ]);
  running.push(electd);
  return electd;
}

function clients(url: string) {
  const transport = createGrpcTransport({ baseUrl: url });
  return {
    elections: createClient(LeaderElection, transport),
    sessions: createClient(SessionService, transport),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Calls again while the answer is unavailable (etcd electing a leader), for up to 30 s. */
async function retrying<T>(call: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const unavailable = error instanceof ConnectError && error.code === Code.Unavailable;
      if (!unavailable || performance.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

before(async () => {
  cluster = await startEtcd();
});
after(async () => {
  for (const electd of running) electd.child.kill("SIGKILL");
  await cluster.stop();
});

describe("two servers on one etcd cluster", () => {
  let a: ReturnType<typeof clients>;
  let b: ReturnType<typeof clients>;
  before(async () => {
    const prefix = `/two-${++prefixes}/`;
    const [first, second] = await Promise.all([server(prefix), server(prefix)]);
    a = clients(first.url);
    b = clients(second.url);
  });

  it("serves on one server what was committed through the other, and watches it in order", async () => {
    const id = { name: "seen-everywhere" };
    await a.elections.create({ id });
    const watch = watchTerms(b.elections, id.name);
    try {
      await watch.until((t) => t.term === 0n);
      await a.elections.enter({ id, candidate: "x" });
      await a.elections.enter({ id, candidate: "y" });
      await b.elections.anoint({ id, candidate: "y" });
      await a.elections.withdraw({ id, candidate: "y" });
      const last = await watch.until((t) => t.term === 3n);
      assert.deepEqual([last.term.leader, last.term.candidates], ["x", []]);
      assert.deepEqual(
        watch.seen.map((s) => `${s.term.term}:${s.term.leader}:${s.term.candidates.join(",")}`),
        ["0::", "1:x:", "1:x:y", "2:y:x", "3:x:"],
      );
      const { term } = await b.elections.getTerm({ id });
      assert.deepEqual([term?.term, term?.leader], [3n, "x"]);
    } finally {
      await watch.close();
    }
  });

  it("grants whole seconds of TTL, says so, and keeps a session alive through either server", async () => {
    const opened = await a.sessions.openSession({ ttl: durationFromMs(2500) });
    assert.equal(durationMs(opened.ttl ?? durationFromMs(0)), 3000, "2.5 s rounds up to 3 s");
    const kept = await b.sessions.keepAlive({ sessionId: opened.sessionId });
    assert.equal(durationMs(kept.ttl ?? durationFromMs(0)), 3000);
    const got = await b.sessions.getSession({ sessionId: opened.sessionId });
    const remaining = durationMs(got.remaining ?? durationFromMs(0));
    assert.ok(remaining > 0 && remaining <= 3000, `remaining ${remaining} ms`);
    await b.sessions.closeSession({ sessionId: opened.sessionId });
    await rejects(
      a.sessions.getSession({ sessionId: opened.sessionId }),
      Code.NotFound,
      /not found/,
    );
    await rejects(
      a.sessions.keepAlive({ sessionId: opened.sessionId }),
      Code.NotFound,
      /not found/,
    );
  });

  it("withdraws a closed session's candidates at once, whichever server closes it", async () => {
    const id = { name: "closed-through-b" };
    await a.elections.create({ id });
    const { sessionId } = await a.sessions.openSession({ ttl: durationFromMs(10_000) });
    await a.elections.enter({ id, candidate: "leader" }, { headers: { [HEADER]: sessionId } });
    await b.elections.enter({ id, candidate: "follower" });
    await b.sessions.closeSession({ sessionId });
    // Answered only once the release committed: no waiting needed.
    const { term } = await a.elections.getTerm({ id });
    assert.deepEqual([term?.term, term?.leader, term?.candidates], [2n, "follower", []]);
    await b.sessions.closeSession({ sessionId }); // idempotent on the server that closed it
    await rejects(
      a.elections.enter({ id, candidate: "again" }, { headers: { [HEADER]: sessionId } }),
      Code.NotFound,
      /electd-session header not found/,
    );
  });

  it("yields the states of one serial order of conflicting calls made on both servers at once", async () => {
    const id = { name: "contended" };
    await a.elections.create({ id });
    const watchA = watchTerms(a.elections, id.name);
    const watchB = watchTerms(b.elections, id.name);
    await Promise.all([watchA.until(() => true), watchB.until(() => true)]);
    const kinds = ["enter", "enter", "withdraw", "anoint", "promote", "demote", "evict"] as const;
    const names = ["c0", "c1", "c2", "c3", "c4"];
    // A fixed pseudo-random sequence: the same calls every run, their interleaving not.
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ops: Operation[] = Array.from({ length: 80 }, () => ({
      kind: kinds[next(kinds.length)] as (typeof kinds)[number],
      candidate: names[next(names.length)] as string,
    }));
    await Promise.all(
      ops.map((op, i) => {
        const client = i % 2 === 0 ? a : b;
        if (op.kind === "release") throw new Error("not used");
        return client.elections[op.kind]({ id, candidate: op.candidate });
      }),
    );
    const { term: final } = await a.elections.getTerm({ id });
    const states = (watch: typeof watchA) =>
      watch.seen.map((s) => ({
        term: s.term.term,
        leader: s.term.leader,
        candidates: [...s.term.candidates],
      }));
    await watchA.until((t) => t.term === final?.term && t.leader === final.leader);
    await watchB.until((t) => t.term === final?.term && t.leader === final.leader);
    await sleep(200);
    await Promise.all([watchA.close(), watchB.close()]);
    const seenA = states(watchA);
    assert.deepEqual(states(watchB), seenA, "both servers' watchers saw the same states");
    assert.deepEqual(seenA.at(-1), {
      term: final?.term,
      leader: final?.leader,
      candidates: [...(final?.candidates ?? [])],
    });
    assert.ok(serialOrder(seenA, ops), "a serial order of the calls explains every state");
  });
});

/**
 * Whether the calls, applied one at a time in some order through the rules, produce exactly
 * `states` (each change one state; calls that change nothing may fall anywhere). Equal calls
 * are interchangeable, so the search counts what is left of each kind of call: a memo keyed
 * by which calls were used would grow with every permutation of equal ones.
 */
function serialOrder(states: readonly ElectionState[], ops: readonly Operation[]): boolean {
  const limits = { maxCandidates: 100 };
  const same = (x: ElectionState, y: ElectionState) =>
    x.term === y.term && x.leader === y.leader && x.candidates.join() === y.candidates.join();
  const left = new Map<string, { op: Operation; count: number }>();
  for (const op of ops) {
    const key = `${op.kind}\u0000${"candidate" in op ? op.candidate : ""}`;
    const entry = left.get(key) ?? { op, count: 0 };
    entry.count += 1;
    left.set(key, entry);
  }
  const failed = new Set<string>();
  const search = (at: number): boolean => {
    if (at === states.length - 1) return true;
    const key = `${at}:${[...left.values()].map((entry) => entry.count).join(",")}`;
    if (failed.has(key)) return false;
    for (const entry of left.values()) {
      if (entry.count === 0) continue;
      const outcome = apply(states[at] as ElectionState, entry.op, limits);
      if (outcome.ok && outcome.changed && same(outcome.state, states[at + 1] as ElectionState)) {
        entry.count -= 1;
        const found = search(at + 1);
        entry.count += 1;
        if (found) return true;
      }
    }
    failed.add(key);
    return false;
  };
  return search(0);
}

describe("a session outlives the server that opened it", () => {
  it("keeps its leader while kept alive through the other server, and fails over within TTL + 1 s once it is not", async () => {
    const prefix = `/outlive-${++prefixes}/`;
    const [first, second] = await Promise.all([server(prefix), server(prefix)]);
    const a = clients(first.url);
    const b = clients(second.url);
    const id = { name: "outlived" };
    await a.elections.create({ id });
    const { sessionId, ttl } = await a.sessions.openSession({ ttl: durationFromMs(2000) });
    const ttlMs = durationMs(ttl ?? durationFromMs(0));
    await a.elections.enter({ id, candidate: "leader" }, { headers: { [HEADER]: sessionId } });
    await a.elections.enter({ id, candidate: "follower" });
    const watch = watchTerms(b.elections, id.name);
    try {
      await watch.until((t) => t.leader === "leader");
      first.child.kill("SIGKILL");
      await first.exited;
      // Twice the TTL with server A dead, kept alive through B every half TTL: no failover.
      let lastKept = performance.now();
      for (let i = 0; i < 4; i++) {
        await sleep(ttlMs / 2);
        await b.sessions.keepAlive({ sessionId });
        lastKept = performance.now();
      }
      const { term } = await b.elections.getTerm({ id });
      assert.deepEqual([term?.term, term?.leader], [1n, "leader"]);
      assert.equal(watch.seen.at(-1)?.term.leader, "leader");
      // No more keep-alives: B (the only server left) sees the lease expire and fails over.
      const replaced = await watch.until((t) => t.leader === "follower", ttlMs + 5000);
      const after = replaced.at - lastKept;
      assert.equal(replaced.term.term, 2n);
      assert.ok(
        after >= ttlMs - 100,
        `failed over ${after.toFixed(0)} ms after the last keep-alive`,
      );
      assert.ok(
        after <= ttlMs + 1000,
        `failed over ${after.toFixed(0)} ms after the last keep-alive`,
      );
    } finally {
      await watch.close();
    }
  });
});

describe("etcd members fail", () => {
  it("loses no acknowledged change when a member dies under load, and answers unavailable without quorum until it is back", async () => {
    const prefix = `/faults-${++prefixes}/`;
    const [first, second] = await Promise.all([
      server(prefix, ["--etcd-timeout", "2s"]),
      server(prefix, ["--etcd-timeout", "2s"]),
    ]);
    const servers = [clients(first.url), clients(second.url)];
    const acknowledged: string[] = [];
    let stop = false;
    const writer = async (w: number) => {
      const client = servers[w % 2] as ReturnType<typeof clients>;
      for (let i = 0; !stop; i++) {
        const name = `w${w}-${i}`;
        try {
          await client.elections.create({ id: { name } });
          await client.elections.enter({ id: { name }, candidate: "a" });
          acknowledged.push(name);
        } catch (error) {
          if (!(error instanceof ConnectError && error.code === Code.Unavailable)) throw error;
        }
      }
    };
    await (servers[0] as ReturnType<typeof clients>).elections.create({ id: { name: "watched" } });
    const watch = watchTerms((servers[0] as ReturnType<typeof clients>).elections, "watched");
    after(() => watch.close());
    await watch.until((t) => t.term === 0n);
    const writers = [0, 1, 2, 3].map(writer);
    await sleep(500);
    await cluster.kill(0);
    await sleep(1500);
    stop = true;
    await Promise.all(writers);
    assert.ok(acknowledged.length > 0);
    // Every acknowledged change is there, read through either server.
    for (const [i, name] of acknowledged.entries()) {
      const { term } = await (servers[i % 2] as ReturnType<typeof clients>).elections.getTerm({
        id: { name },
      });
      assert.deepEqual([term?.term, term?.leader], [1n, "a"], name);
    }
    // Two members down: no quorum. Calls fail unavailable within the deadline.
    await cluster.kill(1);
    const started = performance.now();
    await rejects(
      (servers[0] as ReturnType<typeof clients>).elections.enter({
        id: { name: acknowledged[0] as string },
        candidate: "b",
      }),
      Code.Unavailable,
      /etcd/,
    );
    const waited = performance.now() - started;
    assert.ok(waited < 2000 + 3000, `answered unavailable after ${waited.toFixed(0)} ms`);
    const health = await fetch(`${first.url}/healthz`);
    assert.equal(health.status, 503);
    assert.match(((await health.json()) as { reason: string }).reason, /etcd/);
    // Both members back: service resumes without a restart.
    await Promise.all([cluster.restart(0), cluster.restart(1)]);
    for (const client of servers) {
      for (let attempt = 0; ; attempt++) {
        try {
          await client.elections.create({ id: { name: "after-recovery" } });
          break;
        } catch (error) {
          if (attempt > 60) throw error;
          await sleep(500);
        }
      }
    }
    const { term } = await (servers[1] as ReturnType<typeof clients>).elections.getTerm({
      id: { name: acknowledged.at(-1) as string },
    });
    assert.equal(term?.leader, "a");
    // The Watch opened before the outage went on through it: a change made through the
    // other server after recovery reaches it.
    await (servers[1] as ReturnType<typeof clients>).elections.enter({
      id: { name: "watched" },
      candidate: "after",
    });
    await watch.until((t) => t.leader === "after", 10_000);
    assert.equal((await fetch(`${second.url}/healthz`)).status, 200);
  });
});

describe("a server that missed compacted history", () => {
  it("reads every election again and serves what it missed, its open Watch streams going on", async () => {
    const prefix = `/compacted-${++prefixes}/`;
    // A talks to member 2 only, so stopping that member cuts A off while B goes on.
    const [first, second] = await Promise.all([
      spawnServer([
        ...["--port", "0", "--store", "etcd", "--etcd-endpoints", cluster.endpoints[2] as string],
        ...["--etcd-prefix", prefix],
      ]),
      server(prefix),
    ]);
    running.push(first);
    const a = clients(first.url);
    const b = clients(second.url);
    const id = { name: "missed" };
    await b.elections.create({ id });
    await b.elections.create({ id: { name: "deleted-meanwhile" } });
    const watch = watchTerms(a.elections, id.name);
    try {
      await watch.until((t) => t.term === 0n);
      await cluster.kill(2);
      // If member 2 led the cluster, the others elect a leader first: until then calls
      // answer unavailable, and a client tries again.
      await retrying(() => b.elections.enter({ id, candidate: "x" }));
      await retrying(() => b.elections.enter({ id, candidate: "y" }));
      await retrying(() => b.elections.withdraw({ id, candidate: "x" }));
      const etcd = new Etcd3({ hosts: [cluster.endpoints[0] as string] });
      try {
        const { header } = await etcd.kv.range({ key: Buffer.from(prefix) });
        await etcd.kv.compact({ revision: header.revision, physical: true });
      } finally {
        etcd.close();
      }
      await cluster.restart(2);
      // The states in between were compacted away: the watch goes on with the latest.
      const latest = await watch.until((t) => t.leader === "y", 30_000);
      assert.deepEqual([latest.term.term, latest.term.candidates], [2n, []]);
      const { term } = await a.elections.getTerm({ id });
      assert.deepEqual([term?.term, term?.leader], [2n, "y"]);
    } finally {
      await watch.close();
    }
  });
});

describe("limits hold across the cluster", () => {
  it("lets two servers creating at once stay within MAX_ELECTIONS and MAX_SESSIONS together", async () => {
    const prefix = `/limits-${++prefixes}/`;
    const limits = ["--max-elections", "5", "--max-sessions", "4"];
    const [first, second] = await Promise.all([server(prefix, limits), server(prefix, limits)]);
    const both = [clients(first.url), clients(second.url)];
    const outcome = (call: Promise<unknown>) =>
      call.then(
        () => "ok",
        (error: unknown) => {
          assert.ok(error instanceof ConnectError, String(error));
          assert.equal(error.code, Code.ResourceExhausted, error.message);
          return "refused";
        },
      );
    const created = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        outcome(
          (both[i % 2] as ReturnType<typeof clients>).elections.create({ id: { name: `l${i}` } }),
        ),
      ),
    );
    assert.equal(created.filter((o) => o === "ok").length, 5);
    const opened = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        outcome(
          (both[i % 2] as ReturnType<typeof clients>).sessions.openSession({
            ttl: durationFromMs(30_000),
          }),
        ),
      ),
    );
    assert.equal(opened.filter((o) => o === "ok").length, 4);
  });
});
