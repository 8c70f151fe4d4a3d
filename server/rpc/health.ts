// The gRPC health protocol (grpc.health.v1.Health): what Kubernetes gRPC probes, load
// balancers and grpc-health-probe call. Check answers SERVING or NOT_SERVING (see
// ServingState, and a store that can fail on its own, etcd, is asked) for the whole server (service "") or any service it serves by its full
// name; an unknown name is not_found. Watch sends the status now and then each change;
// at shutdown it sends NOT_SERVING and ends with OK, so a watcher sees why it ended.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { ServingState } from "../health/serving.js";
import type { ElectionStore } from "../store/store.js";

const response = (serving: boolean): HealthCheckResponse =>
  create(HealthCheckResponseSchema, { status: serving ? Status.SERVING : Status.NOT_SERVING });

/**
 * Registers the health service on `router`. Call it after the services it reports on:
 * their names are read from the router when a request arrives.
 */
export function registerHealth(
  router: ConnectRouter,
  state: ServingState,
  store: Pick<ElectionStore, "check">,
): void {
  /** Serving, asking a store that can fail on its own (etcd) whether it can serve now. */
  const serving = async () => state.serving && (await store.check?.()) === undefined;
  const known = (service: string) =>
    service === "" || router.handlers.some((h) => h.service.typeName === service);
  router.service(Health, {
    async check(req) {
      if (!known(req.service)) {
        throw new ConnectError(`service "${req.service}" is not served here`, Code.NotFound);
      }
      return response(await serving());
    },
    async list() {
      const services = ["", ...new Set(router.handlers.map((h) => h.service.typeName))];
      const status = response(await serving());
      return { statuses: Object.fromEntries(services.map((s) => [s, status])) };
    },
    async *watch(req, ctx) {
      if (!known(req.service)) {
        // The protocol's answer for an unknown service: say so, and keep the stream open.
        yield create(HealthCheckResponseSchema, { status: Status.SERVICE_UNKNOWN });
        if (!ctx.signal.aborted && !state.stopped) {
          await new Promise<void>((resolve) => {
            const off = state.subscribe(() => state.stopped && done());
            const done = () => {
              off();
              ctx.signal.removeEventListener("abort", done);
              resolve();
            };
            ctx.signal.addEventListener("abort", done);
          });
        }
        return;
      }
      // Changes are queued as they happen; only the latest matters to a watcher.
      let latest: boolean | undefined = state.serving;
      let wake: (() => void) | undefined;
      const off = state.subscribe((serving) => {
        latest = serving;
        wake?.();
      });
      const onAbort = () => wake?.();
      ctx.signal.addEventListener("abort", onAbort);
      try {
        let sent: boolean | undefined;
        for (;;) {
          if (ctx.signal.aborted) return;
          const now: boolean | undefined = latest;
          latest = undefined;
          if (now !== undefined && now !== sent) {
            sent = now;
            yield response(now);
          }
          if (state.stopped) return;
          if (latest === undefined) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        }
      } finally {
        off();
        ctx.signal.removeEventListener("abort", onAbort);
      }
    },
  });
}
