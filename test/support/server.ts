// Starts a real electd on a free loopback port for a test and stops it afterwards.
import { after } from "node:test";
import { type Config, loadConfig } from "../../server/config.js";
import { type Electd, start } from "../../server/electd.js";

/**
 * The store a test server gets when its flags choose none: the memory store (tests stay
 * fast and never share ./data), or, once `useEtcd()` was called, the etcd cluster given,
 * each server under a prefix of its own, so that the same tests run on both.
 */
let defaultStore = (): string[] => ["--store", "memory"];

export function useEtcd(endpoints: readonly string[]): void {
  let servers = 0;
  defaultStore = () => [
    ...["--store", "etcd", "--etcd-endpoints", endpoints.join(",")],
    ...["--etcd-prefix", `/test-${process.pid}-${++servers}/`],
  ];
}

/** A Config as main.ts would build it from flags, on a free port, with quiet logs. */
export function testConfig(flags: readonly string[] = []): Config {
  const chosen = flags.some((f) => f === "--store" || f.startsWith("--store="));
  const store = chosen ? [] : defaultStore();
  const config = loadConfig(["--port", "0", "--log-level", "warn", ...store, ...flags], {});
  if (config === "help") throw new Error("unexpected --help");
  return config;
}

/** Starts a server with these flags; it is stopped when the calling test file ends. */
export async function startServer(flags: readonly string[] = []): Promise<Electd> {
  const electd = await start(testConfig(flags));
  after(() => electd.stop(500));
  return electd;
}
