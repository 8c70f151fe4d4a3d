// Sessions across a crash of the durable store: a session and the candidates it entered
// come back after kill -9, the session gets one full TTL of grace to be kept alive again,
// and if nobody keeps it alive its candidates are withdrawn by the rules.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { type ServerProcess, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

const dir = tempDir("electd-session-restart-");
const flags = [
  "--port",
  "0",
  "--store",
  "durable",
  "--data-dir",
  dir,
  "--session-ttl-min",
  "100ms",
];
const running: ServerProcess[] = [];
after(async () => {
  for (const server of running) {
    server.child.kill("SIGKILL");
    await server.exited;
  }
});

async function boot() {
  const server = await spawnServer(flags);
  running.push(server);
  const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
  return {
    server,
    elections: createClient(LeaderElection, transport),
    sessions: createClient(SessionService, transport),
  };
}

const seconds = (d: { seconds: bigint; nanos: number } | undefined) =>
  Number(d?.seconds ?? 0n) + (d?.nanos ?? 0) / 1e9;

describe("sessions with the durable store", () => {
  it("restores a session after kill -9 with one full TTL of grace, then expires it", async () => {
    const first = await boot();
    const ttl = 6;
    const { sessionId } = await first.sessions.openSession({
      ttl: { seconds: BigInt(ttl), nanos: 0 },
    });
    const bound = { headers: { "electd-session": sessionId } };
    await first.elections.create({ id: { name: "e" } });
    await first.elections.enter({ id: { name: "e" }, candidate: "leader" }, bound);
    await first.elections.enter({ id: { name: "e" }, candidate: "standby" });
    first.server.child.kill("SIGKILL");
    await first.server.exited;

    // The grace is counted from the restart: however long starting takes, at most that
    // much of one full TTL is gone when the session is first asked about.
    const restarting = Date.now();
    const second = await boot();
    const restored = await second.sessions.getSession({ sessionId });
    const elapsed = (Date.now() - restarting) / 1000;
    const grace = seconds(restored.remaining);
    assert.ok(grace >= ttl - elapsed - 0.05, `grace left: ${grace} s, ${elapsed} s after restart`);
    const term = await second.elections.getTerm({ id: { name: "e" } });
    assert.equal(term.term?.leader, "leader");
    assert.equal(term.term?.term, 1n);

    // Kept alive within the grace, the session survives past the deadline it was restored with.
    const restoredDeadline = Date.now() + grace * 1000;
    while (Date.now() < restoredDeadline + 500) {
      await second.sessions.keepAlive({ sessionId });
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal((await second.elections.getTerm({ id: { name: "e" } })).term?.leader, "leader");

    // No more keep-alives: within TTL + 1 s (and some room for a loaded machine) the
    // standby leads with the next term.
    const deadline = Date.now() + (ttl + 3) * 1000;
    let state = await second.elections.getTerm({ id: { name: "e" } });
    while (state.term?.leader !== "standby" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      state = await second.elections.getTerm({ id: { name: "e" } });
    }
    assert.equal(state.term?.leader, "standby");
    assert.equal(state.term?.term, 2n);
  });
});
