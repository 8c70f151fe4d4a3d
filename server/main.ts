// `electd serve`: read the configuration, start serving, stop cleanly on SIGTERM/SIGINT.
// Run directly (`node --import tsx server/main.ts [flags]`) it serves as well.
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { AuthFileError } from "./auth/credentials.js";
import { ConfigError, loadConfig, usage } from "./config.js";
import { start } from "./electd.js";
import { StoreStartError } from "./store/store.js";

export async function serve(argv: readonly string[]): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(argv, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`electd: ${error.message}\n`);
    process.exit(2);
  }
  if (config === "help") {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  let electd: Awaited<ReturnType<typeof start>>;
  try {
    electd = await start(config);
  } catch (error) {
    if (!(error instanceof StoreStartError || error instanceof AuthFileError)) throw error;
    process.stderr.write(`electd: ${error.message}\n`);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    process.stdout.write(`electd: ${signal} received, shutting down\n`);
    electd.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`electd: shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  // The auth file is read again; connections stay. A bad file is reported and ignored.
  process.on("SIGHUP", () => {
    try {
      electd.reloadAuth();
      process.stdout.write("electd: SIGHUP received, auth file read again\n");
    } catch (error) {
      if (!(error instanceof AuthFileError)) throw error;
      process.stderr.write(`electd: SIGHUP: ${error.message}; the auth file in force stays\n`);
    }
  });
  // Printed last: whoever waits for this line may signal the process right away.
  process.stdout.write(`electd listening on ${electd.url}\n`);
}

/** Whether this module is the process's entry point (Node 20 has no import.meta.main). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  return script !== undefined && realpathSync(script) === fileURLToPath(import.meta.url);
}

function crashed(error: unknown): never {
  process.stderr.write(
    `electd: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
}

if (isEntryPoint()) serve(process.argv.slice(2)).catch(crashed);
