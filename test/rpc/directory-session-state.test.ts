// GetElectionSessions names each candidate's session state: active while it is kept
// alive; expiring or closing once it ended while its release cannot commit (the store's
// data file locked by another process) and is being retried; until the release commits and
// the candidate is gone. The server runs in its own process; the fault is real: another
// process holds SQLite's write lock.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { SessionService, SessionState } from "../../gen/electd/v1/session_pb.js";
import { lockDataFile as holdWriteLock } from "../support/lock.js";
import { spawnServer } from "../support/process.js";
import { rejects } from "../support/rejects.js";
import { tempDir } from "../support/tempdir.js";

const dataDir = tempDir("session-state");
const server = await spawnServer([
  "--store",
  "durable",
  "--data-dir",
  dataDir,
  "--session-ttl-min",
  "500ms",
]);
after(() => {
  server.child.kill("SIGKILL");
});
const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
const elections = createClient(LeaderElection, transport);
const sessions = createClient(SessionService, transport);
const directory = createClient(ElectionDirectoryService, transport);

/** Another process's write lock on the data file, as the sqlite3 shell would hold it. */
const lockDataFile = () => holdWriteLock(dataDir);

/** Each session-bound candidate of `name` with its session's state. */
async function statesOf(name: string): Promise<[string, SessionState][]> {
  const { candidates } = await directory.getElectionSessions({ name });
  return candidates.map((c) => [c.candidate, c.state]);
}

async function eventually<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An election led by "a", entered with a session of `ttlMs`, with "b" queued without one. */
async function campaign(name: string, ttlMs: number) {
  const { sessionId } = await sessions.openSession({ ttl: durationFromMs(ttlMs) });
  await elections.create({ id: { name } });
  await elections.enter(
    { id: { name }, candidate: "a" },
    { headers: { "electd-session": sessionId } },
  );
  await elections.enter({ id: { name }, candidate: "b" });
  return sessionId;
}

describe("GetElectionSessions session states", () => {
  it("shows a session kept alive as active", async () => {
    await campaign("alive", 60_000);
    assert.deepEqual(await statesOf("alive"), [["a", SessionState.ACTIVE]]);
  });

  it("shows a session that expired as expiring while its release is retried, then no more", async () => {
    await campaign("expired", 500);
    const unlock = lockDataFile();
    try {
      await eventually(
        "expiring",
        () => statesOf("expired"),
        (s) => s[0]?.[1] === SessionState.EXPIRING,
      );
      assert.deepEqual(await statesOf("expired"), [["a", SessionState.EXPIRING]]);
    } finally {
      unlock();
    }
    await eventually(
      "released",
      () => statesOf("expired"),
      (s) => s.length === 0,
    );
  });

  it("shows a session closed while the store cannot commit as closing, then no more", async () => {
    const sessionId = await campaign("closed", 60_000);
    const unlock = lockDataFile();
    try {
      await rejects(sessions.closeSession({ sessionId }), Code.Unavailable, /could not be saved/);
      assert.deepEqual(await statesOf("closed"), [["a", SessionState.CLOSING]]);
    } finally {
      unlock();
    }
    await sessions.closeSession({ sessionId });
    assert.deepEqual(await statesOf("closed"), []);
  });
});
