// Soak: a mixed load with faults against one electd process on the durable store, then a
// check that nothing leaked and nothing acknowledged was lost.
//
// Load: campaigners that open a session, enter elections bound to it and keep it alive,
// then close it or vanish as a crashed process would; an operator calling Anoint, Promote,
// Demote, Evict and creating and deleting elections; directory readers paging through
// ListElections; watchers that read every state (and check terms never go backwards);
// watchers that stall on an election larger than an HTTP/2 window and vanish; TCP
// connections that open and say nothing.
// Faults, in turn: SIGKILL and restart on the same data directory; the data file locked by
// another process; the disk full (a 64 MiB tmpfs as the data directory, when this runs as
// root and may mount; the lock fault takes its turn otherwise).
// After each restart every election must still exist with a term at least the highest one
// a client was answered. At the end, with every client gone and every session closed or
// expired, every election must be empty (no dead leader left), and /healthz must report
// no watch and no session.
//
// usage: npm run soak -- [--minutes 2] [--fault-every 15]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { connect as connectHttp2 } from "node:http2";
import { connect as connectTcp, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import {
  LeaderElection,
  type Term,
  WatchRequestSchema,
} from "../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../gen/electd/v1/admin_pb.js";
import { ElectionDirectoryService } from "../gen/electd/v1/directory_pb.js";
import { SessionService } from "../gen/electd/v1/session_pb.js";
import { type ElectdProcess, grpcFrame, pausedStreams, rssMiB, spawnElectd } from "./support.js";

const { values } = parseArgs({
  options: {
    minutes: { type: "string", default: "2" },
    "fault-every": { type: "string", default: "15" },
  },
});
const runMs = Number(values.minutes) * 60_000;
const faultEveryMs = Number(values["fault-every"]) * 1000;
const ELECTIONS = 16;
const TTL_MS = 2000;
const out = (line: string) => process.stdout.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

// ---- the data directory: a tiny tmpfs when possible, so the disk can really fill up ----
const dataDir = mkdtempSync(join(tmpdir(), "electd-soak-"));
let tmpfs = false;
try {
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", dataDir], { stdio: "ignore" });
  tmpfs = true;
} catch {
  // Not root, or not allowed to mount: the disk-full fault is left out.
}

// ---- the server process, restarted on the same port and data directory ----
const port = await new Promise<number>((resolve) => {
  const probe = createServer().listen(0, "127.0.0.1", () => {
    const address = probe.address();
    probe.close(() => resolve(typeof address === "object" && address ? address.port : 0));
  });
});
const url = `http://127.0.0.1:${port}`;
let server: ElectdProcess | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(1));

async function startServer(): Promise<void> {
  server = await spawnElectd([
    ...["--port", String(port), "--log-level", "fatal", "--store", "durable"],
    ...["--data-dir", dataDir, "--session-ttl-min", "500ms", "--max-candidates", "2000"],
    // Room for the 10,000 abandoned watches at the end, with the load's own.
    ...["--max-watches", "10100", "--max-candidates-total", "10000"],
  ]);
}

async function healthz(): Promise<Record<string, number | string>> {
  return (await (await fetch(`${url}/healthz`)).json()) as Record<string, number | string>;
}

// ---- clients ----
const h2 = new Http2SessionManager(url);
// Every call has a deadline: one that hangs (its server was killed mid-call) must not hang
// the soak. Watch streams end with it too, and are opened again.
const grpc = createGrpcTransport({ baseUrl: url, sessionManager: h2, defaultTimeoutMs: 10_000 });
const json = createConnectTransport({
  baseUrl: url,
  httpVersion: "1.1",
  defaultTimeoutMs: 10_000,
});
const election = createClient(LeaderElection, grpc);
const electionJson = createClient(LeaderElection, json);
const sessions = createClient(SessionService, json);
const admin = createClient(ElectionAdminService, grpc);
const directory = createClient(ElectionDirectoryService, grpc);
const names = Array.from({ length: ELECTIONS }, (_, i) => `soak-${i}`);

const calls = new Map<string, number>();
const failures = new Map<string, number>();
const problems: string[] = [];
const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
/** The highest term any answer showed, per election: a restart may never go below it. */
const acked = new Map<string, bigint>();
const observe = (name: string, term: Term | undefined) => {
  if (term && term.term > (acked.get(name) ?? 0n)) acked.set(name, term.term);
};

async function call<T>(kind: string, work: () => Promise<T>): Promise<T | undefined> {
  count(calls, kind);
  try {
    return await work();
  } catch {
    // unavailable during a fault, refused while restarting: counted, then tried again.
    count(failures, kind);
    return undefined;
  }
}

let running = true;
const openSessions = new Set<string>();

async function campaigner(id: number): Promise<void> {
  while (running) {
    const opened = await call("OpenSession", () =>
      sessions.openSession({ ttl: durationFromMs(TTL_MS) }),
    );
    if (!opened) {
      await sleep(200);
      continue;
    }
    const { sessionId } = opened;
    openSessions.add(sessionId);
    const headers = { "electd-session": sessionId };
    for (const name of [pick(names), pick(names)]) {
      const entered = await call("Enter", () =>
        electionJson.enter(
          { id: { name }, candidate: `c${id}-${sessionId.slice(0, 6)}` },
          { headers },
        ),
      );
      observe(name, entered?.term);
    }
    const until = Date.now() + 1000 + Math.random() * 4000;
    while (running && Date.now() < until) {
      await sleep(TTL_MS / 4);
      await call("KeepAlive", () => sessions.keepAlive({ sessionId }));
    }
    if (Math.random() < 0.5) {
      // Closed cleanly, retried until it is done (a retried close is idempotent).
      for (let i = 0; i < 50; i++) {
        if (
          await call("CloseSession", () => sessions.closeSession({ sessionId }).then(() => true))
        ) {
          break;
        }
        await sleep(200);
      }
    }
    // Otherwise the process "crashed": the session is left to expire.
    openSessions.delete(sessionId);
  }
}

async function operator(): Promise<void> {
  const methods = ["anoint", "promote", "demote", "evict"] as const;
  let temp = 0;
  while (running) {
    const name = pick(names);
    const state = await call("GetTerm", () => election.getTerm({ id: { name } }));
    observe(name, state?.term);
    const queued = state?.term?.candidates ?? [];
    if (queued.length > 0) {
      const method = pick(methods);
      const request = { id: { name }, candidate: pick(queued) };
      const reply = await call(method, async () => (await election[method](request)).term);
      observe(name, reply);
    }
    const scratch = `soak-tmp-${temp++ % 20}`;
    await call("Create", () => election.create({ id: { name: scratch } }));
    await call("DeleteElection", () => admin.deleteElection({ name: scratch }));
    await sleep(50);
  }
}

async function lister(): Promise<void> {
  let pageToken = "";
  while (running) {
    const page = await call("ListElections", () =>
      directory.listElections({ pageSize: 5, pageToken }),
    );
    pageToken = page?.nextPageToken ?? "";
    await sleep(10);
  }
}

async function watcher(name: string): Promise<void> {
  while (running) {
    const controller = new AbortController();
    const stop = setInterval(() => {
      if (!running) controller.abort();
    }, 200);
    let last = 0n;
    await call("Watch", async () => {
      for await (const { term } of election.watch(
        { id: { name } },
        { signal: controller.signal },
      )) {
        const now = term?.term ?? 0n;
        if (now < last) problems.push(`${name}: a watcher saw term ${now} after ${last}`);
        last = now;
        observe(name, term);
      }
    });
    clearInterval(stop);
    await sleep(100);
  }
}

/** A Watch of the election larger than an HTTP/2 window, as a raw gRPC request. */
const bigWatch = grpcFrame(WatchRequestSchema, { id: { name: "soak-big" } });
const WATCH_PATH = "/atomix.runtime.election.v1.LeaderElection/Watch";

/** Watch streams that never read an election larger than an HTTP/2 window, then vanish. */
async function stallers(): Promise<void> {
  while (running) {
    const session = connectHttp2(url);
    session.on("error", () => {});
    await pausedStreams(session, WATCH_PATH, bigWatch, 20);
    count(calls, "stalled Watch x20");
    await sleep(1000 + Math.random() * 2000);
    session.destroy();
  }
}

/** Connections that open and say nothing; some are dropped, some left to the server. */
async function silent(): Promise<void> {
  const open = new Set<Socket>();
  while (running) {
    for (let i = 0; i < 20; i++) {
      const socket = connectTcp(port, "127.0.0.1");
      socket.on("error", () => {});
      socket.on("close", () => open.delete(socket));
      open.add(socket);
      setTimeout(() => socket.destroy(), Math.random() * 5000).unref();
    }
    count(calls, "silent connection x20");
    await sleep(1000);
  }
  for (const socket of open) socket.destroy();
}

// ---- faults ----
const faults = new Map<string, number>();

async function killAndRestart(): Promise<void> {
  count(faults, "SIGKILL and restart");
  const dead = server?.child;
  const exited = new Promise((r) => dead?.once("exit", r));
  dead?.kill("SIGKILL");
  await exited;
  await startServer();
  // Every election a client saw is still there, at a term no lower than any answer showed.
  for (const [name, term] of acked) {
    const now = (await election.getTerm({ id: { name } })).term?.term ?? 0n;
    count(calls, "GetTerm after restart");
    if (now < term) problems.push(`${name}: term ${now} after restart, ${term} was acknowledged`);
  }
  count(faults, `acknowledged states checked: ${acked.size} per restart`);
}

async function lockFor(ms: number): Promise<void> {
  count(faults, "data file locked by another process");
  const outside = new Database(join(dataDir, "electd.db"));
  outside.exec("BEGIN IMMEDIATE");
  await sleep(ms);
  outside.exec("ROLLBACK");
  outside.close();
}

async function diskFullFor(ms: number): Promise<void> {
  count(faults, "disk full");
  const filler = join(dataDir, "filler");
  const block = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeFileSync(filler, block, { flag: "a" });
  } catch {
    // ENOSPC: the disk is full now.
  }
  await sleep(ms);
  unlinkSync(filler);
}

// ---- the run ----
await startServer();
// A soak that hangs has failed: it says where it was and stops.
setTimeout(() => {
  out(`FAILED: still running ${values.minutes} min + 5 min after its start`);
  process.exit(1);
}, runMs + 300_000).unref();
await election.create({ id: { name: "soak-big" } });
for (let i = 0; i < 400; i++) {
  await election.enter({ id: { name: "soak-big" }, candidate: `${i}-${"b".repeat(240)}` });
}
for (const name of names) await election.create({ id: { name } });
await sleep(1000);
const rssBefore = rssMiB(server?.child.pid);
const before = await healthz();
out(
  `soak: ${values.minutes} min, a fault every ${values["fault-every"]} s, data dir ${dataDir}${tmpfs ? " (64 MiB tmpfs)" : ""}`,
);
out(
  `before: RSS ${rssBefore.toFixed(0)} MiB, watches ${before.watches}, sessions ${before.sessions}`,
);

const workers = [
  ...Array.from({ length: 8 }, (_, i) => campaigner(i)),
  operator(),
  lister(),
  lister(),
  ...names.slice(0, 4).map(watcher),
  stallers(),
  silent(),
];
const started = Date.now();
let turn = 0;
while (Date.now() - started < runMs) {
  await sleep(Math.min(faultEveryMs, runMs - (Date.now() - started)));
  if (Date.now() - started >= runMs) break;
  const kind = turn++ % 3;
  out(
    `  ${Math.round((Date.now() - started) / 1000)} s: ${kind === 0 ? "SIGKILL and restart" : kind === 1 || !tmpfs ? "data file locked" : "disk full"}`,
  );
  if (kind === 0) await killAndRestart();
  else if (kind === 1 || !tmpfs) await lockFor(2000);
  else await diskFullFor(2000);
}
running = false;
await Promise.all(workers);
h2.abort();

// 10,000 abandoned watches: streams that never read an election larger than an HTTP/2
// window, on connections that then vanish. Every slot must come back.
const ABANDONED = 10_000;
out("opening 10,000 Watch streams that will be abandoned");
// Node's client would refuse streams past 10 MB of buffered data per session.
const abandoned = Array.from({ length: ABANDONED / 100 }, () => {
  const session = connectHttp2(url, { maxSessionMemory: 1000 });
  session.on("error", () => {});
  return session;
});
await Promise.all(abandoned.map((session) => pausedStreams(session, WATCH_PATH, bigWatch, 100)));
const held = await healthz();
const vanished = performance.now();
for (const session of abandoned) session.destroy();
while ((await healthz()).watches !== 0 && performance.now() - vanished < 30_000) await sleep(20);
out(
  `${held.watches} abandoned paused watches: all released ${(performance.now() - vanished).toFixed(0)} ms after their clients vanished`,
);
count(calls, `abandoned paused Watch x${ABANDONED}`);

// Every client is gone; the sessions left open expire within their TTL. Then no election
// may keep a leader or a candidate: every candidate was bound to a session.
const deadline = Date.now() + TTL_MS * 3 + 10_000;
let after = await healthz();
let leftovers: string[] = [];
for (;;) {
  leftovers = [];
  for (const name of names) {
    const term = (await electionJson.getTerm({ id: { name } })).term;
    if (term?.leader || term?.candidates.length)
      leftovers.push(`${name}: ${term.leader} ${term.candidates}`);
  }
  after = await healthz();
  const settled = leftovers.length === 0 && after.watches === 0 && after.sessions === 0;
  if (settled || Date.now() > deadline) break;
  await sleep(250);
}
const rssAfter = rssMiB(server?.child.pid);
if (leftovers.length > 0) problems.push(`candidates left behind: ${leftovers.join("; ")}`);
if (after.watches !== 0) problems.push(`${after.watches} watch slots still held`);
if (after.sessions !== 0 || after.endingSessions !== 0) {
  problems.push(`${after.sessions} sessions open, ${after.endingSessions} still ending`);
}

const table = (map: Map<string, number>) =>
  [...map]
    .map(([k, v]) => `${k} ${v}${failures.has(k) ? ` (${failures.get(k)} failed)` : ""}`)
    .join(", ");
out(`calls: ${table(calls)}`);
out(`faults: ${[...faults].map(([k, v]) => `${k} x${v}`).join(", ")}`);
out(
  `after: RSS ${rssAfter.toFixed(0)} MiB, watches ${after.watches}, sessions ${after.sessions}, ending ${after.endingSessions}`,
);
await server?.stop();
if (tmpfs) execFileSync("umount", [dataDir]);
rmSync(dataDir, { recursive: true, force: true });
if (problems.length > 0) {
  out(`FAILED:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
out("held: nothing leaked, nothing acknowledged lost, no dead leader left");
