// electd against etcd's own election API, side by side on this machine, in alternating
// rounds: unary reads over JSON/HTTP/1.1 (wrk) and gRPC/h2c (h2load), writes over gRPC
// (h2load), and Watch fan-out of one change to many watchers. Next to each: the ceiling, a
// bare server answering a constant reply on the same protocol, so the table says how much
// of the cost is electd's own; for gRPC reads also that server in two processes, for what a
// Node server gets out of both cores, and electd with two h2c processes (`--h2c-processes
// 2`, README "More cores for HTTP/2"), its CPU counted over all three processes.
//
//   npm run build && npm run bench:vs-etcd -- [--rounds 3] [--seconds 10]
//                                              [--watchers 1000,10000] [--fan-out-only]
//
// Installs nothing: it uses Debian's etcd-server, wrk and nghttp2-client (h2load) when
// present and says what it skipped otherwise. Each system runs alone while it is measured;
// server CPU per request is read from /proc. Data directories of both systems are on the
// same filesystem (tmpfs when there is one), so fsync costs them the same.
import { execFileSync, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { type ClientHttp2Session, connect } from "node:http2";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  EnterRequestSchema,
  GetTermRequestSchema,
  WatchRequestSchema,
} from "../gen/atomix/runtime/election/v1/election_pb.js";
import { startEtcd } from "../test/support/etcd.js";
import { cpuMs, grpcFrame, rssMiB, spawnListening } from "./support.js";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "10" },
    watchers: { type: "string", default: "1000,10000" },
    /** Only the Watch fan-out (no reads or writes). */
    "fan-out-only": { type: "boolean", default: false },
  },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const fanouts = values.watchers
  .split(",")
  .map(Number)
  .filter((n) => n > 0);

const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const tools = { etcd: has("etcd"), wrk: has("wrk"), h2load: has("h2load") };
const work = mkdtempSync(join(process.platform === "linux" ? "/dev/shm" : tmpdir(), "vs-etcd-"));
const commands = new Set<string>();

// --- processes --------------------------------------------------------------------------

interface Server {
  readonly url: string;
  readonly pid: number;
  stop(): Promise<void>;
}

/** A process that printed `listening on URL`, with its pid for /proc. */
async function spawnNode(args: readonly string[]): Promise<Server> {
  const started = await spawnListening(args);
  return { url: started.url, pid: started.child.pid as number, stop: () => started.stop() };
}

const built = new URL("../dist/electd.js", import.meta.url).pathname;
/** electd as `npm start` runs it: the built bundle, default log level. */
function startElectd(store: "memory" | "durable", flags: readonly string[] = []): Promise<Server> {
  const data = mkdtempSync(join(work, "electd-"));
  const args = [built, "serve", "--port", "0", "--store", store, "--data-dir", data, ...flags];
  commands.add(`node dist/electd.js ${args.slice(1).join(" ")}`);
  return spawnNode(args);
}

// The ceilings: the same protocol, the same client, a constant reply and nothing else.
const bareFastify = `
import Fastify from "fastify";
const app = Fastify();
app.post("/x", async () => ({ term: "1", leader: "a", candidates: ["a"] }));
await app.listen({ port: 0, host: "127.0.0.1" });
console.log("listening on http://127.0.0.1:" + app.server.address().port);`;
const bareHttp2Server = `
const { createServer } = await import("node:http2");
const reply = Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x08, 0x01, 0x12]);
const server = createServer();
server.on("stream", (stream) => {
  stream.on("data", () => {});
  stream.on("end", () => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(reply);
  });
});`;
const bareHttp2 = `${bareHttp2Server}
server.listen(0, "127.0.0.1", () =>
  console.log("listening on http://127.0.0.1:" + server.address().port));`;
// The same server in two processes (node:cluster: the primary hands connections to its
// workers in turn, and they share one port): what a Node server answering on both cores of
// this machine can do.
const bareHttp2Cluster = `
import cluster from "node:cluster";
if (cluster.isPrimary) {
  let listening = 0;
  cluster.on("listening", (worker, address) => {
    listening += 1;
    if (listening === 2) console.log("listening on http://127.0.0.1:" + address.port);
  });
  cluster.fork();
  cluster.fork();
} else {
  ${bareHttp2Server}
  server.listen(0, "127.0.0.1");
}`;
function startBare(source: string): Promise<Server> {
  return spawnNode(["--input-type=module", "-e", source]);
}
/** As startBare, from a file: node:cluster's workers run the file their primary ran. */
function startBareFile(name: string, source: string): Promise<Server> {
  const file = join(work, name);
  writeFileSync(file, source);
  return spawnNode([file]);
}
/** The processes a server's CPU is counted over: it and its children (a cluster's workers). */
function processTree(pid: number): number[] {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return [pid, ...(children ? children.split(" ").map(Number) : [])];
}

// --- etcd messages (v3electionpb), written with protobuf-es's wire writer -----------------

const text = (s: string) => new TextEncoder().encode(s);
function leaderRequest(name: string): Uint8Array {
  return new BinaryWriter().tag(1, 2).bytes(text(name)).finish();
}
interface LeaderKey {
  name: string;
  key: string;
  rev: string;
  lease: string;
}
function proclaimRequest(leader: LeaderKey, value: string): Uint8Array {
  const key = new BinaryWriter()
    .tag(1, 2)
    .bytes(Buffer.from(leader.name, "base64"))
    .tag(2, 2)
    .bytes(Buffer.from(leader.key, "base64"))
    .tag(3, 0)
    .int64(leader.rev)
    .tag(4, 0)
    .int64(leader.lease)
    .finish();
  return new BinaryWriter().tag(1, 2).bytes(key).tag(2, 2).bytes(text(value)).finish();
}
function framed(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

async function postJson(url: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = (await response.json()) as Record<string, unknown>;
  if (!response.ok && answer.code !== "already_exists") {
    throw new Error(`${url}: ${response.status} ${JSON.stringify(answer)}`);
  }
  return answer;
}

/** An etcd election `name` with a leader, through etcd's JSON gateway: its leader key. */
async function etcdLeader(endpoint: string, name: string): Promise<LeaderKey> {
  const lease = (await postJson(`${endpoint}/v3/lease/grant`, { TTL: 3600 })) as { ID: string };
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const campaign = (await postJson(`${endpoint}/v3/election/campaign`, {
    name: b64(name),
    lease: lease.ID,
    value: b64("a"),
  })) as { leader: LeaderKey };
  return campaign.leader;
}

/**
 * An electd election's version: one more with every committed change. On a connection of
 * its own: one kept from the call before the load may be closed as idle by now.
 */
async function version(url: string): Promise<number> {
  const body = await new Promise<string>((resolve, reject) => {
    get(`${url}/v1/elections/${NAME}`, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => resolve(text));
      res.on("error", reject);
    }).on("error", reject);
  });
  return Number((JSON.parse(body) as { version: string }).version);
}

const election = (url: string, rpc: string) =>
  `${url}/atomix.runtime.election.v1.LeaderElection/${rpc}`;

// --- load generators ----------------------------------------------------------------------

interface Result {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  /** Server CPU per request, microseconds. */
  readonly cpuUs: number;
  readonly errors: number;
}

function wrk(url: string, body: string, pid: number): Result {
  const script = join(work, "post.lua");
  writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\n` +
      `wrk.headers["Content-Type"] = "application/json"\n`,
  );
  return wrkRun(["-t2", "-c32"], script, url, pid, [], `  (body ${body})`);
}

/**
 * Writes in pairs through wrk, one election per connection (as many threads as
 * connections, each with its own Lua state): Enter then Withdraw of one candidate on
 * electd; Campaign, then Resign with the leader key that Campaign answered, on etcd, each
 * connection with a lease of its own (`args`). Every request commits a change.
 */
const PAIR_CONNECTIONS = 8;
const pairScripts = {
  electd: `
local count = 0
function setup(thread) count = count + 1; thread:set("id", count) end
function init(args) name = string.format("pair-%d", id); entered = false end
function request()
  return wrk.format("POST", "/atomix.runtime.election.v1.LeaderElection/" .. (entered and "Withdraw" or "Enter"),
    { ["Content-Type"] = "application/json" },
    string.format('{"id":{"name":"%s"},"candidate":"a"}', name))
end
function response(status, headers, body) if status == 200 then entered = not entered end end
`,
  etcd: `
local count = 0
function setup(thread) count = count + 1; thread:set("id", count) end
function init(args) lease = args[id]; name = args[${PAIR_CONNECTIONS} + id]; leader = nil end
function request()
  local headers = { ["Content-Type"] = "application/json" }
  if leader == nil then
    return wrk.format("POST", "/v3/election/campaign", headers,
      string.format('{"name":"%s","lease":"%s","value":"dg=="}', name, lease))
  end
  return wrk.format("POST", "/v3/election/resign", headers, '{"leader":' .. leader .. '}')
end
function response(status, headers, body)
  if leader == nil then leader = body:match('"leader":(%b{})') else leader = nil end
end
`,
};
function wrkPairs(system: "electd" | "etcd", url: string, pid: number, args: string[]): Result {
  const script = join(work, `pairs-${system}.lua`);
  writeFileSync(script, pairScripts[system]);
  const n = `${PAIR_CONNECTIONS}`;
  return wrkRun([`-t${n}`, `-c${n}`], script, url, pid, args, "");
}

function wrkRun(
  load: readonly string[],
  script: string,
  url: string,
  pid: number,
  scriptArgs: readonly string[],
  note: string,
): Result {
  const args = [...load, `-d${seconds}s`, "--latency", "-s", script, url];
  if (scriptArgs.length > 0) args.push("--", ...scriptArgs);
  commands.add(`wrk ${args.join(" ")}${note}`);
  const before = cpuMs([pid]);
  const out = execFileSync("wrk", args, { encoding: "utf8" });
  const cpu = cpuMs([pid]) - before;
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const ms = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)`, "m").exec(out);
    if (!m) return Number.NaN;
    const unit = m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1;
    return Number(m[1]) * unit;
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p50: ms("50"),
    p99: ms("99"),
    cpuUs: total > 0 ? (cpu * 1000) / total : Number.NaN,
    errors: non2xx,
  };
}

/** h2load's arguments posting one gRPC `frame` to each of `urls` in turn, for `duration` s. */
function h2loadArgs(urls: readonly string[], frame: Buffer, duration: number): string[] {
  const data = join(work, "request.bin");
  writeFileSync(data, frame);
  return [
    ...["-c16", "-m16", "-t1", "-D", String(duration)],
    ...["-d", data, "-H", "content-type: application/grpc", "-H", "te: trailers"],
    ...urls,
  ];
}

/**
 * A second of the load to come, not measured: the server's code is compiled and its caches
 * filled before the measured run. Separate from it (rather than h2load's --warm-up-time, whose
 * second would count in the server's CPU but not in the requests) so that the CPU read around
 * the measured run is spent on exactly the requests it counts.
 */
function h2loadWarmUp(urls: readonly string[], frame: Buffer): void {
  const args = h2loadArgs(urls, frame, 1);
  commands.add(`h2load ${args.join(" ")}  (warm-up, before each measured run)`);
  execFileSync("h2load", args, { encoding: "utf8" });
}

/**
 * h2load over h2c posting one gRPC `frame` to each of `urls` in turn, after a second of
 * warm-up (`warmedUp`: already done by the caller); latencies from its log.
 */
function h2load(
  urls: readonly string[],
  frame: Buffer,
  pid: number | readonly number[],
  warmedUp = false,
): Result {
  if (!warmedUp) h2loadWarmUp(urls, frame);
  const pids = typeof pid === "number" ? [pid] : pid;
  const log = join(work, "h2load.log");
  const args = [...h2loadArgs(urls, frame, seconds), "--log-file", log];
  commands.add(`h2load ${args.join(" ")}`);
  const before = cpuMs(pids);
  const out = execFileSync("h2load", args, { encoding: "utf8" });
  const cpu = cpuMs(pids) - before;
  const lines = readFileSync(log, "utf8").trim().split("\n");
  const times = lines.map((line) => Number(line.split("\t")[2]) / 1000).sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  const done = Number(/requests: .* (\d+) succeeded/.exec(out)?.[1] ?? 0);
  const failed = Number(/requests: .* (\d+) failed/.exec(out)?.[1] ?? 0);
  return {
    rps: Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1] ?? 0),
    p50: at(0.5),
    p99: at(0.99),
    cpuUs: done + failed > 0 ? (cpu * 1000) / (done + failed) : Number.NaN,
    errors: failed,
  };
}

/** One gRPC call's status over a fresh h2c session: what the load is about to repeat. */
async function grpcStatus(url: string, frame: Buffer): Promise<string> {
  const target = new URL(url);
  const session = connect(target.origin);
  try {
    const stream = session.request({
      ":method": "POST",
      ":path": target.pathname,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(frame);
    stream.resume();
    const [trailers] = (await once(stream, "trailers")) as [Record<string, string>];
    return `${trailers["grpc-status"]} ${trailers["grpc-message"] ?? ""}`.trim();
  } finally {
    session.close();
  }
}

// --- fan-out ------------------------------------------------------------------------------

interface FanOut {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Server RSS added per open, idle watcher, KiB. */
  readonly kibPerWatcher: number;
}

/**
 * Opens `count` streams of `path` (gRPC, `frame` as request), waits for each one's first
 * message, calls `change`, and times the next message on every stream.
 */
async function fanOut(
  origin: string,
  path: string,
  frame: Buffer,
  count: number,
  pid: number,
  change: () => Promise<void>,
): Promise<FanOut> {
  const perSession = 100;
  const sessions: ClientHttp2Session[] = [];
  const rssBefore = rssMiB(pid);
  const firsts: Promise<void>[] = [];
  const seen: number[] = [];
  let t0 = 0;
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    resolveAll = resolve;
  });
  for (let i = 0; i < count; i++) {
    if (i % perSession === 0) sessions.push(connect(origin));
    const session = sessions[sessions.length - 1] as ClientHttp2Session;
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(frame);
    let buffered = Buffer.alloc(0);
    let messages = 0;
    firsts.push(
      new Promise<void>((resolve, reject) => {
        stream.on("data", (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          while (buffered.length >= 5) {
            const length = buffered.readUInt32BE(1);
            if (buffered.length < 5 + length) break;
            buffered = buffered.subarray(5 + length);
            messages += 1;
            if (messages === 1) resolve();
            if (messages === 2) {
              seen.push(performance.now() - t0);
              if (seen.length === count) resolveAll();
            }
          }
        });
        stream.once("close", () => reject(new Error(`a watcher ended: ${stream.rstCode}`)));
      }),
    );
  }
  await Promise.all(firsts);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const rssAfter = rssMiB(pid);
  t0 = performance.now();
  await change();
  await Promise.race([
    all,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`only ${seen.length}/${count} saw the change`)), 60_000),
    ),
  ]);
  for (const session of sessions) session.destroy();
  seen.sort((a, b) => a - b);
  const at = (q: number) => seen[Math.min(count - 1, Math.floor(q * count))] ?? 0;
  return {
    p50: at(0.5),
    p99: at(0.99),
    max: seen[count - 1] ?? 0,
    kibPerWatcher: ((rssAfter - rssBefore) * 1024) / count,
  };
}

// --- the runs -----------------------------------------------------------------------------

type Row = { name: string; results: Map<string, Result[]> };
const rows: Row[] = [];
function record(name: string, system: string, result: Result): void {
  let row = rows.find((r) => r.name === name);
  if (!row) {
    row = { name, results: new Map() };
    rows.push(row);
  }
  const list = row.results.get(system) ?? [];
  list.push(result);
  row.results.set(system, list);
}

const NAME = "bench";
const getTerm = grpcFrame(GetTermRequestSchema, { id: { name: NAME } });
const enter = grpcFrame(EnterRequestSchema, { id: { name: NAME }, candidate: "a" });

async function readsAndWrites(round: number): Promise<void> {
  const electd = await startElectd("memory");
  const fronted = await startElectd("memory", ["--h2c-processes", "2"]);
  const durable = await startElectd("durable");
  const fastify = await startBare(bareFastify);
  const http2 = await startBare(bareHttp2);
  const http2Cluster = await startBareFile("bare-http2-cluster.mjs", bareHttp2Cluster);
  const etcd = tools.etcd ? await startEtcd({ members: 1 }) : undefined;
  try {
    for (const server of [electd, fronted, durable]) {
      await postJson(election(server.url, "Create"), { id: { name: NAME } });
      await postJson(election(server.url, "Enter"), { id: { name: NAME }, candidate: "a" });
    }
    const endpoint = etcd?.endpoints[0] as string;
    const etcdPid = etcd?.pids()[0] as number;
    const leader = etcd ? await etcdLeader(endpoint, NAME) : undefined;
    const jsonGetTerm = JSON.stringify({ id: { name: NAME } });
    const jsonLeader = JSON.stringify({ name: Buffer.from(NAME).toString("base64") });
    // Alternate who goes first from round to round.
    const order = <T>(list: T[]) => (round % 2 === 0 ? list : [...list].reverse());

    if (tools.wrk) {
      for (const run of order([
        () =>
          record(
            "JSON GetTerm, HTTP/1.1",
            "electd",
            wrk(election(electd.url, "GetTerm"), jsonGetTerm, electd.pid),
          ),
        () =>
          etcd &&
          record(
            "JSON GetTerm, HTTP/1.1",
            "etcd",
            wrk(`${endpoint}/v3/election/leader`, jsonLeader, etcdPid),
          ),
        () =>
          record(
            "JSON GetTerm, HTTP/1.1",
            "ceiling",
            wrk(`${fastify.url}/x`, jsonGetTerm, fastify.pid),
          ),
      ]))
        run();
    }
    if (tools.h2load) {
      const checks = [
        grpcStatus(election(electd.url, "GetTerm"), getTerm),
        grpcStatus(election(fronted.url, "GetTerm"), getTerm),
        grpcStatus(election(durable.url, "Enter"), enter),
        grpcStatus(election(durable.url, "Withdraw"), enter),
        ...(etcd && leader
          ? [
              grpcStatus(`${endpoint}/v3electionpb.Election/Leader`, framed(leaderRequest(NAME))),
              grpcStatus(
                `${endpoint}/v3electionpb.Election/Proclaim`,
                framed(proclaimRequest(leader, "b")),
              ),
            ]
          : []),
      ];
      for (const status of await Promise.all(checks)) {
        if (status !== "0") throw new Error(`a benchmarked call fails: grpc-status ${status}`);
      }
      for (const run of order([
        () =>
          record(
            "gRPC GetTerm, h2c",
            "electd",
            h2load([election(electd.url, "GetTerm")], getTerm, electd.pid),
          ),
        () =>
          record(
            "gRPC GetTerm, h2c",
            "electd, 2 h2c processes",
            h2load([election(fronted.url, "GetTerm")], getTerm, processTree(fronted.pid)),
          ),
        () =>
          etcd &&
          record(
            "gRPC GetTerm, h2c",
            "etcd",
            h2load(
              [`${endpoint}/v3electionpb.Election/Leader`],
              framed(leaderRequest(NAME)),
              etcdPid,
            ),
          ),
        () =>
          record("gRPC GetTerm, h2c", "ceiling", h2load([`${http2.url}/x`], getTerm, http2.pid)),
        () =>
          record(
            "gRPC GetTerm, h2c",
            "ceiling, 2 processes",
            h2load([`${http2Cluster.url}/x`], getTerm, processTree(http2Cluster.pid)),
          ),
      ]))
        run();
      // Writes: Enter and Withdraw of one candidate in turn (the two requests are the same
      // message); with many in flight some find the candidate already in or out and change
      // nothing, so the election's version says how many committed. etcd: Proclaim, a
      // committed put per call.
      for (const run of order([
        async () => {
          const urls = [election(durable.url, "Enter"), election(durable.url, "Withdraw")];
          h2loadWarmUp(urls, enter);
          const before = await version(durable.url);
          const result = h2load(urls, enter, durable.pid, true);
          record("gRPC write, durable store", "electd", result);
          const changes = (await version(durable.url)) - before;
          record("gRPC write, durable store: committed changes", "electd", {
            ...result,
            rps: changes / seconds,
            p50: Number.NaN,
            p99: Number.NaN,
            cpuUs: Number.NaN,
          });
        },
        async () => {
          if (!etcd || !leader) return;
          const proclaim = framed(proclaimRequest(leader, "b"));
          const result = h2load([`${endpoint}/v3electionpb.Election/Proclaim`], proclaim, etcdPid);
          record("gRPC write, durable store", "etcd", result);
          record("gRPC write, durable store: committed changes", "etcd", result);
        },
      ]))
        await run();
    }
    if (tools.wrk) {
      // Writes in pairs, one election per connection: electd Enter/Withdraw against etcd
      // Campaign/Resign, which h2load cannot drive (Resign needs each Campaign's answer).
      const b64 = (text: string) => Buffer.from(text).toString("base64");
      const names = Array.from({ length: PAIR_CONNECTIONS }, (_, i) => `pair-${i + 1}`);
      for (const name of names) await postJson(election(durable.url, "Create"), { id: { name } });
      for (const run of order([
        () =>
          record(
            "JSON write pairs, durable store",
            "electd",
            wrkPairs("electd", durable.url, durable.pid, []),
          ),
        async () => {
          if (!etcd) return;
          const leases = await Promise.all(
            names.map(
              async () =>
                ((await postJson(`${endpoint}/v3/lease/grant`, { TTL: 3600 })) as { ID: string })
                  .ID,
            ),
          );
          record(
            "JSON write pairs, durable store",
            "etcd",
            wrkPairs("etcd", endpoint, etcdPid, [...leases, ...names.map(b64)]),
          );
        },
      ]))
        await run();
    }
  } finally {
    await Promise.all(
      [electd, fronted, durable, fastify, http2, http2Cluster, etcd].map((server) =>
        server?.stop(),
      ),
    );
  }
}

const fanResults = new Map<string, FanOut[]>();
async function fanOutRound(count: number, round: number): Promise<void> {
  const runs = [
    async () => {
      // MAX_WATCHES is 5,000 by default.
      const electd = await startElectd("memory", ["--max-watches", String(count + 100)]);
      try {
        await postJson(election(electd.url, "Create"), { id: { name: NAME } });
        await postJson(election(electd.url, "Enter"), { id: { name: NAME }, candidate: "a" });
        const result = await fanOut(
          electd.url,
          "/atomix.runtime.election.v1.LeaderElection/Watch",
          grpcFrame(WatchRequestSchema, { id: { name: NAME } }),
          count,
          electd.pid,
          async () => {
            await postJson(election(electd.url, "Enter"), { id: { name: NAME }, candidate: "b" });
          },
        );
        push(`electd ${count}`, result);
      } finally {
        await electd.stop();
      }
    },
    async () => {
      if (!tools.etcd) return;
      // A fresh etcd each time: etcd 3.4 keeps the Observe watchers of a client that left.
      const etcd = await startEtcd({ members: 1 });
      try {
        const endpoint = etcd.endpoints[0] as string;
        const leader = await etcdLeader(endpoint, NAME);
        const pid = etcd.pids()[0] as number;
        const result = await fanOut(
          endpoint,
          "/v3electionpb.Election/Observe",
          framed(leaderRequest(NAME)),
          count,
          pid,
          async () => {
            await postJson(`${endpoint}/v3/election/proclaim`, {
              leader,
              value: Buffer.from(`b${count}`).toString("base64"),
            });
          },
        );
        push(`etcd ${count}`, result);
      } finally {
        await etcd.stop();
      }
    },
  ];
  for (const run of round % 2 === 0 ? runs : runs.reverse()) await run();
}
function push(key: string, result: FanOut) {
  const list = fanResults.get(key) ?? [];
  list.push(result);
  fanResults.set(key, list);
}

// --- report -------------------------------------------------------------------------------

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.floor((s.length - 1) / 2)] as number);
};
const f0 = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en") : "-");
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "-");
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : "-");

try {
  if (!tools.etcd) console.log("etcd not found (Debian: etcd-server): etcd columns skipped");
  if (!tools.wrk) console.log("wrk not found (Debian: wrk): JSON rows skipped");
  if (!tools.h2load) console.log("h2load not found (Debian: nghttp2-client): gRPC rows skipped");
  for (let round = 0; round < rounds; round++) {
    if (!values["fan-out-only"]) {
      console.log(`round ${round + 1}/${rounds}: reads and writes`);
      await readsAndWrites(round);
    }
    for (const count of fanouts) {
      console.log(`round ${round + 1}/${rounds}: fan-out to ${count}`);
      await fanOutRound(count, round);
    }
  }
  const cpus = readFileSync("/proc/cpuinfo", "utf8").match(/^processor/gm)?.length;
  console.log(
    `\n${new Date().toISOString().slice(0, 10)}, ${cpus} CPUs, node ${process.version}, ` +
      `${execFileSync("etcd", ["--version"], { encoding: "utf8" }).split("\n")[0]}; ` +
      `medians of ${rounds} rounds of ${seconds} s\n`,
  );
  console.log(
    "| load | system | req/s | p50 ms | p99 ms | server CPU µs/req | errors | req/s / etcd's | electd CPU / ceiling CPU |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const row of rows) {
    const m = (system: string, key: keyof Result) =>
      median((row.results.get(system) ?? []).map((r) => r[key]));
    for (const system of [
      "electd",
      "electd, 2 h2c processes",
      "etcd",
      "ceiling",
      "ceiling, 2 processes",
    ]) {
      if (!row.results.has(system)) continue;
      // The ceilings' too: how far a Node server gets on one core, and on two.
      const ratio =
        system !== "etcd" && row.results.has("etcd") ? f2(m(system, "rps") / m("etcd", "rps")) : "";
      const cpuRatio =
        system === "electd" && row.results.has("ceiling")
          ? f1(m("electd", "cpuUs") / m("ceiling", "cpuUs"))
          : "";
      console.log(
        `| ${row.name} | ${system} | ${f0(m(system, "rps"))} | ${f1(m(system, "p50"))} | ` +
          `${f1(m(system, "p99"))} | ${f0(m(system, "cpuUs"))} | ${f0(m(system, "errors"))} | ` +
          `${ratio} | ${cpuRatio} |`,
      );
    }
  }
  if (fanResults.size > 0) {
    console.log("\n| watchers | system | p50 ms | p99 ms | max ms | RSS KiB per idle watcher |");
    console.log("|---|---|---|---|---|---|");
    for (const [key, list] of fanResults) {
      const [system, count] = key.split(" ");
      const m = (k: keyof FanOut) => median(list.map((r) => r[k]));
      console.log(
        `| ${count} | ${system} | ${f0(m("p50"))} | ${f0(m("p99"))} | ${f0(m("max"))} | ${f1(m("kibPerWatcher"))} |`,
      );
    }
  }
  console.log("\ncommands:");
  for (const command of commands) console.log(`  ${command}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
