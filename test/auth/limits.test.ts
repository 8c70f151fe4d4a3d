// Per-identity limits: one identity cannot take every session or watch slot; a refusal is
// resource_exhausted naming the per-identity setting, and the others are not affected.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { transportsWith, writeAuthFile } from "../support/auth.js";
import { startServer } from "../support/server.js";

const { path, tokens } = writeAuthFile([
  { name: "greedy", grants: [{ role: "admin" }] },
  { name: "polite", grants: [{ role: "admin" }] },
  { name: "streamer", grants: [{ role: "viewer" }] },
]);
const server = await startServer([
  ...["--auth-file", path, "--max-sessions-per-identity", "2", "--max-watches-per-identity", "2"],
]);
const as = (who: string) =>
  transportsWith(server.url, tokens.get(who))["gRPC over h2c"] as Transport;

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  return promise.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => ConnectError.from(e),
  );
}

describe("per-identity limits", () => {
  it("refuses a third session to one identity, not to another, and frees a closed one's slot", async () => {
    const greedy = createClient(SessionService, as("greedy"));
    const polite = createClient(SessionService, as("polite"));
    const first = await greedy.openSession({});
    await greedy.openSession({});
    const error = await refusal(greedy.openSession({}));
    assert.equal(error.code, Code.ResourceExhausted);
    assert.match(
      error.rawMessage,
      /2 open sessions of identity "greedy" \(MAX_SESSIONS_PER_IDENTITY\)/,
    );
    await polite.openSession({});
    await greedy.closeSession({ sessionId: first.sessionId });
    await greedy.openSession({});
  });

  it("refuses a third watch to one identity, on any kind of watch, and frees a slot when a watch ends", async () => {
    const greedy = createClient(LeaderElection, as("greedy"));
    const directory = createClient(ElectionDirectoryService, as("greedy"));
    await greedy.create({ id: { name: "w" } });
    const one = new AbortController();
    const two = new AbortController();
    const a = greedy.watch({ id: { name: "w" } }, { signal: one.signal })[Symbol.asyncIterator]();
    await a.next();
    const b = directory.watchElections({}, { signal: two.signal })[Symbol.asyncIterator]();
    await b.next();
    const error = await refusal(
      greedy
        .watch({ id: { name: "w" } })
        [Symbol.asyncIterator]()
        .next(),
    );
    assert.equal(error.code, Code.ResourceExhausted);
    assert.match(
      error.rawMessage,
      /2 concurrent watches of identity "greedy" \(MAX_WATCHES_PER_IDENTITY\)/,
    );
    const polite = createClient(LeaderElection, as("polite"));
    const c = polite.watch({ id: { name: "w" } })[Symbol.asyncIterator]();
    assert.equal((await c.next()).value?.term?.term, 0n);
    await c.return?.();
    one.abort();
    await a.next().catch(() => undefined);
    // The slot comes back as the server hears the stream end.
    for (let tries = 0; ; tries++) {
      const again = greedy.watch({ id: { name: "w" } })[Symbol.asyncIterator]();
      const first = await again.next().then(
        () => true,
        () => false,
      );
      await again.return?.();
      if (first) break;
      if (tries > 100) assert.fail("the slot was not given back");
      await sleep(20);
    }
    two.abort();
  });

  it("counts Server-Sent Event streams as watches of their identity", async () => {
    await createClient(LeaderElection, as("polite")).create({ id: { name: "sse" } });
    const headers = { authorization: `Bearer ${tokens.get("streamer")}` };
    const url = `${server.url}/v1/elections/sse/events`;
    const streams = [new AbortController(), new AbortController()];
    for (const stream of streams) {
      const res = await fetch(url, { headers, signal: stream.signal });
      assert.equal(res.status, 200);
    }
    const third = await fetch(url, { headers });
    assert.equal(third.status, 429);
    assert.match(await third.text(), /MAX_WATCHES_PER_IDENTITY/);
    const other = await fetch(url, {
      headers: { authorization: `Bearer ${tokens.get("polite")}` },
      signal: AbortSignal.timeout(60_000),
    });
    assert.equal(other.status, 200);
    await other.body?.cancel();
    for (const stream of streams) stream.abort();
  });
});
