// What electd's data costs on the heap, unit by unit, on the memory and the durable store:
// the figures behind README's worst-case table and the constants in server/memory.ts that
// electd logs at startup. Runs the store, the session registry and the watch hub
// in-process, without the network, so each figure is the server's own cost of the unit.
// Then it loads a durable data file again and compares the heap with the same data built
// by calls: a server that ran must start again on the same heap.
//
// usage: npm run bench:memory -- [--count 20000] [--candidates 1000] [--streams 2000]
//                                [--store both|memory|durable]
// The worst case is printed for the limits set in the environment (MAX_ELECTIONS=... etc.).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GCProfiler, getHeapStatistics } from "node:v8";
import { createClient, type HandlerContext } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { loadConfig } from "../server/config.js";
import { start } from "../server/electd.js";
import type { Decision, Election } from "../server/election/change.js";
import { apply, type Operation } from "../server/election/rules.js";
import { type HeapCosts, heapCosts, mib, nameBytes, worstCase } from "../server/memory.js";
import { SESSION_HEADER, sessionOf } from "../server/rpc/session.js";
import { SessionRegistry } from "../server/session/registry.js";
import { openDurableStore } from "../server/store/durable.js";
import { createMemoryStore } from "../server/store/memory.js";
import type { ElectionStore } from "../server/store/store.js";
import { WatchHub } from "../server/watch/hub.js";

const { values } = parseArgs({
  options: {
    count: { type: "string", default: "20000" },
    candidates: { type: "string", default: "1000" },
    store: { type: "string", default: "both" },
    streams: { type: "string", default: "2000" },
    // Internal: this file run as the clients of the Watch streams (see `streamCost`).
    client: { type: "string" },
  },
});
if (values.client !== undefined) await watchClients(values.client, Number(values.streams));
const count = Number(values.count);
const largest = Number(values.candidates);
const kinds = values.store === "both" ? ["memory", "durable"] : [String(values.store)];
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:memory does)");

const NAME_BYTES = 256;
/** Heap of one of the ASCII names used here (the dearest names take more: `nameBytes`). */
const NAME = 16 + NAME_BYTES;
const TAGS = 8;
/** Candidates per election when measuring candidates. */
const PER_ELECTION = 20;
/** Old states one lagging watcher keeps while measuring them. */
const VERSIONS = 1000;
const TTL = 3_600_000;
const rules = { maxCandidates: Number.MAX_SAFE_INTEGER };
const out = (line: string) => process.stdout.write(`${line}\n`);
// The durable store's files go to memory where there is a tmpfs: what is measured is the
// heap, and a disk's fsync would only make the run slower.
const scratch = existsSync("/dev/shm") ? "/dev/shm" : tmpdir();

function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}

/**
 * A distinct name of exactly NAME_BYTES ASCII bytes, as one flat string: what a decoded
 * request hands the server (concatenation would leave a rope of several strings).
 */
function name(kind: string, i: number): string {
  return Buffer.from(`${kind}-${i}-`.padEnd(NAME_BYTES, "x")).toString();
}

/** Runs `task(i)` for each i below n, `width` at a time: the durable store commits each group at once. */
async function each(n: number, task: (i: number) => Promise<unknown>, width = 1000) {
  for (let start = 0; start < n; start += width) {
    const group: Promise<unknown>[] = [];
    for (let i = start; i < Math.min(n, start + width); i++) group.push(task(i));
    await Promise.all(group);
  }
}

function rule(op: (e: Election) => Operation, bind?: readonly [string, string]) {
  return (e: Election): Decision => {
    const outcome = apply(e.state, op(e), rules);
    if (!outcome.ok || !outcome.changed || bind === undefined) return outcome;
    return { ...outcome, bind };
  };
}
const enter = (candidate: string, bind?: readonly [string, string]) =>
  rule(() => ({ kind: "enter", candidate }), bind);
/** Moves the last of the queue one place forward: a new queue order every time. */
const promoteLast = rule((e) => ({ kind: "promote", candidate: e.state.candidates.at(-1) ?? "" }));
/** Makes the first of the queue leader: a new term, a change every time. */
const anointNext = rule((e) => ({ kind: "anoint", candidate: e.state.candidates[0] ?? "" }));

/** The session id as the Enter rpc gets it: a fresh string read from a request header. */
function fromHeader(id: string): HandlerContext {
  return { requestHeader: new Headers({ [SESSION_HEADER]: id }) } as unknown as HandlerContext;
}

/** What a server holds: a store, the session registry and the watch hub on it. */
interface Rig {
  readonly store: ElectionStore;
  readonly registry: SessionRegistry;
  readonly hub: WatchHub;
  close(): Promise<void>;
}

async function rig(kind: string, dataDir: string): Promise<Rig> {
  const limits = { maxElections: Number.MAX_SAFE_INTEGER };
  const store =
    kind === "durable" ? openDurableStore({ dataDir, ...limits }) : createMemoryStore(limits);
  const registry = new SessionRegistry({
    store,
    settings: { ttlMs: TTL, minTtlMs: 1, maxTtlMs: TTL, maxSessions: 10 * count },
    limits: rules,
  });
  await registry.start();
  const hub = new WatchHub(store, {
    maxWatches: Number.MAX_SAFE_INTEGER,
    mailboxSize: 64,
    directoryBuffer: 1000,
  });
  return {
    store,
    registry,
    hub,
    async close() {
      hub.close();
      await registry.stop();
      await store.close();
    },
  };
}

type Figures = { -readonly [K in keyof HeapCosts]: number } & {
  /** A Watch in the hub alone, without its stream. */
  hubWatch: number;
  tagDistinct: number;
  tagPaired: number;
  /** An unbound candidate, besides its name. */
  unbound: number;
  /** What a queued state costs more when all its candidates are session-bound. */
  ownersCopied: number;
};

async function measure(kind: string): Promise<Figures> {
  const dir = mkdtempSync(join(scratch, "electd-bench-memory-"));
  const { store, registry, hub, close } = await rig(kind, dir);
  const f = { versionSlot: 0 } as Figures;
  let before = heap();
  /** Heap grown since the last step. */
  const grown = (): number => {
    const now = heap();
    const delta = now - before;
    before = now;
    return delta;
  };

  await each(count, (i) => store.create(name("e", i), []));
  f.election = grown() / count - NAME;

  const tagged = Math.floor(count / 4);
  await each(tagged, (i) =>
    store.create(
      name("t", i),
      Array.from({ length: TAGS }, (_, j) => name(`tag${j}`, i)),
    ),
  );
  const distinct = (grown() - tagged * (f.election + NAME)) / (tagged * TAGS) - NAME;
  // Each tag carried by two elections: the dearest way to share, one small tree per tag.
  await each(tagged, (i) =>
    store.create(
      name("s", i),
      Array.from({ length: TAGS }, (_, j) => name(`pair${j}`, Math.floor(i / 2))),
    ),
  );
  const paired = (grown() - tagged * (f.election + NAME)) / (tagged * TAGS) - NAME;
  f.tag = Math.max(distinct, paired);
  f.tagDistinct = distinct;
  f.tagPaired = paired;

  // Candidates without a session, PER_ELECTION in each of the first elections.
  const hosts = Math.floor(count / PER_ELECTION / 2);
  for (let j = 0; j < PER_ELECTION; j++) {
    await each(hosts, (i) => store.update(name("e", i), enter(name(`c${j}`, i))));
  }
  f.unbound = grown() / (hosts * PER_ELECTION) - NAME;

  // Open sessions, holding nothing yet.
  const ids: string[] = [];
  await each(count, async () => ids.push((await registry.open(TTL)).id));
  const openSession = grown() / count;

  // Candidates bound to a session each (the most the registry's index can cost), in the
  // next elections, the session named by a request header as the Enter rpc reads it.
  for (let j = 0; j < PER_ELECTION; j++) {
    await each(hosts, async (i) => {
      const session = await sessionOf(registry)(fromHeader(ids[i * PER_ELECTION + j] as string));
      const candidate = name(`b${j}`, i);
      return store.update(
        name("e", hosts + i),
        enter(candidate, session === undefined ? undefined : [candidate, session]),
      );
    });
  }
  f.candidate = grown() / (hosts * PER_ELECTION) - NAME;

  // Sessions that ended: their ids are remembered so that a retried CloseSession succeeds.
  const ended = ids.slice(hosts * PER_ELECTION);
  await each(ended.length, (i) => registry.close(ended[i] as string));
  f.session = openSession + (grown() + ended.length * openSession) / ended.length;

  // Idle watchers, each on its own election, each having read the current state.
  const watchers = Math.min(count, 10_000);
  const held: { ctl: AbortController; feed: AsyncGenerator<unknown> }[] = [];
  for (let i = 0; i < watchers; i++) {
    const ctl = new AbortController();
    const feed = hub.election(name("e", count - 1 - i), ctl.signal);
    await feed.next();
    held.push({ ctl, feed });
  }
  f.hubWatch = grown() / watchers;
  for (const { ctl, feed } of held) {
    ctl.abort();
    await feed.return(undefined);
  }
  grown();

  /** Heap per old state a watcher that stopped reading keeps of an election of `size`. */
  const retained = async (size: number, bound: boolean): Promise<number> => {
    const election = name(`v${size}${bound}`, 0);
    await store.create(election, []);
    for (let j = 0; j < size; j++) {
      const candidate = name(`v${j}`, size);
      const id = ids[j % (hosts * PER_ELECTION)] as string;
      await store.update(election, enter(candidate, bound ? [candidate, id] : undefined));
    }
    const lagging = new WatchHub(store, {
      maxWatches: 1,
      mailboxSize: VERSIONS,
      directoryBuffer: 1,
    });
    const ctl = new AbortController();
    const feed = lagging.election(election, ctl.signal);
    await feed.next();
    grown();
    for (let k = 0; k < VERSIONS; k++) await store.update(election, promoteLast);
    const per = grown() / VERSIONS;
    ctl.abort();
    await feed.return(undefined);
    lagging.close();
    return per;
  };
  const small = await retained(2, false);
  const large = await retained(largest, false);
  f.versionSlot = (large - small) / (largest - 2);
  f.version = small - 2 * f.versionSlot;
  f.ownersCopied = (await retained(largest, true)) - large;

  // History records: 20 elections of two candidates changed 500 times each (the memory
  // store keeps the records in the heap, the durable store on disk).
  const histories = 20;
  const changes = 500;
  for (let i = 0; i < histories; i++) {
    await store.create(name("h", i), []);
    for (const c of ["h1", "h2"]) await store.update(name("h", i), enter(name(c, i)));
  }
  grown();
  for (let k = 0; k < changes; k++) {
    await each(histories, (i) => store.update(name("h", i), anointNext));
  }
  f.historyRecord = grown() / (histories * changes);

  // A WatchElections reader that stopped reading while elections were created: it asked
  // for more, got the first and stopped; the rest wait for it. Creations rather than
  // changes, so that what the reader keeps is all that differs from the elections above.
  const pending = 10_000;
  const lagging = new WatchHub(store, { maxWatches: 1, mailboxSize: 1, directoryBuffer: pending });
  const ctl = new AbortController();
  const feed = lagging.changes({ prefix: "p-" }, ctl.signal, count);
  await feed.next();
  const asked = feed.next();
  await store.create(name("p", 0), []);
  await asked;
  grown();
  await each(pending - 1, (i) => store.create(name("p", i + 1), []));
  f.pendingElection = grown() / (pending - 1) - f.election - NAME;
  ctl.abort();
  await feed.return(undefined);
  lagging.close();

  await close();
  rmSync(dir, { recursive: true, force: true });
  return f;
}

/**
 * The clients side of `streamCost`, in a process of its own so that its heap is not the
 * server's: one Watch per election `w-0`.. over one HTTP/2 connection, each reading the
 * current state and then nothing; prints "ready" and waits to be killed.
 */
async function watchClients(url: string, streams: number): Promise<never> {
  const transport = createGrpcTransport({
    baseUrl: url,
    sessionManager: new Http2SessionManager(url),
  });
  const client = createClient(LeaderElection, transport);
  const firsts: Promise<unknown>[] = [];
  for (let i = 0; i < streams; i++) {
    const feed = client.watch({ id: { name: `w-${i}` } })[Symbol.asyncIterator]();
    firsts.push(feed.next());
  }
  await Promise.all(firsts);
  process.stdout.write("ready\n");
  return new Promise<never>(() => {});
}

/**
 * Server heap per open Watch stream, transport included: a real server in this process,
 * `streams` gRPC Watch streams from another, each idle after the current state.
 */
async function streamCost(streams: number): Promise<number> {
  const config = loadConfig(
    ["--port", "0", "--log-level", "error", "--store", "memory", "--max-watches", String(streams)],
    {},
  );
  if (config === "help") throw new Error("unexpected --help");
  const server = await start(config);
  for (let i = 0; i < streams; i++) await server.store.create(`w-${i}`, []);
  const before = heap();
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      fileURLToPath(import.meta.url),
      "--client",
      server.url,
      "--streams",
      String(streams),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const [chunk] = (await once(child.stdout, "data")) as [Buffer];
  if (!chunk.toString().includes("ready")) throw new Error(`watch clients: ${chunk.toString()}`);
  const per = (heap() - before) / streams;
  child.kill();
  await once(child, "exit");
  await server.stop(500);
  return per;
}

/**
 * Builds `elections` elections of `size` candidates each, all bound to sessions, on a
 * durable store in `dir` by calls, and closes it. Returns the heap the server held.
 */
async function build(dir: string, elections: number, size: number): Promise<number> {
  const empty = heap();
  const built = await rig("durable", dir);
  const ids: string[] = [];
  await each(size, async () => ids.push((await built.registry.open(TTL)).id));
  await each(elections, (i) =>
    built.store.create(
      name("l", i),
      Array.from({ length: TAGS }, (_, j) => name(`tag${j}`, i)),
    ),
  );
  // A whole election's candidates in one commit: the durable store then writes its row once.
  await each(elections * size, async (k) => {
    const i = Math.floor(k / size);
    const j = k % size;
    const session = await sessionOf(built.registry)(fromHeader(ids[j] as string));
    const candidate = name(`l${j}`, i);
    return built.store.update(
      name("l", i),
      enter(candidate, session === undefined ? undefined : [candidate, session]),
    );
  });
  const running = heap() - empty;
  await built.close();
  return running;
}

/**
 * The same data built by calls, then loaded from the data file by a fresh store: the heap
 * each way, and the largest heap left after a collection while loading.
 */
async function load(elections: number, size: number) {
  const dir = mkdtempSync(join(scratch, "electd-bench-load-"));
  const running = await build(dir, elections, size);
  const base = heap();
  const profiler = new GCProfiler();
  profiler.start();
  const started = performance.now();
  const loaded = await rig("durable", dir);
  const ms = performance.now() - started;
  const { statistics } = profiler.stop();
  const after = heap() - base;
  const peak = Math.max(
    after,
    ...statistics.map((s) => s.afterGC.heapStatistics.usedHeapSize - base),
  );
  await loaded.close();
  rmSync(dir, { recursive: true, force: true });
  return { running, after, peak, ms };
}

const limit = getHeapStatistics().heap_size_limit;
out(
  `node --expose-gc --import tsx bench/memory.ts --count ${count} --candidates ${largest}` +
    `  (Node ${process.version}, heap_size_limit ${mib(limit)})`,
);
out(
  `names of ${NAME_BYTES} ASCII bytes, ${NAME} bytes of heap each, left out of the figures below` +
    ` (the worst case counts the dearest name of ${NAME_BYTES} bytes: ${nameBytes(NAME_BYTES)})`,
);
const measured: Record<string, Figures> = {};
for (const kind of kinds) measured[kind] = await measure(kind);
// The stream does not depend on the store: measured once, on the memory store.
const streams = Number(values.streams);
const perStream = await streamCost(streams);
for (const kind of kinds) (measured[kind] as Figures).watch = perStream;
const labels: Record<keyof Figures, string> = {
  election: "election (no tags, no candidates)",
  tag: "tag (the dearer of the two below)",
  tagDistinct: `  tag on one election (${TAGS} per election)`,
  tagPaired: "  tag on two elections",
  unbound: "candidate without a session",
  candidate: "candidate bound to its own session",
  session: "session open, plus its id kept once ended",
  watch: `Watch stream, idle (gRPC, ${streams} on one connection)`,
  hubWatch: "  of which the watch hub's share",
  version: "state queued for a slow Watch",
  versionSlot: "  + per candidate in it",
  ownersCopied: `  + if its ${largest} candidates are session-bound`,
  pendingElection: "unread election of a WatchElections",
  historyRecord: "history record (in the heap: memory store)",
};
out(`${"unit".padEnd(44)}${kinds.map((k) => k.padStart(10)).join("")}   in code`);
for (const key of Object.keys(labels) as (keyof Figures)[]) {
  const inCode = key in heapCosts ? String(heapCosts[key as keyof HeapCosts]) : "";
  out(
    `${labels[key].padEnd(44)}${kinds.map((k) => (measured[k]?.[key] ?? 0).toFixed(0).padStart(10)).join("")}   ${inCode.padStart(7)}`,
  );
}

const config = loadConfig([], process.env);
if (config === "help") throw new Error("unexpected --help");
const limits = { ...config.limits, maxSessions: config.sessions.maxSessions };
const worst = (costs: HeapCosts) => worstCase(limits, costs);
const dearest = Object.fromEntries(
  Object.keys(heapCosts).map((k) => [
    k,
    Math.max(...kinds.map((kind) => measured[kind]?.[k as keyof HeapCosts] ?? 0)),
  ]),
) as unknown as HeapCosts;

out("");
out("worst case of the configured limits (measured figures; constants in server/memory.ts):");
const fromCode = worst(heapCosts);
worst(dearest).parts.forEach((p, i) => {
  out(
    `  ${p.what.padEnd(11)} ${String(p.units).padStart(10)} x ${p.each.toFixed(0).padStart(6)} B = ${mib(p.bytes).padStart(12)}   (${mib(fromCode.parts[i]?.bytes ?? 0)})   ${p.settings.join(", ")}`,
  );
});
const total = worst(dearest).total;
out(
  `  total ${mib(total)} (${mib(fromCode.total)}): ${((100 * total) / limit).toFixed(0)}% of this heap_size_limit, ${((100 * total) / 2 ** 31).toFixed(0)}% of a 2 GiB heap`,
);

out("");
out(
  "a durable data file loaded again, against the same data built by calls (bound candidates, 8 tags):",
);
for (const [elections, size] of [
  [Math.max(1, Math.floor(count / 200)), largest],
  [count, 2],
] as const) {
  const r = await load(elections, size);
  out(
    `  ${elections} elections x ${size} candidates: built ${mib(r.running)}, loaded ${mib(r.after)}` +
      ` (${(r.after / r.running).toFixed(2)}x) in ${r.ms.toFixed(0)} ms; largest heap after a` +
      ` collection while loading ${mib(r.peak)} (${(r.peak / r.running).toFixed(2)}x)`,
  );
}
