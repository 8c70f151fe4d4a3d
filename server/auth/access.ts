// Who may call what (README, "Authentication and roles"): one pure function from a
// caller's grants, an rpc and the election names it touches to allowed, or the role it
// needs. No I/O: the rpc layer asks it before a handler runs, the HTTP routes before they
// answer, and nothing is changed when it says no.

export type Role = "viewer" | "candidate" | "admin";

/** A role on the elections whose names start with `prefix` ("" : every election). */
export interface Grant {
  readonly role: Role;
  readonly prefix: string;
}

/** Who is calling, as authentication found out, and what they were granted. */
export interface Caller {
  /** The identity: a token's name in the auth file, or a client certificate's subject. */
  readonly name: string;
  readonly grants: readonly Grant[];
}

/** Every caller when no auth is configured: the server is open, as a development default. */
export const anonymous: Caller = { name: "anonymous", grants: [{ role: "admin", prefix: "" }] };

const rank: Record<Role, number> = { viewer: 0, candidate: 1, admin: 2 };

export function isRole(value: unknown): value is Role {
  return value === "viewer" || value === "candidate" || value === "admin";
}

/**
 * The election names a call touches: one election, every name under a prefix (a listing),
 * or none (sessions, which belong to no election).
 */
export type Scope =
  | { readonly kind: "name"; readonly name: string }
  | { readonly kind: "prefix"; readonly prefix: string }
  /** Several elections at once (WatchElectionList): each must be covered. */
  | { readonly kind: "names"; readonly names: readonly string[] }
  | { readonly kind: "none" };

/**
 * The role each rpc needs, by "<service>/<method>". Reading is viewer; campaigning is
 * candidate; changing what others hold or the election itself is admin. An rpc missing
 * here needs admin, so a new one is closed until it is placed.
 */
const needs = new Map<string, Role>([
  ["atomix.runtime.election.v1.LeaderElection/GetTerm", "viewer"],
  ["atomix.runtime.election.v1.LeaderElection/Watch", "viewer"],
  ["atomix.runtime.election.v1.LeaderElection/Enter", "candidate"],
  ["atomix.runtime.election.v1.LeaderElection/Withdraw", "candidate"],
  ["atomix.runtime.election.v1.LeaderElection/Close", "candidate"],
  ["atomix.runtime.election.v1.LeaderElection/Create", "admin"],
  ["atomix.runtime.election.v1.LeaderElection/Anoint", "admin"],
  ["atomix.runtime.election.v1.LeaderElection/Promote", "admin"],
  ["atomix.runtime.election.v1.LeaderElection/Demote", "admin"],
  ["atomix.runtime.election.v1.LeaderElection/Evict", "admin"],
  ["electd.v1.ElectionDirectoryService/ListElections", "viewer"],
  ["electd.v1.ElectionDirectoryService/WatchElections", "viewer"],
  ["electd.v1.ElectionDirectoryService/GetElectionSessions", "viewer"],
  ["electd.v1.ElectionHistoryService/ListHistory", "viewer"],
  ["electd.v1.ElectionHistoryService/WatchElection", "viewer"],
  ["electd.v1.ElectionHistoryService/WatchElectionList", "viewer"],
  ["electd.v1.FencingService/CheckLeader", "viewer"],
  ["electd.v1.SessionService/GetSession", "viewer"],
  ["electd.v1.SessionService/OpenSession", "candidate"],
  ["electd.v1.SessionService/KeepAlive", "candidate"],
  ["electd.v1.SessionService/CloseSession", "candidate"],
  ["electd.v1.IdentityService/WhoAmI", "viewer"],
  ["electd.v1.ElectionAdminService/DeleteElection", "admin"],
  ["electd.v1.ElectionAdminService/Anoint", "admin"],
  ["electd.v1.ElectionAdminService/Promote", "admin"],
  ["electd.v1.ElectionAdminService/Demote", "admin"],
  ["electd.v1.ElectionAdminService/Evict", "admin"],
]);

/** The role an rpc ("<service>/<method>") needs. */
export function roleFor(rpc: string): Role {
  return needs.get(rpc) ?? "admin";
}

export type Decision =
  | { readonly ok: true }
  | { readonly ok: false; readonly needs: Role; readonly scope: Scope };

/** Whether `caller` holds `role` (or a higher one) for everything `scope` covers. */
export function holds(caller: Caller, role: Role, scope: Scope): boolean {
  if (scope.kind === "names") {
    return scope.names.every((name) => holds(caller, role, { kind: "name", name }));
  }
  return caller.grants.some(
    (grant) =>
      rank[grant.role] >= rank[role] &&
      (scope.kind === "none" ||
        (scope.kind === "name"
          ? scope.name.startsWith(grant.prefix)
          : scope.prefix.startsWith(grant.prefix))),
  );
}

/** Whether `caller` may make the call `rpc` on `scope`, or the role it would need. */
export function decide(caller: Caller, rpc: string, scope: Scope): Decision {
  const role = roleFor(rpc);
  return holds(caller, role, scope) ? { ok: true } : { ok: false, needs: role, scope };
}

/** A refusal in words: who, what, and the role that would allow it. */
export function refusal(caller: Caller, rpc: string, decision: Decision & { ok: false }): string {
  const method = rpc.slice(rpc.lastIndexOf("/") + 1);
  const { scope } = decision;
  const where =
    scope.kind === "name"
      ? ` on election ${JSON.stringify(scope.name)}`
      : scope.kind === "prefix"
        ? ` on elections starting with ${JSON.stringify(scope.prefix)}`
        : scope.kind === "names"
          ? ` on elections ${scope.names.map((n) => JSON.stringify(n)).join(", ")}`
          : "";
  return `${JSON.stringify(caller.name)} may not call ${method}${where}: it needs the ${decision.needs} role${scope.kind === "none" ? "" : " there"}`;
}
