// What the benchmarks share: electd started as its own process (so the benchmark's clients
// do not share its event loop), its resident memory, and raw gRPC streams over HTTP/2
// opened and left unread, as a client that stopped reading leaves them.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { ClientHttp2Session } from "node:http2";
import { fileURLToPath } from "node:url";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";

export interface ElectdProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGTERM, resolved once the process is gone. */
  stop(): Promise<void>;
}

/**
 * Starts `server/main.ts` with `args` (and node's own `nodeArgs`, such as --cpu-prof) and
 * resolves once it listens. Whatever ends the benchmark ends the server too.
 */
export function spawnElectd(
  args: readonly string[],
  nodeArgs: readonly string[] = [],
): Promise<ElectdProcess> {
  const main = fileURLToPath(new URL("../server/main.ts", import.meta.url));
  return spawnListening([...nodeArgs, "--import", "tsx", main, ...args]);
}

/**
 * Runs node with `args` and resolves once the process prints `listening on URL` (electd,
 * built or not, and the benchmarks' bare servers all do). Whatever ends the benchmark ends
 * the process too.
 */
export async function spawnListening(args: readonly string[]): Promise<ElectdProcess> {
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const url = await new Promise<string>((resolve, reject) => {
    let output = "";
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const found = /listening on (\S+)/.exec(output)?.[1];
      if (found) {
        // Still drained: the server writes its shutdown line to stdout.
        child.stdout?.off("data", onData);
        child.stdout?.resume();
        resolve(found);
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`exited (${code}) before listening: ${output}`)));
  });
  return {
    url,
    child,
    async stop() {
      process.off("exit", kill);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** CPU time (user + system) the processes used so far, in milliseconds, from /proc (Linux). */
export function cpuMs(pids: readonly (number | undefined)[]): number {
  let ticks = 0;
  for (const pid of pids) {
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  // USER_HZ is 100 on Linux.
  return ticks * 10;
}

/** The process's resident memory, from /proc (Linux). */
export function rssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

/** One uncompressed gRPC message: flags byte, 4-byte length, the message. */
export function grpcFrame<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  const body = toBinary(schema, create(schema, init));
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.set(body, 5);
  return frame;
}

/**
 * Opens `count` gRPC streams of `path` on `session`, sends `frame` on each and pauses them.
 * Resolves once each got its response headers, or was given up.
 */
export function pausedStreams(
  session: ClientHttp2Session,
  path: string,
  frame: Buffer,
  count: number,
): Promise<void> {
  const opened = Array.from({ length: count }, () => {
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.end(frame);
    stream.pause();
    // A stream the client itself gives up on (its session's memory is full) ends too.
    return new Promise<void>((resolve) => {
      stream.once("response", () => resolve());
      stream.once("close", () => resolve());
    });
  });
  return Promise.all(opened).then(() => undefined);
}
