// `electd enter|withdraw|anoint|promote|demote|evict NAME CANDIDATE`: one LeaderElection
// call for an operator, printing the election's resulting state as a JSON line.
import type { Term } from "../gen/atomix/runtime/election/v1/election_pb.js";
import {
  describeError,
  electionClient,
  onServers,
  parse,
  serverHelp,
  serverOption,
  serverUrls,
  termLine,
} from "./command.js";

export const operations = {
  enter: "add CANDIDATE to the queue, or make it leader if there is none",
  withdraw: "remove CANDIDATE (as if it left); the next in the queue leads if it led",
  anoint: "make CANDIDATE leader now; the old leader heads the queue",
  promote: "move CANDIDATE one place forward; from the head of the queue it leads",
  demote: "move CANDIDATE one place back; a leader hands over to the head of the queue",
  evict: "remove CANDIDATE (an operator's removal); the next in the queue leads if it led",
} as const;

export type Operation = keyof typeof operations;

export function usage(operation: Operation): string {
  return [
    `usage: electd ${operation} NAME CANDIDATE [--server URL]`,
    "",
    `${operations[operation]}; prints the election's state as a JSON line:`,
    '{"term":"5","leader":"node-3","candidates":["node-1"]}',
    "",
    serverHelp,
    "                 (repeat it for several: each is tried in turn while unreachable)",
    "  --help         print this and exit",
  ].join("\n");
}

export async function main(operation: Operation, argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, serverOption, { min: 2, max: 2 });
  if (parsed === "help") {
    process.stdout.write(`${usage(operation)}\n`);
    return 0;
  }
  const [name, candidate] = parsed.positionals as [string, string];
  const urls = serverUrls(parsed.values);
  try {
    const { term } = await onServers(urls, (url): Promise<{ term?: Term | undefined }> => {
      const client = electionClient(url);
      const request = { id: { name }, candidate };
      switch (operation) {
        case "enter":
          return client.enter(request);
        case "withdraw":
          return client.withdraw(request);
        case "anoint":
          return client.anoint(request);
        case "promote":
          return client.promote(request);
        case "demote":
          return client.demote(request);
        case "evict":
          return client.evict(request);
      }
    });
    process.stdout.write(`${termLine(term)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`electd ${operation}: ${describeError(error)}\n`);
    return 1;
  }
}
