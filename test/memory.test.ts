// The heap the limits admit: the defaults' worst case fits half of a 2 GiB heap (the rest
// is the transport's), and a server whose limits do not fit its heap says so at startup,
// naming the settings to lower, and serves all the same.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../server/config.js";
import { heapBudget, heapCosts, nameBytes, worstCase } from "../server/memory.js";
import { type ServerProcess, spawnServer } from "./support/process.js";
import { tempDir } from "./support/tempdir.js";

const MiB = 2 ** 20;

function limitsOf(argv: string[]) {
  const config = loadConfig(argv, {});
  assert.ok(config !== "help");
  return { ...config.limits, maxSessions: config.sessions.maxSessions };
}

/** Waits until the server has printed a line matching `pattern`. */
async function printed(server: ServerProcess, pattern: RegExp): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const line = server
      .output()
      .split("\n")
      .find((l) => pattern.test(l));
    if (line !== undefined) return line;
    if (Date.now() > deadline) throw new Error(`nothing matched ${pattern}:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function stop(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  assert.equal(await server.exited, 0);
}

describe("heap budget", () => {
  it("keeps the defaults' worst case within half of a 2 GiB heap", () => {
    const worst = worstCase(limitsOf([]));
    assert.ok(worst.total <= 1024 * MiB, `${(worst.total / MiB).toFixed(0)} MiB`);
  });

  it("counts each unit the limits admit at its cost, names included", () => {
    const limits = limitsOf([
      "--max-elections",
      "10",
      "--max-tags",
      "2",
      "--max-name-bytes",
      "100",
      "--max-candidates",
      "5",
      "--max-candidates-total",
      "20",
      "--max-sessions",
      "3",
      "--max-watches",
      "4",
      "--watch-buffer",
      "6",
      "--watch-elections-buffer",
      "7",
    ]);
    const name = nameBytes(100);
    assert.equal(name, 16 + 200, "99 characters of two bytes each");
    assert.equal(nameBytes(1), 16 + 8);
    const bytes = Object.fromEntries(worstCase(limits).parts.map((p) => [p.what, p.bytes]));
    const c = heapCosts;
    assert.deepEqual(bytes, {
      elections: 10 * (c.election + name),
      tags: 10 * 2 * (c.tag + name),
      candidates: 20 * (c.candidate + name),
      sessions: 3 * c.session,
      watches: 4 * (c.watch + (6 + 1) * (c.version + 5 * c.versionSlot)),
      history: 0,
      summaries: 2 * 32 * MiB,
    });
    const inHeap = Object.fromEntries(
      worstCase({ ...limits, historyInHeap: 8 }).parts.map((p) => [p.what, p.bytes]),
    );
    assert.equal(inHeap.history, 10 * 8 * c.historyRecord, "the memory store's history");
  });

  it("warns at startup when the limits do not fit the heap, naming the settings, and serves", async () => {
    // The memory store keeps history in the heap: one record per election, so that the
    // watches are what costs most.
    const server = await spawnServer(["--max-watches", "100000", "--history-per-election", "1"], {
      NODE_OPTIONS: "--max-old-space-size=256",
    });
    try {
      const line = await printed(server, /heap at worst/);
      const { level, msg } = JSON.parse(line) as { level: number; msg: string };
      assert.equal(level, 40, "a warning");
      assert.match(msg, /of this process's heap limit of/);
      // Dearest first: 100,000 watches cost the most.
      assert.match(
        msg,
        /Lower MAX_WATCHES or WATCH_BUFFER or MAX_CANDIDATES \(watches: [\d.]+ MiB\); MAX_TAGS/,
      );
      for (const setting of ["MAX_CANDIDATES_TOTAL", "MAX_SESSIONS", "MAX_ELECTIONS"]) {
        assert.ok(msg.includes(setting), setting);
      }
      assert.match(msg, /NODE_OPTIONS=--max-old-space-size=/);
      const health = await fetch(`${server.url}/healthz`);
      assert.equal(health.status, 200);
    } finally {
      await stop(server);
    }
  });

  it("logs the worst case of the defaults as information on a 2 GiB heap", async () => {
    // The default store: the memory store also keeps every election's history in the heap.
    const server = await spawnServer(
      ["--log-level", "info", "--store", "durable", "--data-dir", tempDir("budget")],
      { NODE_OPTIONS: "--max-old-space-size=2048" },
    );
    try {
      const line = await printed(server, /heap at worst/);
      const { level, msg, worstCaseBytes } = JSON.parse(line) as {
        level: number;
        msg: string;
        worstCaseBytes: number;
      };
      assert.equal(level, 30);
      assert.equal(worstCaseBytes, worstCase(limitsOf([])).total);
      assert.match(msg, /^the configured limits admit [\d.]+ MiB of heap at worst, \d+% of/);
    } finally {
      await stop(server);
    }
  });

  it("gives the same verdict as the startup log for a given heap limit", () => {
    const limits = limitsOf([]);
    const total = worstCase(limits).total;
    assert.equal(heapBudget(limits, total).fits, true);
    assert.equal(heapBudget(limits, total - 1).fits, false);
  });
});
