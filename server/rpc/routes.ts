// Registers every service implementation on the Connect router.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  createServiceImplSpec,
  type MethodImplSpec,
  type ServiceImpl,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
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
import { type ElectionServiceOptions, electionService, electionWatch } from "./election.js";
import { fencingService } from "./fencing.js";
import { registerHealth } from "./health.js";
import { historyService } from "./history.js";
import { guardMalformedRequests } from "./malformed.js";
import type { PushedStream } from "./pushed.js";
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

/**
 * A unary or server-streaming method with its implementation, as Connect calls it, and for
 * a watch the same implementation in the form the direct path sends as it comes.
 */
export type DirectMethod = MethodImplSpec & {
  readonly kind: "unary" | "server_streaming";
  readonly pushed?: PushedStream;
};

export interface Routes {
  /** Registers every service on a Connect router (connect-fastify's `routes`). */
  readonly register: (router: ConnectRouter) => void;
  /**
   * The unary and server-streaming methods of the electd and election services, with
   * their implementations.
   */
  readonly direct: readonly DirectMethod[];
  /** Every handler on the router, once registered. */
  readonly handlers: () => readonly UniversalHandler[];
}

function implemented<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>) {
  return {
    register: (router: ConnectRouter) => router.service(service, impl),
    spec: createServiceImplSpec(service, impl as Partial<ServiceImpl<DescService>>),
  };
}

export function routes(options: RouteOptions): Routes {
  // Each implementation is made once: the router and the direct path share it.
  const watch = electionWatch(options);
  const pushed = new Map<DescMethod, PushedStream>([[LeaderElection.method.watch, watch.pushed]]);
  const services = [
    implemented(LeaderElection, electionService(options, watch)),
    implemented(SessionService, sessionService(options)),
    implemented(ElectionDirectoryService, directoryService(options)),
    implemented(ElectionAdminService, adminService(options)),
    implemented(FencingService, fencingService(options)),
    implemented(ElectionHistoryService, historyService(options)),
    implemented(IdentityService, identityService(options.authenticator)),
  ];
  let registered: ConnectRouter | undefined;
  return {
    register(router) {
      for (const service of services) service.register(router);
      // After the services they report on.
      registerHealth(router, options.serving, options.store);
      registerReflection(router);
      // Last: they wrap the handlers registered above, the request count outermost.
      guardMalformedRequests(router, options.maxRequestBytes);
      measureRequests(router, options.metrics);
      registered = router;
    },
    direct: services.flatMap(({ spec }) =>
      Object.values(spec.methods)
        .filter(
          (spec): spec is DirectMethod => spec.kind === "unary" || spec.kind === "server_streaming",
        )
        .map((spec) => {
          const push = pushed.get(spec.method);
          return push === undefined ? spec : { ...spec, pushed: push };
        }),
    ),
    handlers: () => registered?.handlers ?? [],
  };
}
