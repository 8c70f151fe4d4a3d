// The whole HTTP application as a Fastify instance: every RPC protocol on one port, health
// and the dashboard. build() does not listen; main.ts does.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import Fastify, { type FastifyInstance, type FastifyServerFactory } from "fastify";
import type { Authenticator } from "../auth/authenticate.js";
import { WatchQuota } from "../auth/quota.js";
import type { Config } from "../config.js";
import {
  admitRequest,
  authenticateRequest,
  authorization,
  type Refused,
  streamAdmission,
} from "../rpc/auth.js";
import { domainErrorInterceptor } from "../rpc/errors.js";
import { malformedRequestInterceptor } from "../rpc/malformed.js";
import { type RouteOptions, routes } from "../rpc/routes.js";
import type { ElectionStore } from "../store/store.js";
import type { WatchHub } from "../watch/hub.js";
import { badUrlErrors, builtDashboard, dashboard } from "./dashboard.js";
import { directCalls } from "./direct.js";
import { events } from "./events.js";
import { type Fronts, startFronts } from "./fronts.js";
import { guard, hostAllowed, hostOf } from "./guard.js";
import { createListener, type Handler, type Listener, type StreamHandler } from "./listener.js";
import { loggerOptions, logUnfinishedResponses } from "./logging.js";
import { metricsRoute } from "./metrics.js";

/**
 * How many requests of the largest size (MAX_REQUEST_BYTES) an h2c process may have relayed
 * that the main process has not taken yet, before it refuses new calls until it has.
 */
const WAITING_REQUESTS = 64;

export interface AppOptions {
  readonly config: Config;
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly routes: RouteOptions;
  readonly authenticator: Authenticator;
}

export interface App {
  readonly fastify: FastifyInstance;
  readonly listener: Listener;
  /** The h2c processes, with `--h2c-processes`. */
  readonly fronts: Fronts | undefined;
}

export async function build(options: AppOptions): Promise<App> {
  const { config, store, hub } = options;
  let listener: Listener | undefined;
  const served = routes(options.routes);
  const { authenticator } = options;
  const onRefused = (refused: Refused) =>
    fastify.log.warn({ audit: "refused", ...refused }, "call refused");
  const admit = admitRequest(authenticator, onRefused);
  const watches = new WatchQuota(config.auth.maxWatchesPerIdentity);
  const admitStream = streamAdmission(onRefused, watches);
  const callerOf = authenticateRequest(authenticator);
  // Authorization is an interceptor: the direct path below and Connect's run it alike.
  const interceptors = [
    malformedRequestInterceptor,
    domainErrorInterceptor,
    authorization(onRefused, admitStream),
  ];
  let direct: ReturnType<typeof directCalls> | undefined;
  const admits = (headers: IncomingHttpHeaders) =>
    headers.origin === undefined && hostAllowed(hostOf(headers), config.auth, config.host);
  const serverFactory: FastifyServerFactory = (handler) => {
    const fastifyHandler = handler as Handler;
    // The plain unary calls and gRPC server streams are answered directly (see direct.ts),
    // over HTTP/2 as streams before Node makes requests of them; every other request goes
    // through Fastify, and every request does when requests are logged one by one (the
    // access log, or debug level, where abandoned calls are logged). So does every request
    // a browser sends (it carries Origin) and every one for a host
    // name electd does not serve: the guard (guard.ts) answers those in Fastify.
    const handle: Handler = (req, res) => {
      const answered =
        req.httpVersionMajor === 1 &&
        admits(req.headers) &&
        direct?.request(req as IncomingMessage, res as ServerResponse);
      if (!answered) fastifyHandler(req, res);
    };
    const streams: StreamHandler = (stream, headers, rawHeaders) =>
      admits(headers) && direct?.stream(stream, headers, rawHeaders) === true;
    listener = createListener(handle, config.tls, config.connections, streams);
    return listener.server as ReturnType<FastifyServerFactory>;
  };
  const fastify = Fastify({
    ...loggerOptions(config.logLevel, config.accessLog),
    serverFactory,
    // Connect enforces its own body limit (readMaxBytes); this only bounds non-RPC routes.
    bodyLimit: config.limits.maxRequestBytes,
    frameworkErrors: badUrlErrors(builtDashboard),
  });
  logUnfinishedResponses(fastify);
  guard(fastify, config.auth, config.host);
  await fastify.register(fastifyConnectPlugin, {
    routes: served.register,
    readMaxBytes: config.limits.maxRequestBytes,
    // Connect's default, 1 KiB, gzips nearly every page of elections (README, "Protocols").
    compressMinBytes: config.compressMinBytes,
    contextValues: (request) => callerOf(request.raw),
    interceptors,
  });
  if (!config.accessLog && config.logLevel !== "debug" && config.logLevel !== "trace") {
    direct = directCalls({
      methods: served.direct,
      handlers: served.handlers,
      interceptors,
      admitStream,
      contextValues: callerOf,
      readMaxBytes: config.limits.maxRequestBytes,
      compressMinBytes: config.compressMinBytes,
      metrics: options.routes.metrics,
    });
  }
  fastify.get("/healthz", async (_request, reply) => {
    // A store that can fail on its own (etcd unreachable, no quorum) says why.
    const problem = await store.check?.();
    if (problem !== undefined) {
      reply.code(503);
      return { status: "unavailable", store: store.kind, reason: problem };
    }
    return health();
  });
  let fronts: Fronts | undefined;
  const connections = () => (listener?.open ?? 0) + (fronts?.open ?? 0);
  const health = () => ({
    status: "serving",
    store: store.kind,
    elections: store.size(),
    watches: hub.size,
    connections: connections(),
    sessions: options.routes.sessions.size,
    // Ended sessions whose candidates are still being withdrawn (the store is failing).
    endingSessions: options.routes.sessions.endingSize,
  });
  metricsRoute(fastify, options.routes.metrics, admit);
  options.routes.metrics.observe({
    elections: () => store.size(),
    sessionsOpen: () => options.routes.sessions.size,
    sessionsEnding: () => options.routes.sessions.endingSize,
    watches: () => hub.size,
    connections,
  });
  await fastify.register(events, {
    store,
    hub,
    limits: config.limits,
    admit,
    watches,
  });
  await fastify.register(dashboard, { root: builtDashboard });
  fastify.addHook("preClose", async () => {
    // Health watchers hear NOT_SERVING first, then their streams end like every Watch.
    options.routes.serving.stop();
    hub.close();
    listener?.drain();
    fronts?.drain();
  });
  await fastify.ready();
  if (!listener) throw new Error("the HTTP listener was not created");
  if (config.h2cProcesses > 0) {
    const { cleartext } = listener;
    const calls = direct;
    // Config refuses the flag with TLS, and where requests are logged one by one (no
    // direct path).
    if (!cleartext || !calls) throw new Error("h2c processes need the cleartext direct path");
    fronts = await startFronts({
      count: config.h2cProcesses,
      cleartext,
      connections: config.connections,
      paths: calls.paths,
      // A gRPC call's body is one message in a 5-byte envelope.
      readLimit: config.limits.maxRequestBytes + 5,
      waitingLimit: WAITING_REQUESTS * config.limits.maxRequestBytes,
      answer: (x) => admits(x.headers) && calls.exchange(x),
      onError: (fields, message) => fastify.log.error(fields, message),
    });
  }
  return { fastify, listener, fronts };
}
