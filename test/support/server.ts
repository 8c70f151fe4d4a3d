// Starts a real electd on a free loopback port for a test and stops it afterwards.
import { after } from "node:test";
import { type Config, loadConfig } from "../../server/config.js";
import { type Electd, start } from "../../server/electd.js";

/**
 * A Config as main.ts would build it from flags, on a free port, quiet logs, and the
 * memory store unless the flags choose one: tests stay fast and never share ./data.
 */
export function testConfig(flags: readonly string[] = []): Config {
  const chosen = flags.some((f) => f === "--store" || f.startsWith("--store="));
  const store = chosen ? [] : ["--store", "memory"];
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
