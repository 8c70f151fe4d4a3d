// A session that ends while the store cannot commit (its data file locked by another
// process) still withdraws its candidates once the store can: the release is retried
// until it commits. Meanwhile GetSession reports the session as expiring or closing,
// CloseSession answers unavailable, and a retried CloseSession succeeds. The server runs
// in its own process; the fault is real: another process holds SQLite's write lock.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService, SessionState } from "../../gen/electd/v1/session_pb.js";
import { lockDataFile as holdWriteLock } from "../support/lock.js";
import { spawnServer } from "../support/process.js";
import { rejects } from "../support/rejects.js";
import { tempDir } from "../support/tempdir.js";

const dataDir = tempDir("release-retry");
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

/** Another process's write lock on the data file, as the sqlite3 shell would hold it. */
const lockDataFile = () => holdWriteLock(dataDir);

async function eventually<T>(what: string, read: () => Promise<T>, ok: (v: T) => boolean) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function campaign(name: string) {
  const { sessionId } = await sessions.openSession({ ttl: durationFromMs(500) });
  await elections.create({ id: { name } });
  await elections.enter(
    { id: { name }, candidate: "a" },
    { headers: { "electd-session": sessionId } },
  );
  await elections.enter({ id: { name }, candidate: "b" });
  return sessionId;
}

const leaderOf = async (name: string) => (await elections.getTerm({ id: { name } })).term?.leader;
const stateOf = async (sessionId: string) => {
  try {
    return (await sessions.getSession({ sessionId })).state;
  } catch {
    return "gone";
  }
};

describe("releasing an ended session when the store cannot commit", () => {
  it("withdraws an expired session's leader once the lock is gone, reporting it expiring meanwhile", async () => {
    const sessionId = await campaign("expired");
    const unlock = lockDataFile();
    try {
      await eventually(
        "session expiring",
        () => stateOf(sessionId),
        (s) => s === SessionState.EXPIRING,
      );
      assert.equal(await leaderOf("expired"), "a");
      await rejects(sessions.keepAlive({ sessionId }), Code.NotFound, /not found/);
    } finally {
      unlock();
    }
    await eventually(
      "b leads",
      () => leaderOf("expired"),
      (l) => l === "b",
    );
    await eventually(
      "session gone",
      () => stateOf(sessionId),
      (s) => s === "gone",
    );
    await sessions.closeSession({ sessionId });
  });

  it("answers a CloseSession that cannot commit with unavailable, and a retried one with success", async () => {
    const sessionId = await campaign("closed");
    const unlock = lockDataFile();
    try {
      await rejects(sessions.closeSession({ sessionId }), Code.Unavailable, /could not be saved/);
      assert.equal(await stateOf(sessionId), SessionState.CLOSING);
      assert.equal(await leaderOf("closed"), "a");
    } finally {
      unlock();
    }
    await sessions.closeSession({ sessionId });
    assert.equal(await leaderOf("closed"), "b");
    assert.equal(await stateOf(sessionId), "gone");
  });
});
