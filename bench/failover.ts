// Failover latency: how long after a leader's last keep-alive the election's watchers see
// the next leader. Each run opens a session, enters a session-bound leader and a follower,
// keeps the session alive a few times and then stops, as a crashed process would; the
// latency is from the moment the last keep-alive was sent to the Watch message naming the
// follower. Prints the distribution; the floor is the TTL itself.
//
// usage: npm run bench:failover -- [--runs 100] [--ttl 1000] [--parallel 10]
//          [--protocol grpc|connect] [--url http://host:port (else a server is started)]
import { parseArgs } from "node:util";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { type Client, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../gen/electd/v1/session_pb.js";
import { spawnElectd } from "./support.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "100" },
    ttl: { type: "string", default: "1000" },
    parallel: { type: "string", default: "10" },
    protocol: { type: "string", default: "grpc" },
    url: { type: "string" },
  },
});
const runs = Number(values.runs);
const ttlMs = Number(values.ttl);
const parallel = Number(values.parallel);

async function once(
  sessions: Client<typeof SessionService>,
  elections: Client<typeof LeaderElection>,
  name: string,
): Promise<number> {
  const { sessionId } = await sessions.openSession({ ttl: durationFromMs(ttlMs) });
  await elections.create({ id: { name } });
  await elections.enter(
    { id: { name }, candidate: "leader" },
    { headers: { "electd-session": sessionId } },
  );
  await elections.enter({ id: { name }, candidate: "follower" });
  const stop = new AbortController();
  const replaced = (async () => {
    for await (const { term } of elections.watch({ id: { name } }, { signal: stop.signal })) {
      if (term?.leader === "follower") return performance.now();
    }
    throw new Error(`watch of ${name} ended before a new leader`);
  })();
  let lastSent = 0;
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, ttlMs / 3));
    lastSent = performance.now();
    await sessions.keepAlive({ sessionId });
  }
  // The "crash": no more keep-alives from here on.
  const at = await replaced;
  stop.abort();
  return at - lastSent;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const server = values.url
    ? undefined
    : await spawnElectd(["--port", "0", "--log-level", "warn", "--session-ttl-min", "100ms"]);
  const url = values.url ?? (server?.url as string);
  let transport: Transport;
  let manager: Http2SessionManager | undefined;
  if (values.protocol === "connect") {
    transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  } else {
    manager = new Http2SessionManager(url);
    transport = createGrpcTransport({ baseUrl: url, sessionManager: manager });
  }
  const sessions = createClient(SessionService, transport);
  const elections = createClient(LeaderElection, transport);
  const latencies: number[] = [];
  let next = 0;
  const prefix = `failover-${process.pid}-${Date.now()}`;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < runs) {
        const i = next++;
        latencies.push(await once(sessions, elections, `${prefix}-${i}`));
      }
    }),
  );
  manager?.abort();
  await server?.stop();
  const sorted = [...latencies].sort((a, b) => a - b);
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  process.stdout.write(
    [
      `failover latency: last keep-alive sent -> Watch names the new leader`,
      `runs ${runs}, ${parallel} at a time, TTL ${ttlMs} ms, protocol ${values.protocol}, server ${values.url ?? "started by the bench"}`,
      `min ${ms(sorted[0] as number)}  p50 ${ms(percentile(sorted, 50))}  p90 ${ms(percentile(sorted, 90))}  p99 ${ms(percentile(sorted, 99))}  max ${ms(sorted.at(-1) as number)}`,
      `beyond the TTL: p50 ${ms(percentile(sorted, 50) - ttlMs)}  p99 ${ms(percentile(sorted, 99) - ttlMs)}  max ${ms((sorted.at(-1) as number) - ttlMs)}`,
      "",
    ].join("\n"),
  );
}

await main();
