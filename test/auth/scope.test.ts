// Prefix scoping, a candidate's own candidates, and the identity of every change in the
// election's history (audit), kept across a restart on the durable store.
import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { ChangeCause, ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { ElectionHistoryService } from "../../gen/electd/v1/history_pb.js";
import { IdentityService } from "../../gen/electd/v1/identity_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { start } from "../../server/electd.js";
import { DATA_FILE } from "../../server/store/durable.js";
import { transportsWith, writeAuthFile } from "../support/auth.js";
import { startServer, testConfig } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

const { path, tokens } = writeAuthFile([
  { name: "ops", grants: [{ role: "admin" }] },
  { name: "orders-bot", grants: [{ role: "candidate", prefix: "orders/" }, { role: "viewer" }] },
  { name: "other-bot", grants: [{ role: "candidate", prefix: "orders/" }] },
  { name: "orders-admin", grants: [{ role: "admin", prefix: "orders/" }] },
]);

function clients(url: string, who: string) {
  const transport = transportsWith(url, tokens.get(who))["Connect JSON over HTTP/1.1"] as Transport;
  return {
    election: createClient(LeaderElection, transport),
    admin: createClient(ElectionAdminService, transport),
    directory: createClient(ElectionDirectoryService, transport),
    history: createClient(ElectionHistoryService, transport),
    sessions: createClient(SessionService, transport),
    identity: createClient(IdentityService, transport),
  };
}

async function refusal(promise: Promise<unknown>): Promise<ConnectError> {
  return promise.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => ConnectError.from(e),
  );
}

const server = await startServer(["--auth-file", path]);

describe("prefix scoping", () => {
  const ops = clients(server.url, "ops");
  const bot = clients(server.url, "orders-bot");
  const scopedAdmin = clients(server.url, "orders-admin");
  before(async () => {
    await ops.election.create({ id: { name: "orders/eu" } });
    await ops.election.create({ id: { name: "payments/eu" } });
  });

  it("lets a candidate grant on orders/ enter orders/... and nothing else", async () => {
    await bot.election.enter({ id: { name: "orders/eu" }, candidate: "n1" });
    const error = await refusal(
      bot.election.enter({ id: { name: "payments/eu" }, candidate: "n1" }),
    );
    assert.equal(error.code, Code.PermissionDenied);
    assert.match(
      error.rawMessage,
      /"orders-bot" may not call Enter on election "payments\/eu": it needs the candidate role there/,
    );
    assert.deepEqual(
      (await ops.election.getTerm({ id: { name: "payments/eu" } })).term?.leader,
      "",
    );
  });

  it("lets an admin of orders/ administer orders/... only", async () => {
    await scopedAdmin.election.create({ id: { name: "orders/us" } });
    const error = await refusal(scopedAdmin.election.create({ id: { name: "ordersX" } }));
    assert.equal(error.code, Code.PermissionDenied);
    assert.match(error.rawMessage, /needs the admin role/);
    await assert.rejects(ops.election.getTerm({ id: { name: "ordersX" } }), /not found/);
  });

  it("lists elections under a prefix only where a grant covers the whole prefix", async () => {
    const other = clients(server.url, "other-bot");
    // other-bot is a candidate on orders/ (which includes viewing there), nothing more.
    const { elections } = await other.directory.listElections({ namePrefix: "orders/" });
    assert.deepEqual(
      elections.map((e) => e.name),
      ["orders/eu", "orders/us"],
    );
    const error = await refusal(other.directory.listElections({}));
    assert.equal(error.code, Code.PermissionDenied);
    assert.match(error.rawMessage, /on elections starting with "": it needs the viewer role there/);
  });

  it("answers WhoAmI with the identity and its grants", async () => {
    const me = await bot.identity.whoAmI({});
    assert.equal(me.identity, "orders-bot");
    assert.equal(me.authEnabled, true);
    assert.deepEqual(
      me.grants.map((g) => [g.role, g.prefix]),
      [
        ["candidate", "orders/"],
        ["viewer", ""],
      ],
    );
  });
});

describe("a candidate's own candidates", () => {
  const ops = clients(server.url, "ops");
  const bot = clients(server.url, "orders-bot");
  const other = clients(server.url, "other-bot");
  const id = { name: "orders/own" };
  before(() => ops.election.create({ id }));

  it("withdraws the candidate it entered, not another identity's, which an admin can", async () => {
    await bot.election.enter({ id, candidate: "mine" });
    await other.election.enter({ id, candidate: "theirs" });
    const before = await ops.election.getTerm({ id });
    const error = await refusal(bot.election.withdraw({ id, candidate: "theirs" }));
    assert.equal(error.code, Code.PermissionDenied);
    assert.match(
      error.rawMessage,
      /candidate "theirs" was entered by "other-bot": changing it needs the admin role/,
    );
    assert.deepEqual(await ops.election.getTerm({ id }), before);
    await bot.election.withdraw({ id, candidate: "mine" });
    await ops.election.withdraw({ id, candidate: "theirs" });
    assert.deepEqual((await ops.election.getTerm({ id })).term?.leader, "");
  });

  it("closes its session's candidates only when it entered them", async () => {
    const { sessionId } = await bot.sessions.openSession({});
    const headers = { "electd-session": sessionId };
    await bot.election.enter({ id, candidate: "bound" }, { headers });
    // The session id leaked to other-bot: it still cannot withdraw bot's candidate.
    const error = await refusal(other.election.close({ id }, { headers }));
    assert.equal(error.code, Code.PermissionDenied);
    assert.equal((await ops.election.getTerm({ id })).term?.leader, "bound");
    await bot.election.close({ id }, { headers });
    assert.equal((await ops.election.getTerm({ id })).term?.leader, "");
  });
});

/** Every kind of change, made by the identities it should be recorded for. */
async function everyChange(url: string, name: string) {
  const ops = clients(url, "ops");
  const bot = clients(url, "orders-bot");
  const id = { name };
  await ops.election.create({ id });
  await bot.election.enter({ id, candidate: "a" });
  await ops.election.enter({ id, candidate: "b" });
  await ops.election.enter({ id, candidate: "c" });
  await ops.election.promote({ id, candidate: "c" });
  await ops.election.anoint({ id, candidate: "b" });
  await ops.election.demote({ id, candidate: "b" });
  await ops.election.evict({ id, candidate: "c" });
  await bot.election.withdraw({ id, candidate: "a" });
  const { sessionId } = await bot.sessions.openSession({});
  await bot.election.enter({ id, candidate: "s" }, { headers: { "electd-session": sessionId } });
  await bot.election.close({ id }, { headers: { "electd-session": sessionId } });
  const second = await bot.sessions.openSession({});
  await bot.election.enter(
    { id, candidate: "t" },
    { headers: { "electd-session": second.sessionId } },
  );
  await bot.sessions.closeSession({ sessionId: second.sessionId });
}

const expected = [
  [ChangeCause.CREATE, "ops"],
  [ChangeCause.ENTER, "orders-bot"],
  [ChangeCause.ENTER, "ops"],
  [ChangeCause.ENTER, "ops"],
  [ChangeCause.PROMOTE, "ops"],
  [ChangeCause.ANOINT, "ops"],
  [ChangeCause.DEMOTE, "ops"],
  [ChangeCause.EVICT, "ops"],
  [ChangeCause.WITHDRAW, "orders-bot"],
  [ChangeCause.ENTER, "orders-bot"],
  [ChangeCause.CLOSE, "orders-bot"],
  [ChangeCause.ENTER, "orders-bot"],
  // A session's end is recorded as made by the identity that entered its candidates.
  [ChangeCause.SESSION_CLOSED, "orders-bot"],
];

describe("audit: who made each change", () => {
  it("is in every history record, and the deletion's is kept too", async () => {
    const server = await startServer(["--auth-file", path]);
    await everyChange(server.url, "orders/audit");
    const ops = clients(server.url, "ops");
    const { changes } = await ops.history.listHistory({ name: "orders/audit", oldestFirst: true });
    assert.deepEqual(
      changes.map((c) => [c.cause, c.identity]),
      expected,
    );
    await ops.admin.deleteElection({ name: "orders/audit" });
    const deleted = await ops.history.listHistory({ name: "orders/audit" });
    assert.deepEqual(
      deleted.changes.map((c) => [c.cause, c.identity]),
      [[ChangeCause.ELECTION_DELETED, "ops"]],
    );
  });

  it("records anonymous without an auth file", async () => {
    const server = await startServer([]);
    const transport = transportsWith(server.url, undefined)["gRPC over h2c"] as Transport;
    const election = createClient(LeaderElection, transport);
    const history = createClient(ElectionHistoryService, transport);
    await election.create({ id: { name: "open" } });
    await election.enter({ id: { name: "open" }, candidate: "a" });
    const { changes } = await history.listHistory({ name: "open", oldestFirst: true });
    assert.deepEqual(
      changes.map((c) => c.identity),
      ["anonymous", "anonymous"],
    );
  });

  it("survives a restart on the durable store, with the candidates' entrants", async () => {
    const dataDir = tempDir("audit");
    const flags = ["--store", "durable", "--data-dir", dataDir, "--auth-file", path];
    const first = await start(testConfig(flags));
    try {
      await everyChange(first.url, "orders/kept");
      await clients(first.url, "orders-bot").election.enter({
        id: { name: "orders/kept" },
        candidate: "z",
      });
    } finally {
      await first.stop(500);
    }
    const second = await start(testConfig(flags));
    try {
      const ops = clients(second.url, "ops");
      const { changes } = await ops.history.listHistory({ name: "orders/kept", oldestFirst: true });
      assert.deepEqual(
        changes.map((c) => [c.cause, c.identity]),
        [...expected, [ChangeCause.ENTER, "orders-bot"]],
      );
      // Who entered "z" was kept: other-bot still may not withdraw it, orders-bot may.
      const error = await refusal(
        clients(second.url, "other-bot").election.withdraw({
          id: { name: "orders/kept" },
          candidate: "z",
        }),
      );
      assert.match(error.rawMessage, /was entered by "orders-bot"/);
      await clients(second.url, "orders-bot").election.withdraw({
        id: { name: "orders/kept" },
        candidate: "z",
      });
    } finally {
      await second.stop(500);
    }
  });
});

describe("audit: data written before identities were kept", () => {
  it("reads records without an identity as unknown, and candidates without an entrant as an admin's to change", async () => {
    const dataDir = tempDir("older");
    const flags = ["--store", "durable", "--data-dir", dataDir, "--auth-file", path];
    const first = await start(testConfig(flags));
    try {
      const bot = clients(first.url, "orders-bot");
      await clients(first.url, "ops").election.create({ id: { name: "orders/old" } });
      await bot.election.enter({ id: { name: "orders/old" }, candidate: "a" });
    } finally {
      await first.stop(500);
    }
    // What an older electd left: no identity in the records, no entrants column.
    const db = new Database(join(dataDir, DATA_FILE));
    db.exec("UPDATE history SET record = json_remove(record, '$.by')");
    db.exec("ALTER TABLE elections DROP COLUMN entrants");
    db.close();
    const second = await start(testConfig(flags));
    try {
      const ops = clients(second.url, "ops");
      const { changes } = await ops.history.listHistory({ name: "orders/old", oldestFirst: true });
      assert.deepEqual(
        changes.map((c) => c.identity),
        ["", ""],
      );
      const error = await refusal(
        clients(second.url, "orders-bot").election.withdraw({
          id: { name: "orders/old" },
          candidate: "a",
        }),
      );
      assert.match(error.rawMessage, /was entered by another identity/);
      await ops.election.withdraw({ id: { name: "orders/old" }, candidate: "a" });
      const last = await ops.history.listHistory({ name: "orders/old" });
      assert.equal(last.changes[0]?.identity, "ops");
    } finally {
      await second.stop(500);
    }
  });
});
