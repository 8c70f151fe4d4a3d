// Registers every service implementation on the Connect router.
import type { ConnectRouter } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { type ElectionServiceOptions, electionService } from "./election.js";

export type RouteOptions = ElectionServiceOptions;

export function routes(options: RouteOptions) {
  return (router: ConnectRouter) => {
    router.service(LeaderElection, electionService(options));
  };
}
