// The whole HTTP application as a Fastify instance: every RPC protocol on one port, health
// and the dashboard. build() does not listen; main.ts does.
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import Fastify, { type FastifyInstance, type FastifyServerFactory } from "fastify";
import type { Config } from "../config.js";
import { domainErrorInterceptor } from "../rpc/errors.js";
import { malformedRequestInterceptor } from "../rpc/malformed.js";
import { type RouteOptions, routes } from "../rpc/routes.js";
import type { ElectionStore } from "../store/store.js";
import type { WatchHub } from "../watch/hub.js";
import { badUrlErrors, builtDashboard, dashboard } from "./dashboard.js";
import { createListener, type Handler, type Listener } from "./listener.js";
import { loggerOptions, logUnfinishedResponses } from "./logging.js";

export interface AppOptions {
  readonly config: Config;
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly routes: RouteOptions;
}

export interface App {
  readonly fastify: FastifyInstance;
  readonly listener: Listener;
}

export async function build(options: AppOptions): Promise<App> {
  const { config, store, hub } = options;
  let listener: Listener | undefined;
  const serverFactory: FastifyServerFactory = (handler) => {
    listener = createListener(handler as Handler, config.tls, config.connections);
    return listener.server as ReturnType<FastifyServerFactory>;
  };
  const fastify = Fastify({
    ...loggerOptions(config.logLevel),
    serverFactory,
    // Connect enforces its own body limit (readMaxBytes); this only bounds non-RPC routes.
    bodyLimit: config.limits.maxRequestBytes,
    frameworkErrors: badUrlErrors(builtDashboard),
  });
  logUnfinishedResponses(fastify);
  await fastify.register(fastifyConnectPlugin, {
    routes: routes(options.routes),
    readMaxBytes: config.limits.maxRequestBytes,
    // Connect's default, 1 KiB, gzips nearly every page of elections (README, "Protocols").
    compressMinBytes: config.compressMinBytes,
    interceptors: [malformedRequestInterceptor, domainErrorInterceptor],
  });
  fastify.get("/healthz", async () => ({
    status: "serving",
    store: store.kind,
    elections: store.size(),
    watches: hub.size,
    connections: listener?.open ?? 0,
    sessions: options.routes.sessions.registry.size,
    // Ended sessions whose candidates are still being withdrawn (the store is failing).
    endingSessions: options.routes.sessions.registry.endingSize,
  }));
  await fastify.register(dashboard, { root: builtDashboard });
  fastify.addHook("preClose", async () => {
    hub.close();
    listener?.drain();
  });
  await fastify.ready();
  if (!listener) throw new Error("the HTTP listener was not created");
  return { fastify, listener };
}
