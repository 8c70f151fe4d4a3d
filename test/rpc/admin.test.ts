// ElectionAdminService.DeleteElection over real transports: the election goes, its Watch
// streams end with not_found, directory watchers are told, its session bindings go, its
// place under MAX_ELECTIONS is free again, and a new election of that name continues its
// term, so a fencing token is never handed out twice.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--max-elections", "3"]);
const transports = {
  "Connect JSON over HTTP/1.1": createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  "gRPC over h2c": createGrpcTransport({ baseUrl: server.url }),
};

for (const [name, transport] of Object.entries(transports)) {
  const election = createClient(LeaderElection, transport);
  const admin = createClient(ElectionAdminService, transport);
  const directory = createClient(ElectionDirectoryService, transport);
  const sessions = createClient(SessionService, transport);
  const id = { name: `doomed ${name}` };

  describe(`DeleteElection (${name})`, () => {
    it("ends Watch with not_found, tells directory watchers, and answers the last term", async () => {
      await election.create({ id });
      await election.enter({ id, candidate: "a" });
      await election.enter({ id, candidate: "b" });
      const watch = election.watch({ id })[Symbol.asyncIterator]();
      assert.equal((await watch.next()).value?.term?.leader, "a");
      const listing = directory.watchElections({ name: id.name })[Symbol.asyncIterator]();
      assert.equal((await listing.next()).value?.elections.length, 1);

      const { term } = await admin.deleteElection({ name: id.name });
      assert.deepEqual([term?.term, term?.leader, term?.candidates], [1n, "a", ["b"]]);
      await rejects(watch.next(), Code.NotFound, /was deleted/);
      const told = await listing.next();
      assert.deepEqual(told.value?.deleted, [id.name]);
      await listing.return?.();

      await rejects(election.getTerm({ id }), Code.NotFound, /not found/);
      await rejects(admin.deleteElection({ name: id.name }), Code.NotFound, /not found/);
      await rejects(
        election.watch({ id })[Symbol.asyncIterator]().next(),
        Code.NotFound,
        /not found/,
      );
    });

    it("continues the deleted election's term when the name is created again, with no session binding left", async () => {
      const { sessionId } = await sessions.openSession({});
      const headers = { "electd-session": sessionId };
      await election.create({ id });
      await election.enter({ id, candidate: "x" }, { headers });
      const before = await election.getTerm({ id });
      await admin.deleteElection({ name: id.name });
      await election.create({ id });
      const after = await election.getTerm({ id });
      assert.equal(after.term?.term, before.term?.term);
      assert.equal(after.term?.leader, "");
      // A candidate entered again without the session is not withdrawn when it closes.
      await election.enter({ id, candidate: "x" });
      await sessions.closeSession({ sessionId });
      assert.equal((await election.getTerm({ id })).term?.leader, "x");
      await admin.deleteElection({ name: id.name });
    });

    it("refuses an empty name with invalid_argument and frees places under MAX_ELECTIONS", async () => {
      await rejects(
        admin.deleteElection({ name: "" }),
        Code.InvalidArgument,
        /^name must not be empty/,
      );
      const names = ["p1", "p2", "p3"].map((n) => `${n} ${name}`);
      for (const n of names) await election.create({ id: { name: n } });
      await rejects(
        election.create({ id: { name: `p4 ${name}` } }),
        Code.ResourceExhausted,
        /MAX_ELECTIONS/,
      );
      await admin.deleteElection({ name: names[0] as string });
      await election.create({ id: { name: `p4 ${name}` } });
      for (const n of [...names.slice(1), `p4 ${name}`]) await admin.deleteElection({ name: n });
    });
  });
}
