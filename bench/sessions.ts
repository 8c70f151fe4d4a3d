// What idle sessions cost: memory per session, CPU while nobody keeps alive or expires,
// the cost of a keep-alive, and how long a mass expiry takes. Runs the session registry
// in-process on the memory store, without the network, to see the registry alone.
//
// usage: npm run bench:sessions -- [--sessions 100000] [--idle 5000]
import { PerformanceObserver } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { SessionRegistry } from "../server/session/registry.js";
import { createMemoryStore } from "../server/store/memory.js";

const { values } = parseArgs({
  options: {
    sessions: { type: "string", default: "100000" },
    idle: { type: "string", default: "5000" },
  },
});
const count = Number(values.sessions);
const idleMs = Number(values.idle);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:sessions does)");

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
function heap(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}
/**
 * CPU time (user + system, ms) this process spends during `ms` of doing nothing, and how
 * much of that the garbage collector's pauses account for.
 */
async function idleCpu(ms: number): Promise<{ cpu: number; gc: number }> {
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  observer.observe({ entryTypes: ["gc"] });
  const before = process.cpuUsage();
  await sleep(ms);
  const used = process.cpuUsage(before);
  observer.disconnect();
  return { cpu: (used.user + used.system) / 1000, gc: gcMs };
}

const store = createMemoryStore({ maxElections: 1 });
const registry = new SessionRegistry({
  store,
  settings: { ttlMs: 300_000, minTtlMs: 1, maxTtlMs: 300_000, maxSessions: count },
  limits: { maxCandidates: 1 },
});
await registry.start();
const out = (line: string) => process.stdout.write(`${line}\n`);

const baselineCpu = await idleCpu(idleMs);
const heapBefore = heap();
const ids: string[] = [];
let started = performance.now();
for (let i = 0; i < count; i++) ids.push((await registry.open(300_000)).id);
const openMs = performance.now() - started;
const perSession = (heap() - heapBefore) / count;
out(
  `${count} sessions opened in ${openMs.toFixed(0)} ms; heap ${perSession.toFixed(0)} bytes per session (registry + memory store record)`,
);

// Three windows: the first may still hold background work (optimising compiler, the
// collector's memory reducer) left over from opening the sessions.
const windows: string[] = [];
for (let i = 0; i < 3; i++) {
  const idle = await idleCpu(idleMs);
  windows.push(`${idle.cpu.toFixed(1)} ms (GC pauses ${idle.gc.toFixed(1)} ms)`);
}
out(
  `idle CPU per ${idleMs} ms window with ${count} sessions: ${windows.join(", ")}; ` +
    `with no sessions: ${baselineCpu.cpu.toFixed(1)} ms`,
);

started = performance.now();
for (const id of ids) registry.keepAlive(id);
const keepAliveMs = performance.now() - started;
out(
  `keep-alive of every session: ${keepAliveMs.toFixed(0)} ms (${((keepAliveMs / count) * 1000).toFixed(2)} µs each, without the network)`,
);
await registry.stop();

// Mass expiry: sessions opened back to back with a 1 s TTL, none holding candidates.
const fresh = createMemoryStore({ maxElections: 1 });
const expiring = new SessionRegistry({
  store: fresh,
  settings: { ttlMs: 1000, minTtlMs: 1, maxTtlMs: 1000, maxSessions: count },
  limits: { maxCandidates: 1 },
});
await expiring.start();
started = performance.now();
for (let i = 0; i < count; i++) await expiring.open(1000);
const lastDeadline = performance.now() + 1000;
const openedOver = lastDeadline - 1000 - started;
while (expiring.size > 0) await sleep(5);
out(
  `${count} sessions with a 1 s TTL opened over ${openedOver.toFixed(0)} ms: all expired ` +
    `${(performance.now() - lastDeadline).toFixed(0)} ms after the last deadline`,
);
await expiring.stop();
await store.close();
await fresh.close();
