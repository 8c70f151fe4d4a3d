// electd on etcd against etcd itself, side by side on one three-member cluster started
// here (Debian's etcd-server). Writes: `--clients` concurrent loops of Enter then Withdraw
// through two electd servers, against the same number of loops writing to etcd directly
// with one transaction per operation (compare the key's revision, put), the least any
// client that serialises changes through etcd does. Both sides are driven through
// @grpc/grpc-js (electd with the Atomix .proto loaded at run time, as an unchanged backend
// calls it; etcd through the etcd3 package), so the clients cost the same. Rounds alternate between the two, and
// the best round of each is printed with the ratio. Then Watch fan-out: one change to
// `--watchers` Watch streams, all on one server, then split over two, time from the call to
// each watcher's message.
//
// usage: npm run bench:etcd -- [--clients 64] [--seconds 5] [--rounds 3] [--watchers 1000]
//          [--profile DIR]

import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { Etcd3 } from "etcd3";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { startEtcd } from "../test/support/etcd.js";
import { cpuMs, type ElectdProcess, spawnElectd } from "./support.js";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "64" },
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    watchers: { type: "string", default: "1000" },
    /** A directory for each electd's CPU profile (node --cpu-prof). */
    profile: { type: "string" },
  },
});
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const watchers = Number(values.watchers);

type Elections = Client<typeof LeaderElection>;

/** The three calls the write benchmark makes, through grpc-js. */
interface Writer {
  create(name: string): Promise<void>;
  enter(name: string, candidate: string): Promise<void>;
  withdraw(name: string, candidate: string): Promise<void>;
}

function grpcJsWriter(url: string): Writer {
  const definition = protoLoader.loadSync("atomix/runtime/election/v1/election.proto", {
    includeDirs: [fileURLToPath(new URL("../proto", import.meta.url))],
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    atomix: { runtime: { election: { v1: { LeaderElection: grpc.ServiceClientConstructor } } } };
  };
  const Ctor = loaded.atomix.runtime.election.v1.LeaderElection;
  const client = new Ctor(new URL(url).host, grpc.credentials.createInsecure());
  const unary = (method: string, request: unknown) =>
    new Promise<void>((resolve, reject) => {
      (client[method] as (r: unknown, cb: (e: Error | null) => void) => void).call(
        client,
        request,
        (error) => (error ? reject(error) : resolve()),
      );
    });
  return {
    create: (name) => unary("Create", { id: { name } }),
    enter: (name, candidate) => unary("Enter", { id: { name }, candidate }),
    withdraw: (name, candidate) => unary("Withdraw", { id: { name }, candidate }),
  };
}

/** Runs `op(lane, i)` in `clients` loops for `seconds`; operations per second. */
async function throughput(op: (lane: number, i: number) => Promise<void>): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, lane) => {
      for (let i = 0; performance.now() < end; i++) {
        await op(lane, i);
        done++;
      }
    }),
  );
  return done / seconds;
}

function electdWrites(servers: readonly Writer[]) {
  return async (round: number) => {
    const name = (lane: number) => `w${round}-${lane}`;
    await Promise.all(
      Array.from({ length: clients }, (_, lane) =>
        (servers[lane % servers.length] as Writer).create(name(lane)),
      ),
    );
    return throughput(async (lane, i) => {
      const client = servers[lane % servers.length] as Writer;
      if (i % 2 === 0) await client.enter(name(lane), "c");
      else await client.withdraw(name(lane), "c");
    });
  };
}

function etcdWrites(etcd: Etcd3) {
  return async (round: number) => {
    const key = (lane: number) => Buffer.from(`/direct/${round}/${lane}`);
    const revisions = new Map<number, string>();
    return throughput(async (lane, i) => {
      const result = await etcd.kv.txn({
        compare: [
          {
            key: key(lane),
            target: "Mod",
            result: "Equal",
            mod_revision: revisions.get(lane) ?? 0,
          },
        ],
        success: [{ request_put: { key: key(lane), value: Buffer.from(String(i)) } }],
      });
      if (!result.succeeded) throw new Error("a lane's key changed under it");
      revisions.set(lane, result.header.revision);
    });
  };
}

/** One change seen by every watcher: milliseconds from the call to each arrival. */
async function fanOut(servers: readonly Elections[], name: string): Promise<number[]> {
  const writer = servers[0] as Elections;
  await writer.create({ id: { name } });
  const stop = new AbortController();
  let changedAt = 0;
  const arrivals: number[] = [];
  let ready = 0;
  let allReady: () => void = () => {};
  const started = new Promise<void>((resolve) => {
    allReady = resolve;
  });
  const streams = Array.from({ length: watchers }, async (_, i) => {
    const client = servers[i % servers.length] as Elections;
    try {
      for await (const { term } of client.watch({ id: { name } }, { signal: stop.signal })) {
        if (term?.leader === "") {
          if (++ready === watchers) allReady();
        } else {
          arrivals.push(performance.now() - changedAt);
          return;
        }
      }
    } catch {
      // Aborted at the end.
    }
  });
  await started;
  changedAt = performance.now();
  await writer.enter({ id: { name }, candidate: "leader" });
  while (arrivals.length < watchers) await new Promise((resolve) => setTimeout(resolve, 10));
  stop.abort();
  await Promise.all(streams);
  return arrivals.sort((x, y) => x - y);
}

const quantile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

const cluster = await startEtcd();
const started: ElectdProcess[] = [];
try {
  const flags = [
    ...["--port", "0", "--store", "etcd", "--etcd-endpoints", cluster.endpoints.join(",")],
    ...["--log-level", "warn", "--max-watches", String(watchers + 10)],
  ];
  const nodeArgs = values.profile ? ["--cpu-prof", `--cpu-prof-dir=${values.profile}`] : [];
  started.push(
    ...(await Promise.all([spawnElectd(flags, nodeArgs), spawnElectd(flags, nodeArgs)])),
  );
  const servers = started.map((s) =>
    createClient(LeaderElection, createGrpcTransport({ baseUrl: s.url })),
  );
  const etcd = new Etcd3({ hosts: [...cluster.endpoints] });
  const viaElectd = electdWrites(started.map((s) => grpcJsWriter(s.url)));
  const direct = etcdWrites(etcd);
  console.log(
    `writes: ${clients} concurrent clients, ${rounds} rounds of ${seconds} s each, alternating`,
  );
  let bestElectd = 0;
  let bestEtcd = 0;
  const electdPids = started.map((s) => s.child.pid);
  /** Ops per second, and CPU ms per op of electd and of etcd during the round. */
  const measured = async (run: () => Promise<number>) => {
    const before = [cpuMs(electdPids), cpuMs(cluster.pids())];
    const rate = await run();
    const ops = rate * seconds;
    const electdCpu = (cpuMs(electdPids) - (before[0] as number)) / ops;
    const etcdCpu = (cpuMs(cluster.pids()) - (before[1] as number)) / ops;
    return {
      rate,
      text: `${rate.toFixed(0)} ops/s (CPU per op: electd ${electdCpu.toFixed(2)} ms, etcd ${etcdCpu.toFixed(2)} ms)`,
    };
  };
  for (let round = 0; round < rounds; round++) {
    const e = await measured(() => viaElectd(round));
    const d = await measured(() => direct(round));
    bestElectd = Math.max(bestElectd, e.rate);
    bestEtcd = Math.max(bestEtcd, d.rate);
    console.log(`  round ${round + 1}: electd Enter/Withdraw ${e.text}`);
    console.log(`           etcd txn ${d.text}`);
  }
  console.log(
    `best: electd ${bestElectd.toFixed(0)} ops/s, etcd ${bestEtcd.toFixed(0)} ops/s, ratio ${(bestElectd / bestEtcd).toFixed(2)}`,
  );
  etcd.close();

  console.log(`watch fan-out: one change to ${watchers} watchers`);
  for (const [label, using] of [
    ["one server", servers.slice(0, 1)],
    ["two servers", servers],
  ] as const) {
    const sorted = await fanOut(using, `fan-${label.replace(" ", "-")}`);
    console.log(
      `  ${label}: p50 ${quantile(sorted, 0.5).toFixed(1)} ms, p99 ${quantile(sorted, 0.99).toFixed(1)} ms, max ${(sorted.at(-1) ?? 0).toFixed(1)} ms`,
    );
  }
} finally {
  await Promise.all(started.map((s) => s.stop()));
  await cluster.stop();
}
