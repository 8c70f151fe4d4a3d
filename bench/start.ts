// Start-up: the time from spawning the server to its first 200 from /healthz, and the
// server process's resident memory at that moment, for the ways of starting it, measured
// side by side (interleaved, so machine load falls on all of them alike):
//   before, npm start   what `npm start` ran until the build moved to install time:
//                       buf generate, vite build, then the TypeScript sources through tsx
//   before, tsx         node --import tsx server/main.ts (the sources, compiled at start)
//   after, node         node dist/electd.js serve (bundled by `npm ci`)
//   after, npm start    npm start (the same, through npm)
//   also, DIR           node DIR/electd.js serve: another build side by side, e.g. one made
//                       from an older commit (--also DIR; DIR inside this clone, so that the
//                       build finds web/dist)
//   floor               a bare Fastify server answering /healthz (bench/start-floor.mjs),
//                       bundled and minified as electd is: what the framework alone costs
// usage: npm run bench:start -- [--runs N] [--skip-old-npm-start] [--also DIR]
// Needs `npm run build` first (dist/). Each server runs with --store memory on a free port.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = fileURLToPath(new URL("..", import.meta.url));
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    "skip-old-npm-start": { type: "boolean", default: false },
    also: { type: "string" },
  },
});
const runs = Number(values.runs);

interface Way {
  readonly name: string;
  /** The shell command, given the port. */
  command(port: number): string;
}

const flags = (port: number) => `--port ${port} --store memory --log-level warn`;
const BUNDLE = "after, node dist/electd.js serve";
/** The floor's bundle, built here as scripts/bundle.mjs builds electd's. */
const floorDir = mkdtempSync(join(tmpdir(), "electd-floor-"));
process.once("exit", () => rmSync(floorDir, { recursive: true, force: true }));
const floor = join(floorDir, "floor.mjs");
{
  const { build } = await import("esbuild");
  const { bundleOptions } = await import("../scripts/bundle.mjs");
  const { outdir: _, ...options } = bundleOptions;
  await build({
    ...options,
    entryPoints: [join(root, "bench/start-floor.mjs")],
    splitting: false,
    sourcemap: false,
    outfile: floor,
  });
}
const ways: Way[] = [
  ...(values["skip-old-npm-start"]
    ? []
    : [
        {
          name: "before, npm start (generate, vite build, tsx)",
          command: (port: number) =>
            `npm run --silent generate && npx vite build --logLevel silent && exec node --import tsx server/main.ts ${flags(port)}`,
        },
      ]),
  {
    name: "before, node --import tsx server/main.ts",
    command: (port) => `exec node --import tsx server/main.ts ${flags(port)}`,
  },
  ...(values.also === undefined
    ? []
    : [
        {
          name: `also, node ${values.also}/electd.js serve`,
          command: (port: number) => `exec node ${values.also}/electd.js serve ${flags(port)}`,
        },
      ]),
  {
    name: BUNDLE,
    command: (port) => `exec node dist/electd.js serve ${flags(port)}`,
  },
  { name: "after, npm start", command: (port) => `exec npm start --silent -- ${flags(port)}` },
  {
    name: "floor, a bare Fastify server (bundled)",
    command: (port) => `exec node ${floor} --port ${port}`,
  },
];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

/** Every process below `pid` (Linux /proc). */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

function rssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The process serving: the one whose command line runs the server. */
function serverPid(top: number): number {
  const all = [top, ...descendants(top)];
  const serving = all.filter((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      return /server\/main\.ts|electd\.js\0serve/.test(cmd);
    } catch {
      return false;
    }
  });
  return serving.at(-1) ?? top;
}

interface Sample {
  readonly ms: number;
  readonly serverRss: number;
  readonly treeRss: number;
}

async function measure(way: Way): Promise<Sample> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn("sh", ["-c", way.command(port)], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
    detached: true,
    env: { ...process.env, PATH: `${root}/node_modules/.bin:${process.env.PATH}` },
  });
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  try {
    for (;;) {
      if (exited) throw new Error(`${way.name}: exited before answering /healthz`);
      if (performance.now() - started > 180_000) throw new Error(`${way.name}: no answer`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (res) => res.status === 200,
        () => false,
      );
      if (ok) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const ms = performance.now() - started;
    const pid = child.pid as number;
    const tree = [pid, ...descendants(pid)];
    return {
      ms,
      serverRss: rssMiB(serverPid(pid)),
      treeRss: tree.reduce((sum, p) => sum + rssMiB(p), 0),
    };
  } finally {
    const gone = new Promise((resolve) =>
      exited ? resolve(undefined) : child.once("exit", resolve),
    );
    try {
      process.kill(-(child.pid as number), "SIGTERM");
    } catch {}
    await gone;
  }
}

const samples = new Map<string, Sample[]>(ways.map((w) => [w.name, []]));
for (let run = 1; run <= runs; run++) {
  for (const way of ways) {
    const sample = await measure(way);
    samples.get(way.name)?.push(sample);
    process.stderr.write(
      `run ${run}/${runs} ${way.name}: ${sample.ms.toFixed(0)} ms, ${sample.serverRss.toFixed(1)} MiB\n`,
    );
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};
const afterMs = median((samples.get(BUNDLE) ?? []).map((s) => s.ms));
console.log(
  `start-up, ${runs} runs each, interleaved; node ${process.version}; median (min to max)`,
);
console.log(
  `${"way".padEnd(48)} ${"spawn to /healthz 200".padEnd(26)} ${"server RSS".padEnd(12)} process tree RSS`,
);
for (const way of ways) {
  const xs = samples.get(way.name) ?? [];
  const ms = xs.map((s) => s.ms);
  const time = `${median(ms).toFixed(0)} ms (${Math.min(...ms).toFixed(0)} to ${Math.max(...ms).toFixed(0)})`;
  console.log(
    `${way.name.padEnd(48)} ${time.padEnd(26)} ${`${median(xs.map((s) => s.serverRss)).toFixed(1)} MiB`.padEnd(12)} ${median(xs.map((s) => s.treeRss)).toFixed(1)} MiB   ${(median(ms) / afterMs).toFixed(1)}x the bundle`,
  );
}
