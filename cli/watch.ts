// `electd watch NAME`: follows an election through the Watch rpc and prints one JSON line
// per state, for scripts and jq. When the server cannot be reached it opens the watch again
// (on the next --server, with backoff) and prints only states it has not printed.
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  describeError,
  electionClient,
  parse,
  serverHelp,
  serverOption,
  serverUrls,
  termLine,
} from "./command.js";

export const usage = [
  "usage: electd watch NAME [--server URL ...]",
  "",
  "Prints the election's state, then every change, one JSON line each:",
  '{"term":"5","leader":"node-3","candidates":["node-1"]}',
  "Runs until interrupted; exits 1 if the election does not exist or is deleted.",
  "",
  serverHelp,
  "                 (repeat it for several: the watch moves to the next when one fails)",
  "  --help         print this and exit",
].join("\n");

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, serverOption, { min: 1, max: 1 });
  if (parsed === "help") {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const [name] = parsed.positionals as [string];
  const clients = serverUrls(parsed.values).map(electionClient);
  // A reader that went away (`electd watch x | head -1`) ends the watch quietly.
  process.stdout.on("error", () => process.exit(0));
  let last = "";
  let server = 0;
  for (let pause = RETRY_FIRST_MS; ; pause = Math.min(pause * 2, RETRY_MAX_MS)) {
    try {
      const client = clients[server] as (typeof clients)[number];
      for await (const { term } of client.watch({ id: { name } })) {
        pause = RETRY_FIRST_MS;
        const line = termLine(term);
        if (line !== last) process.stdout.write(`${line}\n`);
        last = line;
      }
      throw new ConnectError("the server ended the watch", Code.Unavailable);
    } catch (error) {
      const code = ConnectError.from(error).code;
      if (code !== Code.Unavailable && code !== Code.DeadlineExceeded) {
        process.stderr.write(`electd watch: ${describeError(error)}\n`);
        return 1;
      }
      process.stderr.write(`electd watch: ${describeError(error)}; watching again\n`);
      server = (server + 1) % clients.length;
      await sleep(pause);
    }
  }
}
