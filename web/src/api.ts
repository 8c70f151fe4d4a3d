// Clients for the API this page was served from: the Atomix LeaderElection service, the
// electd election directory and its admin service (deleting elections), over gRPC-Web (binary) on the same origin. gRPC-Web rather than
// Connect: gRPC-Web reports a refused call in the response trailers of an HTTP 200, while
// Connect answers it with an HTTP error status, which the browser logs as a failed resource
// load in the console on every refused action.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { LeaderElection, type Term } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { ElectionHistoryService } from "../../gen/electd/v1/history_pb.js";
import { IdentityService } from "../../gen/electd/v1/identity_pb.js";
import { explainAccess, token } from "./sign-in.js";

// Every call carries this tab's token, when it has one (sign-in.ts).
const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [
    (next) => (req) => {
      const bearer = token();
      if (bearer !== undefined) req.header.set("authorization", `Bearer ${bearer}`);
      return next(req);
    },
  ],
});

export const leaderElection = createClient(LeaderElection, transport);
export const directory = createClient(ElectionDirectoryService, transport);
export const admin = createClient(ElectionAdminService, transport);
export const history = createClient(ElectionHistoryService, transport);
export const identity = createClient(IdentityService, transport);

/** The code as API.md writes it: invalid_argument, not_found, ... */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/[A-Z]/g, (c, i: number) =>
    i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
  );
}

/** "the server's message (code)" for showing a refusal to a person. */
export function describeError(error: unknown): string {
  const access = explainAccess(error);
  if (access !== undefined) return access;
  const e = ConnectError.from(error);
  return `${e.rawMessage || "no message"} (${codeName(e.code)})`;
}

export function describeTerm(term: Term | undefined): string {
  if (!term) return "no term";
  const leader = term.leader === "" ? "no leader" : `leader ${term.leader}`;
  return `term ${term.term}, ${leader}, ${term.candidates.length} waiting`;
}

/** The curl line that creates an election, for people starting from an empty server. */
export function createCommand(name: string): string {
  const body = JSON.stringify({ id: { name }, tags: ["demo"] });
  return (
    `curl ${window.location.origin}/atomix.runtime.election.v1.LeaderElection/Create ` +
    `-H 'Content-Type: application/json' -d '${body.replaceAll("'", "'\\''")}'`
  );
}
