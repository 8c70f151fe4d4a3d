// `electd run --election NAME -- CMD ARGS`: campaigns with a session (client/leadership.ts)
// and runs CMD only while this process leads, for one reign:
// - elected: CMD starts, with ELECTD_TERM (the term: pass it on as a fencing token),
//   ELECTD_ELECTION and ELECTD_CANDIDATE in its environment;
// - leadership lost (deposed, evicted, session lost, every server unreachable until the
//   lease ran out): CMD gets SIGTERM, then SIGKILL after --grace, so it never outlives the
//   lease by more than the grace;
// - CMD exits: the candidate withdraws at once (CloseSession) and `electd run` exits with
//   CMD's exit code (128 + the signal number if a signal ended it);
// - SIGINT or SIGTERM to `electd run`: passed on to CMD (SIGKILL after --grace), then as above.
import { type ChildProcess, spawn } from "node:child_process";
import { constants, hostname } from "node:os";
import { campaign } from "../client/leadership.js";
import { parseDuration } from "../server/config.js";
import {
  describeError,
  parse,
  serverHelp,
  serverUrls,
  transportTo,
  UsageError,
} from "./command.js";

export const usage = [
  "usage: electd run --election NAME [--candidate ID] [--ttl 10s] [--grace 5s]",
  "                  [--server URL ...] -- CMD [ARGS ...]",
  "",
  "Campaigns in election NAME and runs CMD while this process leads, with ELECTD_TERM (the",
  "term, a fencing token), ELECTD_ELECTION and ELECTD_CANDIDATE in its environment. When",
  "leadership is lost CMD gets SIGTERM, and SIGKILL after the grace. When CMD exits the",
  "candidate withdraws and electd run exits with CMD's exit code. SIGINT and SIGTERM are",
  "passed on to CMD.",
  "",
  "  --election NAME  the election (created if missing)",
  "  --candidate ID   this process's candidate name (default: <hostname>-<pid>)",
  "  --ttl DURATION   session TTL: leadership lasts this long without the server (default: 10s)",
  "  --grace DURATION time CMD has to exit after SIGTERM before SIGKILL (default: 5s)",
  serverHelp,
  "                   (repeat it for several: the campaign moves on when one fails,",
  "                   keeping its session)",
  "  --help           print this and exit",
].join("\n");

const options = {
  election: { type: "string" },
  candidate: { type: "string" },
  ttl: { type: "string", default: "10s" },
  grace: { type: "string", default: "5s" },
  server: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

function duration(flag: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) {
    throw new UsageError(`--${flag}: "${text}" is not a duration such as 500ms, 10s, 5m or 1h`);
  }
  return ms;
}

export async function main(argv: readonly string[]): Promise<number> {
  const parsed = parse(argv, options, { min: 0, max: Number.POSITIVE_INFINITY });
  if (parsed === "help") {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  const { values, positionals } = parsed;
  const election = values.election;
  if (!election) throw new UsageError("--election is required");
  const [command, ...args] = positionals;
  if (command === undefined) throw new UsageError("missing the command to run, after --");
  const candidate = values.candidate || `${hostname()}-${process.pid}`;
  const ttlMs = duration("ttl", values.ttl);
  const graceMs = duration("grace", values.grace);
  const transports = serverUrls(values).map(transportTo);
  const say = (text: string) => process.stderr.write(`electd run: ${text}\n`);

  let child: ChildProcess | undefined;
  let killer: ReturnType<typeof setTimeout> | undefined;
  let lastError = "";
  let ending = false;
  let finish: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => {
    finish = (code) => {
      ending = true;
      resolve(code);
    };
  });

  /** Asks CMD to stop with `signal`, and kills it once the grace is over. */
  const stopChild = (signal: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    killer ??= setTimeout(() => {
      say(`${command} still running ${graceMs} ms after ${signal}: SIGKILL`);
      child?.kill("SIGKILL");
    }, graceMs);
  };

  const leadership = campaign({
    transport: transports,
    election,
    candidate,
    ttlMs,
    onElected(term) {
      if (child) return; // one reign per run: a child is running, or ran already
      say(`${candidate} leads ${election} in term ${term}: starting ${command}`);
      child = spawn(command, args, {
        stdio: "inherit",
        env: {
          ...process.env,
          ELECTD_TERM: String(term),
          ELECTD_ELECTION: election,
          ELECTD_CANDIDATE: candidate,
        },
      });
      child.once("error", (error) => {
        say(`cannot run ${command}: ${error.message}`);
        finish(127);
      });
      child.once("exit", (code, signal) => {
        clearTimeout(killer);
        finish(code ?? 128 + (signal ? constants.signals[signal] : 0));
      });
    },
    onDeposed(term) {
      if (!child) return;
      say(`${candidate} no longer leads ${election} (term ${term}): stopping ${command}`);
      stopChild("SIGTERM");
    },
    onError(error) {
      // A server that stays down fails every retry: say so once, not at every attempt.
      const text = describeError(error);
      if (text !== lastError) say(text);
      lastError = text;
    },
  });

  // Withdrawn or evicted before leading: nothing ran, nothing to wait for. Refused (the
  // token is unknown, or its identity may not campaign here): say why and give up; a CMD
  // still running was already told to stop when leadership was lost.
  void leadership.done.then(
    () => {
      if (!child && !ending) {
        say(`${candidate} was removed from ${election} before it led`);
        finish(1);
      }
    },
    (error: unknown) => {
      say(`refused: ${describeError(error)}`);
      if (!child || child.exitCode !== null || child.signalCode !== null) finish(1);
    },
  );
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (child) return stopChild(signal);
      finish(128 + constants.signals[signal]);
    });
  }

  const code = await finished;
  // Withdraw at once (CloseSession): the next candidate need not wait for the TTL.
  await leadership.stop();
  return code;
}
