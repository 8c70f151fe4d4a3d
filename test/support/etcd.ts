// A real etcd cluster for tests: Debian's etcd-server, three members (or as many as asked)
// on loopback with free ports and temporary data directories. Members can be killed with
// SIGKILL and started again on the same data, as an operator's failure would. The caller
// stops it (a suite's `after`, since one registered inside a `before` hook would run as
// soon as that hook ends).
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface EtcdCluster {
  /** Client URLs of every member, for --etcd-endpoints. */
  readonly endpoints: readonly string[];
  /** Process ids of the members running now. */
  pids(): number[];
  /** SIGKILLs member `i`. */
  kill(i: number): Promise<void>;
  /** Starts member `i` again on its data directory and waits until the cluster is healthy. */
  restart(i: number): Promise<void>;
  stop(): Promise<void>;
}

/** Unused loopback ports, found by binding port 0 and letting it go. */
async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports: number[] = [];
  for (const server of servers) {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    ports.push((server.address() as { port: number }).port);
  }
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Whether a member answers /health with health "true" (it has a leader and quorum). */
function healthy(endpoint: string, tls: EtcdOptions["tls"]): Promise<boolean> {
  return new Promise((resolve) => {
    const files = tls
      ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) }
      : {};
    const request = (tls ? httpsGet : httpGet)(
      `${endpoint}/health`,
      { ...files, timeout: 2000 },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () => resolve(/"health":\s*"true"/.test(body)));
        response.on("error", () => resolve(false));
      },
    );
    request.on("error", () => resolve(false));
    request.on("timeout", () => request.destroy());
  });
}

export interface EtcdOptions {
  readonly members?: number;
  /** Serve clients over TLS with this certificate, and ask them for one signed by `ca`. */
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca: string };
}

export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdCluster> {
  const { members = 3, tls } = options;
  const scheme = tls ? "https" : "http";
  // tmpfs when there is one: fsync on a loaded disk slows every test without testing more.
  const base = mkdtempSync(join(process.platform === "linux" ? "/dev/shm" : tmpdir(), "etcd-"));
  const ports = await freePorts(members * 2);
  const names = Array.from({ length: members }, (_, i) => `m${i}`);
  const client = (i: number) => `${scheme}://127.0.0.1:${ports[2 * i]}`;
  const peer = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initial = names.map((name, i) => `${name}=${peer(i)}`).join(",");
  const children: (ChildProcess | undefined)[] = [];
  const logs: string[] = names.map(() => "");

  const launch = (i: number, state: "new" | "existing") => {
    const child = spawn(
      "etcd",
      [
        ...["--name", names[i] as string, "--data-dir", join(base, names[i] as string)],
        ...["--listen-client-urls", client(i), "--advertise-client-urls", client(i)],
        ...["--listen-peer-urls", peer(i), "--initial-advertise-peer-urls", peer(i)],
        ...["--initial-cluster", initial, "--initial-cluster-state", state],
        ...["--initial-cluster-token", "electd-test", "--logger", "zap", "--log-level", "error"],
        ...["--heartbeat-interval", "100", "--election-timeout", "1000"],
        ...(tls
          ? ["--cert-file", tls.cert, "--key-file", tls.key, "--trusted-ca-file", tls.ca]
          : []),
        ...(tls ? ["--client-cert-auth"] : []),
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    child.stderr?.on("data", (chunk: Buffer) => {
      logs[i] = (logs[i] + chunk.toString()).slice(-4000);
    });
    children[i] = child;
  };

  const waitHealthy = async () => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const live = names.map((_, i) => i).filter((i) => children[i]?.exitCode === null);
      const answers = await Promise.all(live.map((i) => healthy(client(i), tls)));
      if (answers.length > 0 && answers.every(Boolean)) return;
      if (Date.now() > deadline) {
        throw new Error(`etcd did not become healthy within 60 s:\n${logs.join("\n")}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };

  for (let i = 0; i < members; i++) launch(i, "new");
  let stopped = false;
  const cluster: EtcdCluster = {
    endpoints: names.map((_, i) => client(i)),
    pids: () => children.flatMap((c) => (c?.pid && c.exitCode === null ? [c.pid] : [])),
    async kill(i) {
      const child = children[i];
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
    async restart(i) {
      launch(i, "existing");
      await waitHealthy();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(names.map((_, i) => cluster.kill(i)));
      rmSync(base, { recursive: true, force: true });
    },
  };
  await waitHealthy();
  return cluster;
}
