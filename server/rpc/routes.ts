// Registers every service implementation on the Connect router.
import type { ConnectRouter } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { type ElectionServiceOptions, electionService } from "./election.js";
import { guardBinaryRequests } from "./malformed.js";
import { type SessionServiceOptions, sessionService } from "./session.js";

export interface RouteOptions extends ElectionServiceOptions {
  readonly maxRequestBytes: number;
  readonly sessions: SessionServiceOptions;
}

export function routes(options: RouteOptions) {
  return (router: ConnectRouter) => {
    router.service(LeaderElection, electionService(options));
    router.service(SessionService, sessionService(options.sessions));
    guardBinaryRequests(router, options.maxRequestBytes);
  };
}
