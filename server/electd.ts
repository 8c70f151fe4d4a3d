// Wires one electd server from a Config: store, watch hub, HTTP app. start() listens and
// returns a handle whose stop() ends watches, drains connections and closes the store.
import type { AddressInfo } from "node:net";
import { getHeapStatistics } from "node:v8";
import { Authenticator } from "./auth/authenticate.js";
import { type Clock, systemClock } from "./clock.js";
import type { Config } from "./config.js";
import { historyRecord } from "./election/change.js";
import { ServingState } from "./health/serving.js";
import { type App, build } from "./http/app.js";
import { heapBudget } from "./memory.js";
import { Metrics } from "./metrics/metrics.js";
import { type MeasuredStoreOptions, measuredStore } from "./metrics/store.js";
import { SessionRegistry } from "./session/registry.js";
import type { Sessions } from "./session/sessions.js";
import { openDurableStore } from "./store/durable.js";
import { createMemoryStore } from "./store/memory.js";
import type { ElectionStore } from "./store/store.js";
import { WatchHub } from "./watch/hub.js";

export interface Electd {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly sessions: Sessions;
  /**
   * Reads the auth file again (SIGHUP): later calls are checked against it, connections
   * and calls in progress are untouched. Throws (AuthFileError) when the file cannot be
   * read or parsed, and the one in force stays.
   */
  reloadAuth(): void;
  /**
   * Graceful stop: resolves when everything is closed (connections forced after `graceMs`,
   * by default --shutdown-grace).
   */
  stop(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** Time for sessions; the system's unless a test moves time by hand. */
  readonly clock?: Clock;
}

export async function start(config: Config, options: StartOptions = {}): Promise<Electd> {
  // First: a bad auth file stops the start before anything is opened.
  const authenticator = new Authenticator(config.auth.authFile);
  const { maxElections, maxCandidatesTotal, historyPerElection } = config.limits;
  const limits = { maxElections, maxCandidatesTotal, historyPerElection };
  let app: App | undefined;
  const onError = (err: unknown) =>
    app?.fastify.log.error({ err }, "withdrawing a session's candidates failed");
  const clock = options.clock ?? systemClock;
  const metrics = new Metrics();
  const serving = new ServingState();
  let store: ElectionStore;
  let sessions: Sessions | undefined;
  // Every part uses the store through this: it times commits and counts what they change.
  const measured: MeasuredStoreOptions = {
    metrics,
    sessionState: (id) => sessions?.peek(id)?.state,
    onCommit: (ok) => serving.storeCommitted(ok),
  };
  if (config.store === "etcd") {
    // Loaded only here: the etcd client (gRPC and protobuf runtimes) costs start-up time
    // and memory that a server on the embedded store never uses.
    const [{ EtcdStore }, { LeaseSessions }] = await Promise.all([
      import("./store/etcd.js"),
      import("./session/leases.js"),
    ]);
    const etcd = measuredStore(
      await EtcdStore.open({
        etcd: config.etcd,
        ...limits,
        maxSessions: config.sessions.maxSessions,
        onWatchError: (err) =>
          app?.fastify.log.warn({ err }, "etcd cancelled the watch: reading every election again"),
      }),
      measured,
    );
    store = etcd;
    sessions = new LeaseSessions({
      store: etcd,
      settings: config.sessions,
      limits: config.limits,
      onError,
      onExpired: () => metrics.sessionExpiries.inc(),
      clock,
    });
  } else {
    const unmeasured =
      config.store === "durable"
        ? openDurableStore({
            dataDir: config.dataDir,
            ...limits,
            busyTimeoutMs: config.storeBusyTimeoutMs,
            // The callers hear only the cause; the path and SQLite's code are for the operator.
            onCommitError: ({ message, file, code, error }) =>
              app?.fastify.log.error({ err: error, file, code }, message),
          })
        : createMemoryStore(limits);
    const local = measuredStore(unmeasured, measured);
    store = local;
    sessions = new SessionRegistry({
      store: local,
      settings: config.sessions,
      limits: config.limits,
      onError,
      clock,
    });
  }
  const hub = new WatchHub(store, {
    maxWatches: config.limits.maxWatches,
    mailboxSize: config.limits.watchBuffer,
    directoryBuffer: config.limits.watchElectionsBuffer,
  });
  await sessions.start();
  app = await build({
    config,
    store,
    hub,
    routes: {
      store,
      hub,
      limits: config.limits,
      maxRequestBytes: config.limits.maxRequestBytes,
      sessions,
      sessionSettings: config.sessions,
      sessionsPerIdentity: config.auth.maxSessionsPerIdentity,
      serving,
      metrics,
      authenticator,
    },
    authenticator,
  });
  const { fastify, listener, fronts } = app;
  if (authenticator.enabled) {
    fastify.log.info(
      { authFile: config.auth.authFile, identities: authenticator.size },
      "auth on: every call needs a token or client certificate of the auth file",
    );
  } else {
    fastify.log.warn(
      { host: config.host },
      config.auth.insecureNoAuth
        ? "auth off (--insecure-no-auth): anyone who can reach this port may do anything"
        : "auth off: open to every local process as anonymous admin (give --auth-file to require credentials)",
    );
  }
  // The audit trail: one line per committed change, with who made it (README, "Audit").
  const unaudit = store.subscribe((election) => {
    const record = historyRecord(election);
    if (!record) return;
    fastify.log.info(
      {
        audit: "change",
        identity: record.by ?? "unknown",
        operation: record.cause,
        election: election.name,
        candidates: record.candidates,
        termBefore: record.before.term.toString(),
        termAfter: record.after.term.toString(),
        leaderBefore: record.before.leader,
        leaderAfter: record.after.leader,
        version: record.version,
      },
      "election changed",
    );
  });
  const budget = heapBudget(
    {
      ...config.limits,
      maxSessions: config.sessions.maxSessions,
      historyInHeap: config.store === "memory" ? config.limits.historyPerElection : 0,
    },
    getHeapStatistics().heap_size_limit,
  );
  const fields = { worstCaseBytes: budget.worstCase, heapLimitBytes: budget.heapLimit };
  if (budget.fits) fastify.log.info(fields, budget.message);
  else fastify.log.warn(fields, budget.message);
  try {
    await fastify.listen({ host: config.host, port: config.port });
  } catch (error) {
    // Not listening (the port is taken): the h2c processes have nothing to serve.
    fronts?.destroy();
    throw error;
  }
  const address = fastify.server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `${config.tls ? "https" : "http"}://${host}:${address.port}`;
  let stopping: Promise<void> | undefined;
  return {
    url,
    store,
    hub,
    sessions,
    reloadAuth() {
      authenticator.reload();
      fastify.log.info(
        { authFile: config.auth.authFile, identities: authenticator.size },
        "auth file read again",
      );
    },
    stop(graceMs = config.shutdownGraceMs) {
      stopping ??= (async () => {
        const force = setTimeout(() => {
          listener.destroy();
          fronts?.destroy();
        }, graceMs);
        try {
          await fastify.close();
          await fronts?.stopped();
        } finally {
          unaudit();
          clearTimeout(force);
          await sessions.stop();
          await store.close();
        }
      })();
      return stopping;
    },
  };
}
