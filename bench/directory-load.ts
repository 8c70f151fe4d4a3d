// Keep-alive latency while the directory is hammered: a session with a 1 s TTL is kept
// alive every 100 ms while 16 clients page through ListElections in a loop and 1,000
// WatchElections streams are opened at once on a large directory. A keep-alive that waits
// more than its TTL fails a leader over for nothing, so its p99 is what this prints, with
// the List rate and the server's RSS. electd runs as its own process on the memory store.
//
// The watchers' streams are paused, but Node's HTTP/2 client keeps taking (and buffering)
// what arrives, so the server sends each of them the whole snapshot: 1,000 full-directory
// snapshots in flight while the keep-alives are timed. The watchers and the listers run in
// a process of their own: taking in a gigabyte of snapshots blocks a process's event loop
// for seconds, which would delay the keep-alives before they are sent, as no real client
// that only keeps its session alive is delayed.
//
// usage: npm run bench:directory -- [--elections 100000] [--watchers 1000] [--listers 16]
//          [--seconds 20] [--profile DIR]
import { spawn } from "node:child_process";
import { once } from "node:events";
import { connect as connectHttp2 } from "node:http2";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import {
  ElectionDirectoryService,
  WatchElectionsRequestSchema,
} from "../gen/electd/v1/directory_pb.js";
import { SessionService } from "../gen/electd/v1/session_pb.js";
import { grpcFrame, pausedStreams, rssMiB, spawnElectd } from "./support.js";

const { values } = parseArgs({
  options: {
    elections: { type: "string", default: "100000" },
    watchers: { type: "string", default: "1000" },
    listers: { type: "string", default: "16" },
    seconds: { type: "string", default: "20" },
    /** Write the server's CPU profile (node --cpu-prof) into this directory. */
    profile: { type: "string" },
    /** Internal: run the watchers and listers against this server, in this process. */
    load: { type: "string" },
  },
});
const elections = Number(values.elections);
const watchers = Number(values.watchers);
const listers = Number(values.listers);
const seconds = Number(values.seconds);
const out = (line: string) => process.stdout.write(`${line}\n`);

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

if (values.load) {
  await load(values.load);
  process.exit(0);
}

/**
 * The other clients: opens the watchers, says so on stdout, pages through the directory
 * until stdin closes, then prints how many pages it listed.
 */
async function load(url: string): Promise<void> {
  const manager = new Http2SessionManager(url);
  const directory = createClient(
    ElectionDirectoryService,
    createGrpcTransport({ baseUrl: url, sessionManager: manager }),
  );
  // Directory watchers: raw HTTP/2 streams, 50 per connection, left paused.
  const frame = grpcFrame(WatchElectionsRequestSchema, {});
  const h2 = Array.from({ length: Math.ceil(watchers / 50) }, () => {
    const session = connectHttp2(url);
    session.on("error", () => {});
    return session;
  });
  const started = performance.now();
  await Promise.all(
    h2.map((session, i) =>
      pausedStreams(
        session,
        "/electd.v1.ElectionDirectoryService/WatchElections",
        frame,
        Math.min(50, watchers - i * 50),
      ),
    ),
  );
  out(JSON.stringify({ open: (performance.now() - started) / 1000 }));
  let stop = false;
  process.stdin.resume();
  process.stdin.once("end", () => {
    stop = true;
  });
  let lists = 0;
  await Promise.all(
    Array.from({ length: listers }, async (_, i) => {
      let pageToken = "";
      while (!stop) {
        const page = await directory.listElections({
          pageSize: 100,
          pageToken,
          tag: i % 2 ? "" : `shard-${i}`,
        });
        pageToken = page.nextPageToken;
        lists++;
      }
    }),
  );
  out(JSON.stringify({ lists }));
  for (const s of h2) s.destroy();
  manager.abort();
}

const server = await spawnElectd(
  [
    ...["--port", "0", "--log-level", "warn", "--store", "memory"],
    ...["--max-elections", String(elections), "--max-watches", String(watchers + 100)],
    ...["--session-ttl-min", "100ms"],
  ],
  values.profile ? ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] : [],
);
const { url } = server;
const pid = server.child.pid;
const manager = new Http2SessionManager(url);
const transport = createGrpcTransport({ baseUrl: url, sessionManager: manager });
const election = createClient(LeaderElection, transport);
const sessions = createClient(SessionService, transport);

const started = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: 64 }, async () => {
    while (next < elections) {
      const i = next++;
      await election.create({
        id: { name: `svc-${String(i).padStart(6, "0")}` },
        tags: [`shard-${i % 16}`],
      });
    }
  }),
);
out(`created ${elections} elections in ${((performance.now() - started) / 1000).toFixed(1)} s`);
const rssLoaded = rssMiB(pid);

// The watchers and listers, in a process of their own.
const others = spawn(
  process.execPath,
  ["--import", "tsx", fileURLToPath(import.meta.url), "--load", url, ...process.argv.slice(2)],
  { stdio: ["pipe", "pipe", "inherit"] },
);
process.once("exit", () => others.kill("SIGKILL"));
const said = createInterface({ input: others.stdout as NodeJS.ReadableStream })[
  Symbol.asyncIterator
]();
const heard = async () => {
  const line = await said.next();
  if (line.done) throw new Error("the load process ended early");
  return JSON.parse(line.value) as { open?: number; lists?: number };
};
const { open } = await heard();
out(`${watchers} WatchElections streams open in ${(open ?? 0).toFixed(1)} s`);
const rssWatched = rssMiB(pid);

let { sessionId } = await sessions.openSession({ ttl: durationFromMs(1000) });
const latencies: number[] = [];
/** Each keep-alive's latency and when it was sent, in ms since the first. */
const timeline: [latency: number, at: number][] = [];
let expired = 0;
const first = performance.now();
const deadline = first + seconds * 1000;
while (performance.now() < deadline) {
  const sent = performance.now();
  try {
    await sessions.keepAlive({ sessionId });
  } catch {
    // The session expired although it was kept alive every 100 ms: a false failover.
    expired++;
    ({ sessionId } = await sessions.openSession({ ttl: durationFromMs(1000) }));
  }
  latencies.push(performance.now() - sent);
  timeline.push([performance.now() - sent, sent - first]);
  await new Promise((r) => setTimeout(r, 100));
}
const healthz = (await (await fetch(`${url}/healthz`)).json()) as { watches: number };
others.stdin?.end();
const { lists = 0 } = await heard();
await once(others, "exit");
const rssEnd = rssMiB(pid);

latencies.sort((a, b) => a - b);
out(
  `keep-alive over ${seconds} s (${latencies.length} calls): p50 ${percentile(latencies, 0.5).toFixed(1)} ms, ` +
    `p99 ${percentile(latencies, 0.99).toFixed(1)} ms, max ${percentile(latencies, 1).toFixed(1)} ms; ` +
    `sessions expired although kept alive (false failovers): ${expired}`,
);
const slowest = timeline
  .sort((a, b) => b[0] - a[0])
  .slice(0, 3)
  .map(([latency, at]) => `${latency.toFixed(0)} ms at ${(at / 1000).toFixed(1)} s`);
out(`keep-alive p90 ${percentile(latencies, 0.9).toFixed(1)} ms; slowest: ${slowest.join(", ")}`);
out(`ListElections (page 100, ${listers} loops): ${(lists / seconds).toFixed(0)} pages/s`);
out(
  `server RSS: ${rssLoaded.toFixed(0)} MiB with the elections, ${rssWatched.toFixed(0)} MiB with ${healthz.watches} watchers, ${rssEnd.toFixed(0)} MiB at the end`,
);
manager.abort();
await server.stop();
