// `electd status [NAME]`: a table of every election (ListElections, page by page), or one
// election with its queue, tags and the sessions its candidates are bound to.
import { durationMs } from "@bufbuild/protobuf/wkt";
import {
  describeError,
  directoryClient,
  onServers,
  parse,
  serverHelp,
  serverOption,
  serverUrls,
} from "./command.js";

export const usage = [
  "usage: electd status [NAME] [--server URL ...]",
  "",
  "Without NAME: one line per election (name, term, leader, queue length, tags).",
  "With NAME: the election's term, leader, queue in order, tags and sessions.",
  "",
  serverHelp,
  "                 (repeat it for several: each is tried in turn while unreachable)",
  "  --help         print this and exit",
].join("\n");

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, serverOption, { min: 0, max: 1 });
  if (parsed === "help") {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const [name] = parsed.positionals;
  const urls = serverUrls(parsed.values);
  try {
    const text = await onServers(urls, (url) => (name === undefined ? table(url) : one(url, name)));
    process.stdout.write(text);
    return 0;
  } catch (error) {
    process.stderr.write(`electd status: ${describeError(error)}\n`);
    return 1;
  }
}

async function table(url: string): Promise<string> {
  const directory = directoryClient(url);
  const rows: string[][] = [["ELECTION", "TERM", "LEADER", "QUEUE", "TAGS"]];
  let pageToken = "";
  do {
    const page = await directory.listElections({ pageSize: 1000, pageToken });
    for (const e of page.elections) {
      const term = e.term;
      rows.push([
        e.name,
        String(term?.term ?? 0n),
        term?.leader || "-",
        String(term?.candidates.length ?? 0),
        e.tags.join(",") || "-",
      ]);
    }
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  if (rows.length === 1) return "no elections\n";
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map(
      (r) =>
        `${r.map((cell, i) => (i < r.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell)).join("  ")}\n`,
    )
    .join("");
}

async function one(url: string, name: string): Promise<string> {
  const directory = directoryClient(url);
  // The index is sorted by name, so an election named exactly `name` comes first.
  const { elections } = await directory.listElections({ namePrefix: name, pageSize: 1 });
  const election = elections[0];
  const { candidates } = await directory.getElectionSessions({ name });
  if (election === undefined || election.name !== name) {
    return `election ${name} not found\n`;
  }
  const sessions = new Map(candidates.map((c) => [c.candidate, c]));
  const who = (candidate: string) => {
    const s = sessions.get(candidate);
    if (!s) return candidate;
    const left = s.remaining ? durationMs(s.remaining) / 1000 : 0;
    const ttl = s.ttl ? durationMs(s.ttl) / 1000 : 0;
    return `${candidate}  (session ${s.sessionFingerprint}, ${left.toFixed(1)}s left of ${ttl}s)`;
  };
  const term = election.term;
  return [
    `election  ${election.name}`,
    `term      ${term?.term ?? 0n}`,
    `leader    ${term?.leader ? who(term.leader) : "-"}`,
    `queue     ${term?.candidates.length ? "" : "-"}`,
    ...(term?.candidates ?? []).map((c, i) => `  ${i + 1}. ${who(c)}`),
    `tags      ${election.tags.join(", ") || "-"}`,
    "",
  ].join("\n");
}
