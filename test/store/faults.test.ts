// The durable store when the disk or another process gets in its way, against the real
// server process: a write that cannot be saved answers `unavailable` with the cause and
// never the server's paths, the log names the file and SQLite's code, the server keeps
// serving, and writes are saved again once the fault is gone.
import assert from "node:assert/strict";
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { DATA_FILE } from "../../server/store/durable.js";
import { mount, umount } from "../support/mount.js";
import { type ServerProcess, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

function startDurable(dataDir: string, ...flags: string[]): Promise<ServerProcess> {
  return spawnServer(["--port", "0", "--store", "durable", "--data-dir", dataDir, ...flags]);
}

function clientOf(server: ServerProcess) {
  return createClient(
    LeaderElection,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
}

async function stop(server: ServerProcess | undefined): Promise<void> {
  if (!server) return;
  server.child.kill("SIGTERM");
  assert.equal(await server.exited, 0, server.output());
}

/** Writes to `path` until the file system has no room left. */
function fill(path: string): void {
  const fd = openSync(path, "w");
  try {
    for (const size of [1 << 16, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 0xee);
      for (;;) {
        try {
          writeSync(fd, chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw error;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Waits until the server's output has a line containing `text` (10 s at most). */
async function logged(server: ServerProcess, text: string): Promise<void> {
  for (let waited = 0; !server.output().includes(text); waited += 20) {
    if (waited > 10_000) assert.fail(`no log line has ${text}: ${server.output()}`);
    await setTimeout(20);
  }
}

describe("durable store under faults", () => {
  it("keeps serving while another process holds the data file's write lock", async () => {
    const dataDir = tempDir("locked");
    const server = await startDurable(dataDir);
    try {
      const client = clientOf(server);
      const id = { name: "e" };
      await client.create({ id });
      // A sqlite3 shell in the middle of a transaction, as an operator might leave one.
      const outside = new Database(join(dataDir, DATA_FILE));
      outside.exec("BEGIN IMMEDIATE");
      let slowest = 0;
      const refusals: ConnectError[] = [];
      try {
        const until = Date.now() + 1500;
        const health = async () => {
          while (Date.now() < until) {
            const started = performance.now();
            const res = await fetch(`${server.url}/healthz`);
            assert.equal(res.status, 200);
            await res.json();
            slowest = Math.max(slowest, performance.now() - started);
            await setTimeout(20);
          }
        };
        const writer = async (w: number) => {
          for (let i = 0; Date.now() < until; i++) {
            await client.enter({ id, candidate: `w${w}-${i}` }).then(
              () => assert.fail("a write was acknowledged while the file was locked"),
              (error: unknown) => refusals.push(ConnectError.from(error)),
            );
          }
        };
        await Promise.all([health(), writer(0), writer(1), writer(2), writer(3)]);
      } finally {
        outside.exec("ROLLBACK");
        outside.close();
      }
      // Each commit waits for the lock only briefly (50 ms by default), so the event loop
      // keeps turning: a generous bound for a loaded machine, far below a frozen loop.
      assert.ok(slowest < 1000, `/healthz took ${Math.round(slowest)} ms`);
      assert.ok(refusals.length >= 4);
      for (const error of refusals) {
        assert.equal(error.code, Code.Unavailable);
        assert.equal(
          error.rawMessage,
          "the change could not be saved: the data file is locked by another process; retry",
        );
      }
      const { term } = await client.enter({ id, candidate: "after" });
      assert.deepEqual(term?.candidates, []);
      assert.equal(term?.leader, "after");
      await logged(server, `to ${join(dataDir, DATA_FILE)}: SQLITE_BUSY`);
    } finally {
      await stop(server);
    }
  });

  it("answers unavailable while the disk is full, and saves again once there is room", async () => {
    const dataDir = join(tempDir("full"), "tmpfs");
    mkdirSync(dataDir);
    mount(["-t", "tmpfs", "-o", "size=1m", "tmpfs", dataDir]);
    let server: ServerProcess | undefined;
    try {
      server = await startDurable(dataDir);
      const client = clientOf(server);
      const id = { name: "e" };
      await client.create({ id });
      await client.enter({ id, candidate: "a" });
      fill(join(dataDir, "filler"));
      // A commit may still fit in room the log already has; the next ones cannot.
      let refused: { candidate: string; error: ConnectError } | undefined;
      for (let i = 0; i < 100 && !refused; i++) {
        const candidate = `c${i}-${"x".repeat(200)}`;
        await client.enter({ id, candidate }).catch((error: unknown) => {
          refused = { candidate, error: ConnectError.from(error) };
        });
      }
      assert.ok(refused, "every write was saved on a full disk");
      assert.equal(refused.error.code, Code.Unavailable);
      assert.equal(refused.error.rawMessage, "the change could not be saved: the disk is full");
      // The log says where, and what SQLite said (the line may reach this process after
      // the answer does: both come from the server, on different pipes).
      const file = join(dataDir, DATA_FILE);
      await logged(server, `to ${file}: SQLITE_FULL`);
      const { term } = await client.getTerm({ id });
      assert.ok(!term?.candidates.includes(refused.candidate), "an unsaved change is shown");

      rmSync(join(dataDir, "filler"));
      const saved = await client.enter({ id, candidate: refused.candidate });
      assert.ok(saved.term?.candidates.includes(refused.candidate));
    } finally {
      await stop(server);
      umount(dataDir);
    }
  });
});
