// The electd command against a real server process (started as `electd serve`): --help of
// every subcommand, the operator subcommands, status, watch, and `electd run` with a child
// that records when it starts and stops: a killed leader is replaced, the child of a deposed
// leader is dead within the grace, the child's exit code is passed through, and SIGTERM is
// passed on to the child before the candidate withdraws. Every process is real, so the few
// time bounds are generous; the times measured are printed as diagnostics.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  type CommandProcess,
  runCommand,
  type ServerProcess,
  spawnCommand,
  spawnServer,
} from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

const worker = fileURLToPath(new URL("./fixtures/worker.mjs", import.meta.url));

let server: ServerProcess;
let elections: ReturnType<typeof createClient<typeof LeaderElection>>;
before(async () => {
  server = await spawnServer(["--port", "0", "--session-ttl-min", "100ms"]);
  elections = createClient(
    LeaderElection,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
});
after(async () => {
  server.child.kill("SIGTERM");
  await server.exited;
});

/** Waits (real time) until `test()` holds, polling every 20 ms. */
async function until<T>(test: () => T | undefined | false, what: string, ms = 15_000) {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = test();
    if (value) return value;
    assert.ok(performance.now() < deadline, `${what} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Event {
  readonly what: string;
  readonly pid: number;
  readonly term: string;
  readonly election: string;
  readonly at: number;
}

/** What the worker recorded in `file`. */
function events(file: string): Event[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [what, ...fields] = line.split(" ");
      const f = Object.fromEntries(fields.map((kv) => kv.split("=") as [string, string]));
      return {
        what: what ?? "",
        pid: Number(f.pid),
        term: f.term ?? "",
        election: f.election ?? "",
        at: Number(f.at),
      };
    });
}

/** Whether `pid` runs: it exists and is not a zombie left for an init that does not reap. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function state(name: string) {
  const { term } = await elections.getTerm({ id: { name } });
  return { term: term?.term, leader: term?.leader, candidates: term?.candidates };
}

describe("electd command", () => {
  it("prints usage for --help of the command and of every subcommand", async () => {
    const top = await runCommand(["--help"]);
    assert.equal(top.code, 0);
    const subcommands = [
      "serve",
      "run",
      "watch",
      "status",
      "enter",
      "withdraw",
      "anoint",
      "promote",
      "demote",
      "evict",
    ];
    for (const sub of subcommands) assert.match(top.stdout, new RegExp(`\\b${sub}\\b`));
    const helps = await Promise.all(subcommands.map((sub) => runCommand([sub, "--help"])));
    for (const [i, help] of helps.entries()) {
      const sub = subcommands[i];
      assert.equal(help.code, 0, `electd ${sub} --help`);
      assert.match(help.stdout, new RegExp(`usage: electd ${sub}`), `electd ${sub} --help`);
    }
  });

  it("refuses bad usage with exit code 2 and the subcommand's usage", async () => {
    const cases = [
      [["nope"], /unknown command "nope"/],
      [["enter", "only-a-name"], /missing arguments[\s\S]*usage: electd enter/],
      [["run", "--", "true"], /--election is required[\s\S]*usage: electd run/],
      [["run", "--election", "x"], /missing the command to run/],
      [
        ["run", "--election", "x", "--ttl", "soon", "--", "true"],
        /--ttl: "soon" is not a duration/,
      ],
      [["status", "--server", "localhost:8080"], /--server "localhost:8080" is not a URL/],
      [["watch", "--bogus", "x"], /Unknown option '--bogus'[\s\S]*usage: electd watch/],
    ] as const;
    const results = await Promise.all(cases.map(([args]) => runCommand(args)));
    for (const [i, result] of results.entries()) {
      const [args, message] = cases[i] as (typeof cases)[number];
      assert.equal(result.code, 2, `electd ${args.join(" ")}`);
      assert.match(result.stderr, message);
    }
  });

  it("changes an election with the operator subcommands, printing each new state", async () => {
    const url = ["--server", server.url];
    await elections.create({ id: { name: "ops" }, tags: ["team:ops"] });
    const steps = [
      [["enter", "ops", "n1"], { term: "1", leader: "n1", candidates: [] }],
      [["enter", "ops", "n2"], { term: "1", leader: "n1", candidates: ["n2"] }],
      [["enter", "ops", "n3"], { term: "1", leader: "n1", candidates: ["n2", "n3"] }],
      [["promote", "ops", "n3"], { term: "1", leader: "n1", candidates: ["n3", "n2"] }],
      [["anoint", "ops", "n2"], { term: "2", leader: "n2", candidates: ["n1", "n3"] }],
      [["demote", "ops", "n2"], { term: "3", leader: "n1", candidates: ["n2", "n3"] }],
      [["evict", "ops", "n1"], { term: "4", leader: "n2", candidates: ["n3"] }],
      [["withdraw", "ops", "n2"], { term: "5", leader: "n3", candidates: [] }],
    ] as const;
    for (const [args, expected] of steps) {
      const { code, stdout, stderr } = await runCommand([...args, ...url]);
      assert.equal(code, 0, `electd ${args.join(" ")}: ${stderr}`);
      assert.deepEqual(JSON.parse(stdout), expected, `electd ${args.join(" ")}`);
    }
    const missing = await runCommand(["enter", "no-such-election", "n1", ...url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^electd enter: not_found: election "no-such-election" not found/);
    const invalid = await runCommand(["enter", "ops", "", ...url]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /^electd enter: invalid_argument: candidate must not be empty/);
    assert.deepEqual(await state("ops"), { term: 5n, leader: "n3", candidates: [] });
    // With several servers, an unreachable one is skipped.
    const skipped = await runCommand([
      "enter",
      "ops",
      "n4",
      "--server",
      "http://127.0.0.1:1",
      ...url,
    ]);
    assert.equal(skipped.code, 0, skipped.stderr);
    assert.deepEqual(JSON.parse(skipped.stdout).candidates, ["n4"]);
  });

  it("shows a table of elections and one election with status", async () => {
    await elections.create({ id: { name: "status-a" }, tags: ["tier:1"] });
    await elections.create({ id: { name: "status-b" } });
    await elections.enter({ id: { name: "status-a" }, candidate: "lead" });
    await elections.enter({ id: { name: "status-a" }, candidate: "next" });
    const table = await runCommand(["status", "--server", server.url]);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.trim().split("\n");
    assert.match(lines[0] ?? "", /^ELECTION\s+TERM\s+LEADER\s+QUEUE\s+TAGS$/);
    assert.ok(
      lines.some((l) => /^status-a\s+1\s+lead\s+1\s+tier:1$/.test(l)),
      table.stdout,
    );
    assert.ok(
      lines.some((l) => /^status-b\s+0\s+-\s+0\s+-$/.test(l)),
      table.stdout,
    );
    const one = await runCommand(["status", "status-a", "--server", server.url]);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^election {2}status-a\nterm {6}1\nleader {4}lead\n/);
    assert.match(one.stdout, /\n {2}1\. next\n/);
    assert.match(one.stdout, /\ntags {6}tier:1\n/);
    const missing = await runCommand(["status", "status-none", "--server", server.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not_found/);
  });

  it("prints one JSON line per state with watch", async (t) => {
    await elections.create({ id: { name: "watched" } });
    const watch = spawnCommand(["watch", "watched", "--server", server.url]);
    t.after(() => watch.child.kill("SIGKILL"));
    const lines = () => watch.stdout().split("\n").filter(Boolean);
    await until(() => lines().length >= 1, "the current state");
    await elections.enter({ id: { name: "watched" }, candidate: "w1" });
    await elections.enter({ id: { name: "watched" }, candidate: "w2" });
    await elections.withdraw({ id: { name: "watched" }, candidate: "w1" });
    await until(() => lines().length >= 4, "three changes");
    assert.deepEqual(
      lines().map((l) => JSON.parse(l)),
      [
        { term: "0", leader: "", candidates: [] },
        { term: "1", leader: "w1", candidates: [] },
        { term: "1", leader: "w1", candidates: ["w2"] },
        { term: "2", leader: "w2", candidates: [] },
      ],
    );
    const missing = await runCommand(["watch", "watch-none", "--server", server.url]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not_found/);
  });

  describe("run", () => {
    const dir = tempDir("run");
    const running: CommandProcess[] = [];
    // Each `electd run` leads its own process group: a failed test leaves no child behind.
    after(() => {
      for (const r of running) {
        try {
          process.kill(-(r.child.pid as number), "SIGKILL");
        } catch {}
      }
    });
    const run = (name: string, candidate: string, file: string, flags: string[] = []) => {
      const [runFlags, workerFlags] = [
        flags.filter((f) => !f.startsWith("worker:")),
        flags.filter((f) => f.startsWith("worker:")).map((f) => f.slice("worker:".length)),
      ];
      const command = spawnCommand(
        [
          "run",
          "--election",
          name,
          "--candidate",
          candidate,
          "--server",
          server.url,
          ...runFlags,
          "--",
          process.execPath,
          worker,
          file,
          ...workerFlags.flatMap((f) => f.split(" ")),
        ],
        { detached: true },
      );
      running.push(command);
      return command;
    };

    it("runs the command while it leads, and a killed leader is replaced", async (t) => {
      const [fileA, fileB] = [`${dir}/a.log`, `${dir}/b.log`];
      const a = run("run-failover", "a", fileA, ["--ttl", "1s"]);
      const started = await until(() => events(fileA).find((e) => e.what === "start"), "a's child");
      assert.deepEqual([started.term, started.election], ["1", "run-failover"]);
      const b = run("run-failover", "b", fileB, ["--ttl", "1s"]);
      // b waits in the queue and runs nothing.
      for (;;) {
        const { candidates } = await state("run-failover");
        if (candidates?.includes("b")) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(events(fileB).length, 0);
      // The host of a dies: electd run and its child, at once.
      const killedAt = Date.now();
      process.kill(-(a.child.pid as number), "SIGKILL");
      await a.exited;
      const took = await until(
        () => events(fileB).find((e) => e.what === "start"),
        "b's child after a was killed",
      );
      t.diagnostic(`b's child started ${took.at - killedAt} ms after a was killed (TTL 1 s)`);
      assert.equal(took.term, "2");
      assert.ok(!alive(started.pid));
      b.child.kill("SIGTERM");
      assert.equal(await b.exited, 0);
    });

    it("kills the child of a deposed leader within the grace, and exits with its code", async (t) => {
      const file = `${dir}/deposed.log`;
      const graceMs = 1000;
      const a = run("run-deposed", "a", file, ["--grace", "1s", "worker:--ignore-term"]);
      const started = await until(() => events(file).find((e) => e.what === "start"), "child");
      const evictedAt = performance.now();
      await elections.evict({ id: { name: "run-deposed" }, candidate: "a" });
      await until(() => !alive(started.pid), "the child dead", graceMs + 10_000);
      const took = performance.now() - evictedAt;
      t.diagnostic(`child dead ${took.toFixed(0)} ms after Evict (grace ${graceMs} ms)`);
      assert.ok(
        events(file).some((e) => e.what === "ignored-sigterm"),
        "SIGTERM came first",
      );
      assert.ok(took < graceMs + 3000, `child dead after ${took.toFixed(0)} ms`);
      assert.equal(await a.exited, 128 + 9, "the child's end by SIGKILL, as a shell reports it");
      assert.match(a.stderr(), /no longer leads run-deposed/);
    });

    it("passes the child's exit code through and withdraws at once", async () => {
      const file = `${dir}/exit.log`;
      // A long TTL: the candidate is gone at once because it withdrew, not because it expired.
      const a = run("run-exit", "a", file, ["--ttl", "60s", "worker:--exit 7"]);
      assert.equal(await a.exited, 7);
      const recorded = events(file).map((e) => e.what);
      assert.deepEqual(recorded, ["start", "exit"]);
      assert.deepEqual(await state("run-exit"), { term: 1n, leader: "", candidates: [] });
    });

    it("passes SIGTERM on to the child, then withdraws", async () => {
      const file = `${dir}/sigterm.log`;
      const a = run("run-sigterm", "a", file, ["--ttl", "60s"]);
      await until(() => events(file).find((e) => e.what === "start"), "child");
      await elections.enter({ id: { name: "run-sigterm" }, candidate: "standby" });
      // Stopped while it waits in the queue: it withdraws and exits as a shell reports SIGTERM.
      const queued = run("run-sigterm", "queued", `${dir}/queued.log`, ["--ttl", "60s"]);
      for (;;) {
        const { candidates } = await state("run-sigterm");
        if (candidates?.includes("queued")) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      queued.child.kill("SIGTERM");
      assert.equal(await queued.exited, 128 + 15);
      assert.doesNotMatch(queued.stderr(), /removed/);
      assert.deepEqual((await state("run-sigterm")).candidates, ["standby"]);
      assert.equal(events(`${dir}/queued.log`).length, 0);
      a.child.kill("SIGTERM");
      assert.equal(await a.exited, 0);
      assert.deepEqual(
        events(file).map((e) => e.what),
        ["start", "stop"],
      );
      assert.deepEqual(await state("run-sigterm"), {
        term: 2n,
        leader: "standby",
        candidates: [],
      });
    });
  });
});
