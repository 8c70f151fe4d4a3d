#!/usr/bin/env node
// The electd command. `electd serve` runs the server; the other subcommands are clients of
// a running server. Each subcommand's module is loaded only when it runs (the bundle in
// dist/ keeps each in its own chunk), so a client command does not load the server.
import module from "node:module";
import { UsageError } from "./command.js";

// Built, this is a bundle (dist/): its source maps name the TypeScript files in stack traces.
// (On Node 20 the server itself runs with its compiled code kept, and its traces name
// dist/serve.cjs unless --enable-source-maps is given: see serve-cached.ts.)
process.setSourceMapsEnabled(true);

// Node 22.1 and later keep the code they compile on disk (in the system's temporary
// directory unless NODE_COMPILE_CACHE says where), so a second start skips compiling the
// bundle. Node 20 has no such cache; asked for by feature, not by version. Before any
// subcommand's chunk is imported: only what is loaded after this is cached.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const operations = ["enter", "withdraw", "anoint", "promote", "demote", "evict"] as const;

const summary = [
  "usage: electd COMMAND [ARGS] (electd COMMAND --help for each)",
  "",
  "  serve                     run the server (electd serve --help lists every setting)",
  "  run --election NAME -- CMD run CMD while this process leads NAME",
  "  watch NAME                print the election's state, then every change, as JSON lines",
  "  status [NAME]             a table of elections, or one election in detail",
  "  enter|withdraw|anoint|promote|demote|evict NAME CANDIDATE",
  "                            change an election as an operator; prints the new state",
  "",
  "Client commands take --server URL (default http://127.0.0.1:8080).",
].join("\n");

async function main(argv: readonly string[]): Promise<number | undefined> {
  const [command, ...rest] = argv;
  switch (command) {
    case "serve": {
      const { serve } = await import("./serve.js");
      await serve(rest);
      return undefined; // serving: the process ends on a signal
    }
    case "run":
      return (await import("./run.js")).main(rest);
    case "watch":
      return (await import("./watch.js")).main(rest);
    case "status":
      return (await import("./status.js")).main(rest);
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(`${summary}\n`);
      return 0;
    default: {
      const operation = operations.find((o) => o === command);
      if (operation) return (await import("./operate.js")).main(operation, rest);
      process.stderr.write(
        `${command === undefined ? "missing a command" : `unknown command "${command}"`}\n\n${summary}\n`,
      );
      return 2;
    }
  }
}

const usages: Record<string, () => Promise<string>> = {
  run: async () => (await import("./run.js")).usage,
  watch: async () => (await import("./watch.js")).usage,
  status: async () => (await import("./status.js")).usage,
};

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exit(code);
  },
  async (error: unknown) => {
    if (error instanceof UsageError) {
      const command = process.argv[2] ?? "";
      const usage = Object.hasOwn(usages, command)
        ? await (usages[command] as () => Promise<string>)()
        : (await import("./operate.js")).usage(command as (typeof operations)[number]);
      process.stderr.write(`electd ${command}: ${error.message}\n\n${usage}\n`);
      process.exit(2);
    }
    process.stderr.write(
      `electd: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
