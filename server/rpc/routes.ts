// Registers every service implementation on the Connect router.
import type { ConnectRouter } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { ElectionDirectoryService } from "../../gen/electd/v1/directory_pb.js";
import { FencingService } from "../../gen/electd/v1/fencing_pb.js";
import { ElectionHistoryService } from "../../gen/electd/v1/history_pb.js";
import { IdentityService } from "../../gen/electd/v1/identity_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import type { Authenticator } from "../auth/authenticate.js";
import type { ServingState } from "../health/serving.js";
import type { Metrics } from "../metrics/metrics.js";
import { measureRequests } from "../metrics/requests.js";
import { adminService } from "./admin.js";
import { identityService } from "./auth.js";
import { type DirectoryServiceOptions, directoryService } from "./directory.js";
import { type ElectionServiceOptions, electionService } from "./election.js";
import { fencingService } from "./fencing.js";
import { registerHealth } from "./health.js";
import { historyService } from "./history.js";
import { guardMalformedRequests } from "./malformed.js";
import { registerReflection } from "./reflection.js";
import { type SessionServiceOptions, sessionService } from "./session.js";

export type RouteOptions = ElectionServiceOptions &
  DirectoryServiceOptions &
  SessionServiceOptions & {
    readonly maxRequestBytes: number;
    readonly serving: ServingState;
    readonly metrics: Metrics;
    readonly authenticator: Authenticator;
  };

export function routes(options: RouteOptions) {
  return (router: ConnectRouter) => {
    router.service(LeaderElection, electionService(options));
    router.service(SessionService, sessionService(options));
    router.service(ElectionDirectoryService, directoryService(options));
    router.service(ElectionAdminService, adminService(options));
    router.service(FencingService, fencingService(options));
    router.service(ElectionHistoryService, historyService(options));
    router.service(IdentityService, identityService(options.authenticator));
    // After the services they report on.
    registerHealth(router, options.serving, options.store);
    registerReflection(router);
    // Last: they wrap the handlers registered above, the request count outermost.
    guardMalformedRequests(router, options.maxRequestBytes);
    measureRequests(router, options.metrics);
  };
}
