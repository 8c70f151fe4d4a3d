// Enter/Withdraw throughput of the durable store against the memory store, and of the
// durable store keeping each election's history (the default) against it keeping none
// (HISTORY_PER_ELECTION=0), side by side in one run: three real servers (the durable ones on
// fresh temporary directories), the same concurrent load against each in alternating rounds
// so machine noise hits all, then ops/s for each and the ratios.
//
//   npm run bench:store -- [--clients 64] [--elections 16] [--rounds 6] [--seconds 1] [--http 1.1|2]
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { type ServerProcess, spawnServer } from "../test/support/process.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "64" },
    elections: { type: "string", default: "16" },
    rounds: { type: "string", default: "6" },
    seconds: { type: "string", default: "1" },
    http: { type: "string", default: "1.1" },
  },
});
const clients = Number(values.clients);
const elections = Number(values.elections);
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
const httpVersion = values.http === "1.1" ? "1.1" : "2";

interface Side {
  readonly label: string;
  readonly server: ServerProcess;
  readonly sessions: Http2SessionManager | undefined;
  readonly client: ReturnType<typeof createClient<typeof LeaderElection>>;
  ops: number;
  ms: number;
  /** Server CPU seconds spent in the measured rounds (Linux only), or NaN. */
  cpu: number;
}

/** CPU seconds (user + system) the process has used so far: /proc on Linux, else NaN. */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? [];
    // utime and stime are fields 14 and 15 of stat, in clock ticks (100 per second).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

async function side(label: string, flags: string[]): Promise<Side> {
  const server = await spawnServer(["--port", "0", ...flags]);
  const sessions = httpVersion === "2" ? new Http2SessionManager(server.url) : undefined;
  const transport =
    sessions === undefined
      ? createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })
      : createConnectTransport({ baseUrl: server.url, httpVersion: "2", sessionManager: sessions });
  const client = createClient(LeaderElection, transport);
  for (let i = 0; i < elections; i++) await client.create({ id: { name: `bench-${i}` } });
  return { label, server, sessions, client, ops: 0, ms: 0, cpu: 0 };
}

/** Every client enters and withdraws its own candidate in a loop for `seconds`. */
async function round(s: Side): Promise<number> {
  const cpuBefore = cpuSeconds(s.server.child.pid);
  const started = performance.now();
  const end = started + seconds * 1000;
  let ops = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      const id = { name: `bench-${i % elections}` };
      const candidate = `client-${i}`;
      while (performance.now() < end) {
        await s.client.enter({ id, candidate });
        await s.client.withdraw({ id, candidate });
        ops += 2;
      }
    }),
  );
  const ms = performance.now() - started;
  s.ops += ops;
  s.ms += ms;
  s.cpu += cpuSeconds(s.server.child.pid) - cpuBefore;
  return (ops / ms) * 1000;
}

const dataDir = mkdtempSync(join(tmpdir(), "electd-bench-"));
const sides: Side[] = [];
try {
  sides.push(await side("durable", ["--store", "durable", "--data-dir", join(dataDir, "a")]));
  sides.push(await side("memory", ["--store", "memory"]));
  sides.push(
    await side("durable, no history", [
      ...["--store", "durable", "--data-dir", join(dataDir, "b")],
      ...["--history-per-election", "0"],
    ]),
  );
  console.log(
    `Enter/Withdraw, ${clients} concurrent clients over ${elections} elections, HTTP/${httpVersion}, ${rounds} rounds of ${seconds} s per store, alternating`,
  );
  // Unmeasured warm-up rounds: JIT, connections, and the durable store's first WAL
  // growth (a new log file is slower to extend than a reused one) stay out of the figures.
  for (let i = 0; i < 2; i++) for (const s of sides) await round({ ...s, ops: 0, ms: 0, cpu: 0 });
  for (let r = 0; r < rounds; r++) {
    // Alternate which store goes first, so a slow moment is not always charged to one.
    const order = r % 2 === 0 ? sides : [...sides].reverse();
    const line: string[] = [];
    for (const s of order) line.push(`${s.label} ${Math.round(await round(s))} ops/s`);
    console.log(`round ${r + 1}: ${line.join(", ")}`);
  }
  const rate = (s: Side) => (s.ops / s.ms) * 1000;
  const [durable, memory, bare] = sides as [Side, Side, Side];
  const perOp = (s: Side) => ((s.cpu / s.ops) * 1e6).toFixed(0);
  for (const s of sides) {
    console.log(
      `${`${s.label}:`.padEnd(21)} ${Math.round(rate(s))} ops/s (server CPU ${perOp(s)} µs/op)`,
    );
  }
  console.log(`ratio durable/memory: ${(rate(durable) / rate(memory)).toFixed(2)}`);
  console.log(`ratio durable with history / without: ${(rate(durable) / rate(bare)).toFixed(2)}`);
} finally {
  for (const s of sides) {
    s.sessions?.abort();
    s.server.child.kill("SIGTERM");
    await s.server.exited;
  }
  rmSync(dataDir, { recursive: true, force: true });
}
