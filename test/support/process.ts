// Runs the server as its own process, as `npm start` does (`electd serve`, from the sources
// through tsx), and reads its URL; and the electd command's other subcommands.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../..", import.meta.url));

/**
 * The memory store unless the caller chooses one: tests stay fast and never share ./data
 * (a second server on one data directory is refused).
 */
function withStore(args: readonly string[], env: NodeJS.ProcessEnv = {}): readonly string[] {
  const chosen = args.some((a) => a === "--store" || a.startsWith("--store=")) || "STORE" in env;
  return chosen ? args : ["--store", "memory", ...args];
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process printed so far. */
  output(): string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
}

export function spawnServer(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  options: {
    /** The built command to run (dist/electd.js) instead of the sources through tsx. */
    readonly built?: string;
    readonly cwd?: string;
  } = {},
): Promise<ServerProcess> {
  const argv = withStore(args, env);
  const command = options.built ?? ["--import", "tsx", "cli/electd.ts"];
  const child = spawn(process.execPath, [command, "serve", ...argv].flat(), {
    cwd: options.cwd ?? root,
    env: { ...process.env, LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? "unknown")),
  );
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      const match = /electd listening on (\S+)/.exec(text);
      if (match?.[1]) resolve({ child, url: match[1], output: () => text, exited });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    exited.then((code) => reject(new Error(`server exited (${code}) before listening:\n${text}`)));
  });
}

/**
 * Runs `electd serve` to completion (for --help, bad flags and refused data), as another user
 * when `as` says so. A server that starts listening instead is killed, so the caller's
 * assertion fails rather than hangs.
 */
export function runMain(
  args: readonly string[],
  as: { readonly uid?: number; readonly gid?: number } = {},
  options: { readonly built?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const argv = withStore(args);
  // A build (test/support/bundle.ts) runs on plain Node, from its own directory.
  const command = options.built
    ? [options.built, "serve", ...argv]
    : ["--import", "tsx", "cli/electd.ts", "serve", ...argv];
  const child = spawn(process.execPath, command, {
    cwd: options.built ? dirname(options.built) : root,
    stdio: ["ignore", "pipe", "pipe"],
    ...as,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
    if (stdout.includes("electd listening on")) child.kill("SIGKILL");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}

export interface CommandProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code, or 128 + the signal's number as a shell reports it. */
  readonly exited: Promise<number>;
}

/** Starts `electd <args>` (cli/electd.ts through tsx), in its own process group if asked. */
export function spawnCommand(
  args: readonly string[],
  options: { readonly detached?: boolean; readonly env?: NodeJS.ProcessEnv } = {},
): CommandProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "cli/electd.ts", ...args], {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number>((resolve) =>
    child.once("exit", (code, signal) =>
      resolve(code ?? 128 + (signal ? osConstants.signals[signal] : 0)),
    ),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs `electd <args>` to completion. */
export async function runCommand(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const command = spawnCommand(args, { env });
  const code = await command.exited;
  return { code, stdout: command.stdout(), stderr: command.stderr() };
}

/** The processes whose parent is `pid`, with their command lines (from /proc: Linux). */
export function childrenOf(pid: number): { pid: number; command: string }[] {
  const children: { pid: number; command: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // "pid (comm) state ppid ...": the name may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid !== pid) continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ");
      children.push({ pid: Number(entry), command });
    } catch {
      // gone meanwhile
    }
  }
  return children;
}
