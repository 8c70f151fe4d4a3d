// Each role against each rpc on each protocol (Connect, gRPC, gRPC-Web): a call the role
// allows succeeds; any other is refused with permission_denied naming the role it needs
// (unauthenticated without a known token) and changes nothing.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { FencingService } from "../../gen/electd/v1/fencing_pb.js";
import { ElectionHistoryService } from "../../gen/electd/v1/history_pb.js";
import { IdentityService } from "../../gen/electd/v1/identity_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { transportsWith, writeAuthFile } from "../support/auth.js";
import { startServer } from "../support/server.js";

type Role = "viewer" | "candidate" | "admin";
const rank: Record<Role | "none", number> = { none: -1, viewer: 0, candidate: 1, admin: 2 };

const { path, tokens } = writeAuthFile([
  { name: "ops", grants: [{ role: "admin" }] },
  { name: "worker", grants: [{ role: "candidate" }] },
  { name: "watcher", grants: [{ role: "viewer" }] },
]);
const server = await startServer(["--auth-file", path]);
const callers: Record<Role, string> = { admin: "ops", candidate: "worker", viewer: "watcher" };

function clients(transport: Transport) {
  return {
    election: createClient(LeaderElection, transport),
    admin: createClient(ElectionAdminService, transport),
    directory: createClient(ElectionDirectoryService, transport),
    history: createClient(ElectionHistoryService, transport),
    fencing: createClient(FencingService, transport),
    sessions: createClient(SessionService, transport),
    identity: createClient(IdentityService, transport),
  };
}
type Clients = ReturnType<typeof clients>;

/** What each case starts from: leader "a" (entered by ops), "b" queued (entered by worker). */
interface Setup {
  readonly name: string;
  readonly session: string;
}

async function first(stream: AsyncIterable<unknown>): Promise<void> {
  const controller = new AbortController();
  for await (const _ of stream) break;
  controller.abort();
}

/** Every rpc with the role it needs and a call of it on the set-up election. */
const rpcs: readonly [string, Role, (c: Clients, s: Setup) => Promise<unknown>][] = [
  ["LeaderElection.GetTerm", "viewer", (c, s) => c.election.getTerm({ id: { name: s.name } })],
  ["LeaderElection.Watch", "viewer", (c, s) => first(c.election.watch({ id: { name: s.name } }))],
  [
    "LeaderElection.Create",
    "admin",
    (c, s) => c.election.create({ id: { name: `${s.name}-new` } }),
  ],
  [
    "LeaderElection.Enter",
    "candidate",
    (c, s) => c.election.enter({ id: { name: s.name }, candidate: "c" }),
  ],
  [
    "LeaderElection.Withdraw (its own)",
    "candidate",
    (c, s) => c.election.withdraw({ id: { name: s.name }, candidate: "b" }),
  ],
  ["LeaderElection.Close", "candidate", (c, s) => c.election.close({ id: { name: s.name } })],
  [
    "LeaderElection.Anoint",
    "admin",
    (c, s) => c.election.anoint({ id: { name: s.name }, candidate: "b" }),
  ],
  [
    "LeaderElection.Promote",
    "admin",
    (c, s) => c.election.promote({ id: { name: s.name }, candidate: "b" }),
  ],
  [
    "LeaderElection.Demote",
    "admin",
    (c, s) => c.election.demote({ id: { name: s.name }, candidate: "a" }),
  ],
  [
    "LeaderElection.Evict",
    "admin",
    (c, s) => c.election.evict({ id: { name: s.name }, candidate: "b" }),
  ],
  ["ElectionDirectoryService.ListElections", "viewer", (c) => c.directory.listElections({})],
  [
    "ElectionDirectoryService.WatchElections",
    "viewer",
    (c, s) => first(c.directory.watchElections({ name: s.name })),
  ],
  [
    "ElectionDirectoryService.GetElectionSessions",
    "viewer",
    (c, s) => c.directory.getElectionSessions({ name: s.name }),
  ],
  [
    "ElectionHistoryService.ListHistory",
    "viewer",
    (c, s) => c.history.listHistory({ name: s.name }),
  ],
  [
    "ElectionHistoryService.WatchElection",
    "viewer",
    (c, s) => first(c.history.watchElection({ name: s.name })),
  ],
  [
    "ElectionHistoryService.WatchElectionList",
    "viewer",
    (c, s) => first(c.history.watchElectionList({ elections: [{ name: s.name }] })),
  ],
  [
    "FencingService.CheckLeader",
    "viewer",
    (c, s) => c.fencing.checkLeader({ name: s.name, candidate: "a", term: 1n }),
  ],
  [
    "SessionService.GetSession",
    "viewer",
    (c, s) => c.sessions.getSession({ sessionId: s.session }),
  ],
  ["SessionService.OpenSession", "candidate", (c) => c.sessions.openSession({})],
  [
    "SessionService.KeepAlive",
    "candidate",
    (c, s) => c.sessions.keepAlive({ sessionId: s.session }),
  ],
  [
    "SessionService.CloseSession",
    "candidate",
    (c, s) => c.sessions.closeSession({ sessionId: s.session }),
  ],
  ["IdentityService.WhoAmI", "viewer", (c) => c.identity.whoAmI({})],
  [
    "ElectionAdminService.DeleteElection",
    "admin",
    (c, s) => c.admin.deleteElection({ name: s.name }),
  ],
  [
    "ElectionAdminService.Anoint",
    "admin",
    (c, s) => c.admin.anoint({ name: s.name, candidate: "b" }),
  ],
  [
    "ElectionAdminService.Promote",
    "admin",
    (c, s) => c.admin.promote({ name: s.name, candidate: "b" }),
  ],
  [
    "ElectionAdminService.Demote",
    "admin",
    (c, s) => c.admin.demote({ name: s.name, candidate: "a" }),
  ],
  [
    "ElectionAdminService.Evict",
    "admin",
    (c, s) => c.admin.evict({ name: s.name, candidate: "b" }),
  ],
];

let cases = 0;
for (const protocol of Object.keys(transportsWith(server.url, undefined))) {
  const as = (name: string | undefined) => {
    const token = name === undefined ? undefined : tokens.get(name);
    return clients(transportsWith(server.url, token)[protocol] as Transport);
  };
  const ops = as("ops");
  const worker = as("worker");

  async function setup(): Promise<Setup> {
    const name = `roles/${++cases}`;
    await ops.election.create({ id: { name } });
    await ops.election.enter({ id: { name }, candidate: "a" });
    await worker.election.enter({ id: { name }, candidate: "b" });
    const { sessionId } = await worker.sessions.openSession({});
    return { name, session: sessionId };
  }

  /** Everything a refused call could have changed. */
  async function observe(s: Setup) {
    const term = await ops.election.getTerm({ id: { name: s.name } }).catch(String);
    const history = await ops.history.listHistory({ name: s.name }).catch(String);
    const session = await ops.sessions
      .getSession({ sessionId: s.session })
      .then((found) => found.state, String);
    const created = await ops.election.getTerm({ id: { name: `${s.name}-new` } }).catch(String);
    return JSON.stringify({ term, history, session, created }, (_, v) =>
      typeof v === "bigint" ? v.toString() : v,
    );
  }

  describe(`roles over ${protocol}`, () => {
    for (const role of ["none", "viewer", "candidate", "admin"] as const) {
      const callerName = role === "none" ? undefined : callers[role];
      const caller = callerName === undefined ? undefined : as(callerName);
      for (const [rpc, needs, call] of rpcs) {
        const allowed = rank[role] >= rank[needs];
        it(`${role === "none" ? "no token" : role}: ${rpc} ${allowed ? "succeeds" : "is refused"}`, async () => {
          const s = await setup();
          if (caller === undefined) {
            const before = await observe(s);
            const error = await call(as(undefined), s).then(
              () => assert.fail("expected unauthenticated"),
              (e: unknown) => ConnectError.from(e),
            );
            assert.equal(error.code, Code.Unauthenticated, error.message);
            assert.equal(await observe(s), before);
            return;
          }
          if (allowed) {
            await call(caller, s);
            return;
          }
          const before = await observe(s);
          const error = await call(caller, s).then(
            () => assert.fail("expected permission_denied"),
            (e: unknown) => ConnectError.from(e),
          );
          assert.equal(error.code, Code.PermissionDenied, error.message);
          assert.match(error.rawMessage, new RegExp(`needs the ${needs} role`));
          assert.match(error.rawMessage, new RegExp(`"${callerName}"`));
          assert.equal(await observe(s), before);
        });
      }
    }
  });
}

describe("an unknown token", () => {
  it("is unauthenticated on every protocol", async () => {
    for (const transport of Object.values(transportsWith(server.url, "not-a-token"))) {
      const error = await createClient(LeaderElection, transport)
        .getTerm({ id: { name: "x" } })
        .then(
          () => assert.fail("expected unauthenticated"),
          (e: unknown) => ConnectError.from(e),
        );
      assert.equal(error.code, Code.Unauthenticated);
      assert.match(error.rawMessage, /token is not one the server knows/);
    }
  });
});
