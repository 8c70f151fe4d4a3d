// Registers every service implementation on the Connect router.
import type { ConnectRouter } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { type ElectionServiceOptions, electionService } from "./election.js";
import { guardBinaryRequests } from "./malformed.js";

export interface RouteOptions extends ElectionServiceOptions {
  readonly maxRequestBytes: number;
}

export function routes(options: RouteOptions) {
  return (router: ConnectRouter) => {
    router.service(LeaderElection, electionService(options));
    guardBinaryRequests(router, options.maxRequestBytes);
  };
}
