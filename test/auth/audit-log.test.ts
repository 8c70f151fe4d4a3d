// The audit trail as an operator reads it: a JSON log line for every committed change (a
// session's expiry included) and every refused call, with who, what, which election and
// the term before and after. The server runs in its own process, with real time.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { bearer, writeAuthFile } from "../support/auth.js";
import { spawnServer } from "../support/process.js";

type Line = Record<string, unknown>;

function lines(output: string): Line[] {
  return output
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Line);
}

describe("audit log", () => {
  it("has a line per change, session expiry included, and per refused call", async () => {
    const { path, tokens } = writeAuthFile([
      { name: "ops", grants: [{ role: "admin" }] },
      { name: "bot", grants: [{ role: "candidate" }] },
    ]);
    const server = await spawnServer(["--auth-file", path], { LOG_LEVEL: "info" });
    try {
      const as = (who: string) =>
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          interceptors: [bearer(tokens.get(who))],
        });
      const ops = createClient(LeaderElection, as("ops"));
      const bot = createClient(LeaderElection, as("bot"));
      const id = { name: "audited" };
      await ops.create({ id });
      await bot.enter({ id, candidate: "a" });
      await bot.anoint({ id, candidate: "a" }).catch(() => undefined);
      const { sessionId } = await createClient(SessionService, as("bot")).openSession({
        ttl: { seconds: 1n },
      });
      await bot.enter({ id, candidate: "s" }, { headers: { "electd-session": sessionId } });
      // No keep-alive: the session expires after its 1 s TTL and "s" is withdrawn.
      const expired = () =>
        lines(server.output()).find(
          (l) => l.audit === "change" && l.operation === "session-expired",
        );
      for (let waited = 0; !expired(); waited += 50) {
        if (waited > 15_000) assert.fail("no session-expired line within 15 s");
        await sleep(50);
      }
      const audit = lines(server.output()).filter((l) => l.audit !== undefined);
      const pick = (l: Line) => [
        l.audit,
        l.identity,
        l.operation,
        l.election,
        l.candidates,
        l.termBefore,
        l.termAfter,
      ];
      assert.deepEqual(audit.map(pick), [
        ["change", "ops", "create", "audited", [], "0", "0"],
        ["change", "bot", "enter", "audited", ["a"], "0", "1"],
        ["refused", "bot", "Anoint", "audited", undefined, undefined, undefined],
        ["change", "bot", "enter", "audited", ["s"], "1", "1"],
        // Made by the server, recorded as the identity that entered the candidate.
        ["change", "bot", "session-expired", "audited", ["s"], "1", "1"],
      ]);
      const refused = audit[2] as Line;
      assert.equal(refused.code, "permission_denied");
      assert.match(String(refused.reason), /needs the admin role/);
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});
