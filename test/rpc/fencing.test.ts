// Fencing checked by the server (FencingService.CheckLeader) and the conditional operator
// calls (ElectionAdminService Anoint, Promote, Demote, Evict with expected_term), over real
// transports: a stale token is refused with failed_precondition naming the current term and
// leader, a check sent after a failover was acknowledged never passes, and two operators
// acting on the same term cannot both win.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { FencingService } from "../../gen/electd/v1/fencing_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";

const server = await startServer();
const transports = {
  "Connect JSON over HTTP/1.1": createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  "gRPC over h2c": createGrpcTransport({ baseUrl: server.url }),
};

for (const [protocol, transport] of Object.entries(transports)) {
  const election = createClient(LeaderElection, transport);
  const admin = createClient(ElectionAdminService, transport);
  const fencing = createClient(FencingService, transport);
  const sessions = createClient(SessionService, transport);
  let count = 0;
  const fresh = async () => {
    const id = { name: `fenced ${protocol} ${++count}` };
    await election.create({ id });
    return id;
  };

  describe(`CheckLeader (${protocol})`, () => {
    it("passes the leader at its term and refuses any other pair, naming the current one", async () => {
      const id = await fresh();
      await election.enter({ id, candidate: "a" });
      await election.enter({ id, candidate: "b" });
      await fencing.checkLeader({ name: id.name, candidate: "a", term: 1n });
      const current = /at term 1 with leader "a"/;
      await rejects(
        fencing.checkLeader({ name: id.name, candidate: "a", term: 2n }),
        Code.FailedPrecondition,
        current,
      );
      await rejects(
        fencing.checkLeader({ name: id.name, candidate: "b", term: 1n }),
        Code.FailedPrecondition,
        current,
      );
      await election.withdraw({ id, candidate: "a" });
      await rejects(
        fencing.checkLeader({ name: id.name, candidate: "a", term: 1n }),
        Code.FailedPrecondition,
        /at term 2 with leader "b"/,
      );
      await election.withdraw({ id, candidate: "b" });
      await rejects(
        fencing.checkLeader({ name: id.name, candidate: "b", term: 2n }),
        Code.FailedPrecondition,
        /at term 2 with leader none/,
      );
    });

    it("answers not_found and invalid_argument like every other call", async () => {
      await rejects(
        fencing.checkLeader({ name: "never created", candidate: "a", term: 1n }),
        Code.NotFound,
        /not found/,
      );
      const id = await fresh();
      await rejects(
        fencing.checkLeader({ name: id.name, candidate: "", term: 1n }),
        Code.InvalidArgument,
        /^candidate /,
      );
      await rejects(
        fencing.checkLeader({ name: "", candidate: "a", term: 1n }),
        Code.InvalidArgument,
        /^name /,
      );
    });

    it("never passes a check sent after the failover that ended the leadership was acknowledged", async () => {
      const id = await fresh();
      const { sessionId } = await sessions.openSession({ ttl: durationFromMs(60_000) });
      await election.enter({ id, candidate: "a" }, { headers: { "electd-session": sessionId } });
      await election.enter({ id, candidate: "b" });
      let closedAt = Number.POSITIVE_INFINITY;
      const checks: { sentAt: number; ok: boolean }[] = [];
      let stop = false;
      const checker = async () => {
        while (!stop) {
          const sentAt = performance.now();
          try {
            await fencing.checkLeader({ name: id.name, candidate: "a", term: 1n });
            checks.push({ sentAt, ok: true });
          } catch (error) {
            assert.ok(error instanceof ConnectError && error.code === Code.FailedPrecondition);
            checks.push({ sentAt, ok: false });
          }
        }
      };
      const checkers = [checker(), checker(), checker(), checker()];
      await new Promise((resolve) => setTimeout(resolve, 50));
      await sessions.closeSession({ sessionId });
      closedAt = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 50));
      stop = true;
      await Promise.all(checkers);
      assert.ok(
        checks.some((c) => c.ok && c.sentAt < closedAt),
        "passed while it led",
      );
      const late = checks.filter((c) => c.sentAt > closedAt);
      assert.ok(late.length > 0);
      assert.ok(
        late.every((c) => !c.ok),
        "no check sent after the failover passed",
      );
    });

    if (protocol.startsWith("Connect")) {
      it("is an HTTP GET, as a resource might send it with curl", async () => {
        const id = await fresh();
        await election.enter({ id, candidate: "a" });
        const url = (message: object) =>
          `${server.url}/electd.v1.FencingService/CheckLeader?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify(message))}`;
        const ok = await fetch(url({ name: id.name, candidate: "a", term: "1" }));
        assert.equal(ok.status, 200);
        assert.deepEqual(await ok.json(), {});
        const stale = await fetch(url({ name: id.name, candidate: "a", term: "7" }));
        assert.equal(stale.status, 400);
        const body = (await stale.json()) as { code: string; message: string };
        assert.equal(body.code, "failed_precondition");
        assert.match(body.message, /at term 1 with leader "a"/);
      });
    }
  });

  describe(`conditional operator calls (${protocol})`, () => {
    it("does what the LeaderElection call does while the term is the one expected", async () => {
      const id = await fresh();
      for (const candidate of ["a", "b", "c"]) await election.enter({ id, candidate });
      const anointed = await admin.anoint({ name: id.name, candidate: "c", expectedTerm: 1n });
      assert.deepEqual(
        [anointed.term?.term, anointed.term?.leader, anointed.term?.candidates],
        [2n, "c", ["a", "b"]],
      );
      const promoted = await admin.promote({ name: id.name, candidate: "b", expectedTerm: 2n });
      assert.deepEqual(promoted.term?.candidates, ["b", "a"]);
      const demoted = await admin.demote({ name: id.name, candidate: "b", expectedTerm: 2n });
      assert.deepEqual(demoted.term?.candidates, ["a", "b"]);
      // Without an expected term: whatever the term is.
      const evicted = await admin.evict({ name: id.name, candidate: "c" });
      assert.deepEqual([evicted.term?.term, evicted.term?.leader], [3n, "a"]);
    });

    it("refuses a call made on a term that has passed, changing nothing", async () => {
      const id = await fresh();
      for (const candidate of ["a", "b"]) await election.enter({ id, candidate });
      await election.withdraw({ id, candidate: "a" }); // term 2, leader b
      for (const call of [admin.anoint, admin.promote, admin.demote, admin.evict]) {
        await rejects(
          call({ name: id.name, candidate: "b", expectedTerm: 1n }),
          Code.FailedPrecondition,
          /has moved on: it is at term 2 with leader "b"/,
        );
      }
      const { term } = await election.getTerm({ id });
      assert.deepEqual([term?.term, term?.leader, term?.candidates], [2n, "b", []]);
      await rejects(
        admin.evict({ name: "never created", candidate: "b", expectedTerm: 1n }),
        Code.NotFound,
        /not found/,
      );
    });

    it("lets exactly one of two operators acting on the same term win", async () => {
      for (let round = 0; round < 10; round++) {
        const id = await fresh();
        for (const candidate of ["a", "b", "c"]) await election.enter({ id, candidate });
        const outcomes = await Promise.allSettled([
          admin.anoint({ name: id.name, candidate: "b", expectedTerm: 1n }),
          admin.anoint({ name: id.name, candidate: "c", expectedTerm: 1n }),
        ]);
        const won = outcomes.filter((o) => o.status === "fulfilled");
        assert.equal(won.length, 1);
        const lost = outcomes.find((o) => o.status === "rejected");
        assert.ok(
          lost?.status === "rejected" &&
            lost.reason instanceof ConnectError &&
            lost.reason.code === Code.FailedPrecondition,
        );
        const { term } = await election.getTerm({ id });
        assert.equal(term?.term, 2n);
      }
    });
  });
}
