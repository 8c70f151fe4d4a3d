// The only place that reads the environment and the command line. Every setting has a
// flag, an environment variable and a default; README's configuration table mirrors
// `settings` below.
import { parseArgs } from "node:util";

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly tls:
    | {
        readonly cert: string;
        readonly key: string;
        /** PEM CA file: clients may identify with a certificate it signed. */
        readonly clientCa: string | undefined;
      }
    | undefined;
  /** Who may do what (README, "Authentication and roles"); see server/auth/. */
  readonly auth: AuthSettings;
  readonly logLevel: string;
  /** Whether each request is logged (two info lines), which costs every request. */
  readonly accessLog: boolean;
  /**
   * Where elections live: "durable" (SQLite in dataDir), "memory" (lost on exit) or "etcd"
   * (an etcd cluster several servers share).
   */
  readonly store: "durable" | "memory" | "etcd";
  readonly etcd: EtcdSettings;
  readonly dataDir: string;
  /** How long a commit may wait for another process's lock on the data file. */
  readonly storeBusyTimeoutMs: number;
  readonly limits: {
    readonly maxNameBytes: number;
    readonly maxTags: number;
    readonly maxRequestBytes: number;
    readonly maxCandidates: number;
    readonly maxCandidatesTotal: number;
    readonly maxElections: number;
    readonly maxWatches: number;
    readonly watchBuffer: number;
    readonly watchElectionsBuffer: number;
    readonly maxPageSize: number;
    readonly historyPerElection: number;
    readonly summaryCacheBytes: number;
  };
  /** Smallest response compressed for a client that accepts gzip or br. */
  readonly compressMinBytes: number;

  readonly sessions: SessionSettings;
  readonly connections: ConnectionSettings;
  /** On SIGTERM/SIGINT, how long requests in progress may take before connections are cut. */
  readonly shutdownGraceMs: number;
  /** Processes that serve h2c connections for this one (http/fronts.ts); 0: none. */
  readonly h2cProcesses: number;
}

/** Authentication, and the checks that keep a browser from being turned against electd. */
export interface AuthSettings {
  /** The auth file (JSON): identities, their token hashes or certificate subjects, grants. */
  readonly authFile: string | undefined;
  /** Most open sessions one identity may hold; only with an auth file. */
  readonly maxSessionsPerIdentity: number;
  /** Most concurrent watches one identity may hold; only with an auth file. */
  readonly maxWatchesPerIdentity: number;
  /** Serve without auth on an address other than loopback (refused otherwise). */
  readonly insecureNoAuth: boolean;
  /** Host header values accepted besides the listening address and localhost. */
  readonly allowedHosts: readonly string[];
  /** Origins a browser may call from (CORS); none: same origin only. */
  readonly corsOrigins: readonly string[];
}

/** Session TTLs in milliseconds (API.md section 5). */
export interface SessionSettings {
  readonly ttlMs: number;
  readonly minTtlMs: number;
  readonly maxTtlMs: number;
  readonly maxSessions: number;
}

/** How to reach etcd when `store` is "etcd". */
export interface EtcdSettings {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly cacert: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** From the environment only: a flag would show them to every user of `ps`. */
  readonly username: string | undefined;
  readonly password: string | undefined;
  /** Longest wait for one etcd call before the caller gets `unavailable`. */
  readonly timeoutMs: number;
  /** Most operations in one transaction: etcd's own --max-txn-ops (group commit). */
  readonly maxTxnOps: number;
}

/** What one client connection may hold and for how long; durations in milliseconds. */
export interface ConnectionSettings {
  /** From accept to a complete first request; also bounds every HTTP/1.1 request's headers. */
  readonly headersTimeoutMs: number;
  /** A connection with no request in progress is closed after this long. */
  readonly idleTimeoutMs: number;
  /** Silence on a connection before TCP keep-alive probes start. */
  readonly tcpKeepAliveMs: number;
  readonly maxConcurrentStreams: number;
  readonly maxConnections: number;
}

interface Setting {
  readonly flag: string;
  readonly env: string;
  readonly fallback: string;
  readonly help: string;
}

/** Every setting; `help` is what --help prints. */
export const settings = {
  host: { flag: "host", env: "HOST", fallback: "127.0.0.1", help: "address to listen on" },
  port: { flag: "port", env: "PORT", fallback: "8080", help: "port for every protocol" },
  tlsCert: {
    flag: "tls-cert",
    env: "TLS_CERT",
    fallback: "",
    help: "PEM certificate file: serve TLS (h2 and http/1.1 by ALPN)",
  },
  tlsKey: {
    flag: "tls-key",
    env: "TLS_KEY",
    fallback: "",
    help: "PEM private key file for --tls-cert",
  },
  tlsClientCa: {
    flag: "tls-client-ca",
    env: "TLS_CLIENT_CA",
    fallback: "",
    help: "PEM CA file: clients may identify with a certificate it signed (needs --tls-cert and --auth-file)",
  },
  authFile: {
    flag: "auth-file",
    env: "AUTH_FILE",
    fallback: "",
    help: "JSON file of identities (token hashes, certificate subjects) and their roles; reread on SIGHUP",
  },
  insecureNoAuth: {
    flag: "insecure-no-auth",
    env: "INSECURE_NO_AUTH",
    fallback: "false",
    help: "serve without --auth-file on an address other than loopback (refused otherwise)",
  },
  allowedHosts: {
    flag: "allowed-hosts",
    env: "ALLOWED_HOSTS",
    fallback: "",
    help: "comma-separated names accepted in the Host header besides the listening address and localhost",
  },
  corsOrigin: {
    flag: "cors-origin",
    env: "CORS_ORIGIN",
    fallback: "",
    help: "comma-separated origins whose pages may call electd (CORS); unset: same origin only",
  },
  logLevel: {
    flag: "log-level",
    env: "LOG_LEVEL",
    fallback: "info",
    help: "fatal, error, warn, info, debug, trace or silent",
  },
  accessLog: {
    flag: "access-log",
    env: "ACCESS_LOG",
    fallback: "off",
    help: "on: log each request as it arrives and as it completes (at info); off: do not",
  },
  store: {
    flag: "store",
    env: "STORE",
    fallback: "durable",
    help: "durable (kept in --data-dir across restarts), memory (lost on exit) or etcd (a cluster several servers share)",
  },
  dataDir: {
    flag: "data-dir",
    env: "DATA_DIR",
    fallback: "./data",
    help: "directory of the durable store, created if missing",
  },
  etcdEndpoints: {
    flag: "etcd-endpoints",
    env: "ETCD_ENDPOINTS",
    fallback: "http://127.0.0.1:2379",
    help: "comma-separated etcd client URLs, for --store etcd",
  },
  etcdPrefix: {
    flag: "etcd-prefix",
    env: "ETCD_PREFIX",
    fallback: "/electd/",
    help: "every etcd key electd writes starts with this",
  },
  etcdCacert: {
    flag: "etcd-cacert",
    env: "ETCD_CACERT",
    fallback: "",
    help: "PEM file of the CA that signed etcd's certificate (etcd over TLS)",
  },
  etcdCert: {
    flag: "etcd-cert",
    env: "ETCD_CERT",
    fallback: "",
    help: "PEM client certificate for etcd",
  },
  etcdKey: {
    flag: "etcd-key",
    env: "ETCD_KEY",
    fallback: "",
    help: "PEM private key for --etcd-cert",
  },
  etcdTimeout: {
    flag: "etcd-timeout",
    env: "ETCD_TIMEOUT",
    fallback: "5s",
    help: "longest wait for one etcd call before the caller gets unavailable",
  },
  etcdMaxTxnOps: {
    flag: "etcd-max-txn-ops",
    env: "ETCD_MAX_TXN_OPS",
    fallback: "128",
    help: "most operations electd puts in one etcd transaction when it commits several changes together: etcd's --max-txn-ops",
  },
  storeBusyTimeout: {
    flag: "store-busy-timeout",
    env: "STORE_BUSY_TIMEOUT",
    fallback: "50ms",
    help: "longest wait for another process's lock on the data file before a write fails (at most 1s)",
  },
  maxNameBytes: {
    flag: "max-name-bytes",
    env: "MAX_NAME_BYTES",
    fallback: "256",
    help: "most UTF-8 bytes in an election name, candidate or tag",
  },
  maxTags: { flag: "max-tags", env: "MAX_TAGS", fallback: "4", help: "most tags on one election" },
  maxRequestBytes: {
    flag: "max-request-bytes",
    env: "MAX_REQUEST_BYTES",
    fallback: "65536",
    help: "largest request message",
  },
  maxCandidates: {
    flag: "max-candidates",
    env: "MAX_CANDIDATES",
    fallback: "100",
    help: "most candidates (leader + queue) in one election",
  },
  maxCandidatesTotal: {
    flag: "max-candidates-total",
    env: "MAX_CANDIDATES_TOTAL",
    fallback: "250000",
    help: "most candidates in all elections together on this server",
  },
  maxElections: {
    flag: "max-elections",
    env: "MAX_ELECTIONS",
    fallback: "100000",
    help: "most elections on this server",
  },
  maxWatches: {
    flag: "max-watches",
    env: "MAX_WATCHES",
    fallback: "5000",
    help: "most concurrent watches on this server",
  },
  watchBuffer: {
    flag: "watch-buffer",
    env: "WATCH_BUFFER",
    fallback: "16",
    help: "states queued per watcher before the newest replaces the last queued",
  },
  watchElectionsBuffer: {
    flag: "watch-elections-buffer",
    env: "WATCH_ELECTIONS_BUFFER",
    fallback: "250",
    help: "elections with unread changes per WatchElections stream before it gets a fresh snapshot instead",
  },
  sessionTtl: {
    flag: "session-ttl",
    env: "SESSION_TTL",
    fallback: "10s",
    help: "TTL of a session opened without one (e.g. 500ms, 10s, 5m)",
  },
  sessionTtlMin: {
    flag: "session-ttl-min",
    env: "SESSION_TTL_MIN",
    fallback: "1s",
    help: "shortest TTL a session may ask for",
  },
  sessionTtlMax: {
    flag: "session-ttl-max",
    env: "SESSION_TTL_MAX",
    fallback: "5m",
    help: "longest TTL a session may ask for",
  },
  maxSessions: {
    flag: "max-sessions",
    env: "MAX_SESSIONS",
    fallback: "100000",
    help: "most open sessions on this server",
  },
  maxSessionsPerIdentity: {
    flag: "max-sessions-per-identity",
    env: "MAX_SESSIONS_PER_IDENTITY",
    fallback: "10000",
    help: "most open sessions one identity may hold (with --auth-file)",
  },
  maxWatchesPerIdentity: {
    flag: "max-watches-per-identity",
    env: "MAX_WATCHES_PER_IDENTITY",
    fallback: "500",
    help: "most concurrent watches one identity may hold (with --auth-file)",
  },
  maxPageSize: {
    flag: "max-page-size",
    env: "MAX_PAGE_SIZE",
    fallback: "1000",
    help: "most elections in one ListElections page, WatchElections response or WatchElectionList request",
  },
  historyPerElection: {
    flag: "history-per-election",
    env: "HISTORY_PER_ELECTION",
    fallback: "1000",
    help: "changes kept in each election's history, the oldest going first (0: no history)",
  },
  summaryCacheBytes: {
    flag: "summary-cache-bytes",
    env: "SUMMARY_CACHE_BYTES",
    fallback: "33554432",
    help: "memory for encoded election summaries reused by directory responses (0: none)",
  },

  compressMinBytes: {
    flag: "compress-min-bytes",
    env: "COMPRESS_MIN_BYTES",
    fallback: "65536",
    help: "smallest response compressed for a client that accepts gzip or br",
  },
  headersTimeout: {
    flag: "headers-timeout",
    env: "HEADERS_TIMEOUT",
    fallback: "10s",
    help: "time a connection has to send a request's headers (HTTP/2: preface and first stream)",
  },
  idleTimeout: {
    flag: "idle-timeout",
    env: "IDLE_TIMEOUT",
    fallback: "60s",
    help: "a connection with no request in progress is closed after this long",
  },
  tcpKeepalive: {
    flag: "tcp-keepalive",
    env: "TCP_KEEPALIVE",
    fallback: "30s",
    help: "silence before TCP keep-alive probes look for a vanished peer (1s to 9h)",
  },
  maxConcurrentStreams: {
    flag: "max-concurrent-streams",
    env: "MAX_CONCURRENT_STREAMS",
    fallback: "1000",
    help: "most concurrent HTTP/2 streams (calls and watches) on one connection",
  },
  maxConnections: {
    flag: "max-connections",
    env: "MAX_CONNECTIONS",
    fallback: "10000",
    help: "most open connections; at the cap the longest idle one makes room",
  },
  h2cProcesses: {
    flag: "h2c-processes",
    env: "H2C_PROCESSES",
    fallback: "0",
    help: "processes that serve HTTP/2 cleartext (h2c) connections for this one, on other cores (0: none)",
  },
  shutdownGrace: {
    flag: "shutdown-grace",
    env: "SHUTDOWN_GRACE",
    fallback: "3s",
    help: "on SIGTERM or SIGINT, longest wait for requests in progress before connections are cut",
  },
} as const satisfies Record<string, Setting>;

type Key = keyof typeof settings;

const MAX_STORE_BUSY_TIMEOUT_MS = 1000;

export class ConfigError extends Error {}

export function usage(): string {
  const width = Math.max(...Object.values(settings).map((s) => s.flag.length));
  const rows = Object.values(settings).map(
    (s) =>
      `  --${s.flag.padEnd(width)} ${s.env.padEnd(22)} ${s.help} (default: ${s.fallback || "unset"})`,
  );
  return [
    "electd: leader elections over Connect, gRPC and gRPC-Web on one port",
    "",
    "usage: electd serve [flags]   (from a clone: npm start -- [flags])",
    "",
    `  ${"flag".padEnd(width + 2)} ${"environment".padEnd(22)} meaning`,
    ...rows,
    `  --${"help".padEnd(width)} ${"".padEnd(22)} print this and exit`,
    "",
    "  ETCD_USERNAME and ETCD_PASSWORD (environment only): etcd's user and password",
  ].join("\n");
}

/** Whether `host` is a loopback address or name: reachable from this machine only. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127(\.\d{1,3}){3}$/.test(bare);
}

/**
 * Whole milliseconds from a duration such as 500ms, 10s, 5m or 1h; undefined when the text is
 * not one or is outside what one Node timer can wait (1 ms to ~24.8 days).
 */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match?.[2] ?? ""];
  const value = match && unit ? Number(match[1]) * unit : Number.NaN;
  return value >= 1 && value <= 2_147_483_647 ? value : undefined;
}

/** Reads flags first, then the environment, then defaults. Throws ConfigError on bad values. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv): Config | "help" {
  const options = Object.fromEntries(
    Object.values(settings).map((s) => [s.flag, { type: "string" as const }]),
  );
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      // --insecure-no-auth is a switch: given alone it means true.
      options: {
        ...options,
        [settings.insecureNoAuth.flag]: { type: "boolean" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n\n${usage()}`);
  }
  if (values.help) return "help";

  const raw = (key: Key): string => {
    const s = settings[key];
    const fromFlag = values[s.flag];
    if (typeof fromFlag === "string") return fromFlag;
    if (typeof fromFlag === "boolean") return String(fromFlag);
    return env[s.env] ?? s.fallback;
  };
  const int = (key: Key, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const text = raw(key);
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      const s = settings[key];
      throw new ConfigError(
        `--${s.flag} / ${s.env}: "${text}" is not a whole number from ${min} to ${max}`,
      );
    }
    return value;
  };

  const duration = (key: Key): number => {
    const text = raw(key);
    const value = parseDuration(text);
    if (value === undefined) {
      const s = settings[key];
      throw new ConfigError(
        `--${s.flag} / ${s.env}: "${text}" is not a duration such as 500ms, 10s, 5m or 1h`,
      );
    }
    return value;
  };
  const sessions: SessionSettings = {
    ttlMs: duration("sessionTtl"),
    minTtlMs: duration("sessionTtlMin"),
    maxTtlMs: duration("sessionTtlMax"),
    maxSessions: int("maxSessions", 1),
  };
  if (!(sessions.minTtlMs <= sessions.ttlMs && sessions.ttlMs <= sessions.maxTtlMs)) {
    throw new ConfigError(
      "--session-ttl (SESSION_TTL) must lie between --session-ttl-min and --session-ttl-max",
    );
  }

  const connections: ConnectionSettings = {
    headersTimeoutMs: duration("headersTimeout"),
    idleTimeoutMs: duration("idleTimeout"),
    tcpKeepAliveMs: duration("tcpKeepalive"),
    // RFC 9113 allows up to 2^31-1 stream ids per side, so more could never be used.
    maxConcurrentStreams: int("maxConcurrentStreams", 1, 2_147_483_647),
    maxConnections: int("maxConnections", 1),
  };
  // The kernel takes whole seconds, from 1 to 32767 (Linux refuses 0 and more than that).
  if (!(connections.tcpKeepAliveMs >= 1000 && connections.tcpKeepAliveMs <= 9 * 3_600_000)) {
    throw new ConfigError("--tcp-keepalive / TCP_KEEPALIVE: must be from 1s to 9h");
  }

  const cert = raw("tlsCert");
  const key = raw("tlsKey");
  if ((cert === "") !== (key === "")) {
    throw new ConfigError("--tls-cert and --tls-key (TLS_CERT, TLS_KEY) must be given together");
  }
  const clientCa = raw("tlsClientCa");
  const authFile = raw("authFile");
  if (clientCa !== "" && (cert === "" || authFile === "")) {
    throw new ConfigError(
      "--tls-client-ca (TLS_CLIENT_CA) needs --tls-cert and --auth-file: certificates identify, the auth file grants",
    );
  }
  const insecure = raw("insecureNoAuth");
  if (insecure !== "true" && insecure !== "false") {
    throw new ConfigError(
      `--insecure-no-auth / INSECURE_NO_AUTH: "${insecure}" is not true or false`,
    );
  }
  const list = (key: Key) =>
    raw(key)
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
  const corsOrigins = list("corsOrigin");
  for (const origin of corsOrigins) {
    if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
      throw new ConfigError(
        `--cors-origin / CORS_ORIGIN: "${origin}" is not an origin such as https://ops.example.com`,
      );
    }
  }
  const auth: AuthSettings = {
    authFile: authFile === "" ? undefined : authFile,
    maxSessionsPerIdentity: int("maxSessionsPerIdentity", 1),
    maxWatchesPerIdentity: int("maxWatchesPerIdentity", 1),
    insecureNoAuth: insecure === "true",
    allowedHosts: list("allowedHosts").map((host) => host.toLowerCase()),
    corsOrigins,
  };
  const host = raw("host");
  // Redis's protected mode: an open server is a development default, on loopback only.
  if (auth.authFile === undefined && !auth.insecureNoAuth && !isLoopback(host)) {
    throw new ConfigError(
      `--host ${host} is reachable from other machines, and without --auth-file anyone there could change any election: give --auth-file (README, "Authentication and roles"), or --insecure-no-auth to serve it open anyway`,
    );
  }
  const accessLog = raw("accessLog");
  if (accessLog !== "on" && accessLog !== "off") {
    throw new ConfigError(`--access-log / ACCESS_LOG: "${accessLog}" is not on or off`);
  }
  const store = raw("store");
  if (store !== "durable" && store !== "memory" && store !== "etcd") {
    throw new ConfigError(`--store / STORE: "${store}" is not durable, memory or etcd`);
  }
  const endpoints = raw("etcdEndpoints")
    .split(",")
    .map((e) => e.trim())
    .filter((e) => e !== "");
  for (const endpoint of endpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
      throw new ConfigError(
        `--etcd-endpoints / ETCD_ENDPOINTS: "${endpoint}" is not a URL such as http://127.0.0.1:2379`,
      );
    }
  }
  if (endpoints.length === 0) {
    throw new ConfigError("--etcd-endpoints / ETCD_ENDPOINTS: at least one endpoint is needed");
  }
  const etcdPrefix = raw("etcdPrefix");
  if (!etcdPrefix.endsWith("/")) {
    throw new ConfigError(`--etcd-prefix / ETCD_PREFIX: "${etcdPrefix}" must end with "/"`);
  }
  const optional = (key: Key) => (raw(key) === "" ? undefined : raw(key));
  if ((raw("etcdCert") === "") !== (raw("etcdKey") === "")) {
    throw new ConfigError(
      "--etcd-cert and --etcd-key (ETCD_CERT, ETCD_KEY) must be given together",
    );
  }
  if ((env.ETCD_USERNAME === undefined) !== (env.ETCD_PASSWORD === undefined)) {
    throw new ConfigError("ETCD_USERNAME and ETCD_PASSWORD must be given together");
  }
  const etcd: EtcdSettings = {
    endpoints,
    prefix: etcdPrefix,
    cacert: optional("etcdCacert"),
    cert: optional("etcdCert"),
    key: optional("etcdKey"),
    username: env.ETCD_USERNAME,
    password: env.ETCD_PASSWORD,
    timeoutMs: duration("etcdTimeout"),
    maxTxnOps: int("etcdMaxTxnOps", 1),
  };
  const dataDir = raw("dataDir");
  if (dataDir === "") throw new ConfigError("--data-dir / DATA_DIR: must not be empty");
  // The wait blocks the event loop: every call, keep-alive and session timer waits with it.
  const storeBusyTimeoutMs = duration("storeBusyTimeout");
  if (storeBusyTimeoutMs > MAX_STORE_BUSY_TIMEOUT_MS) {
    throw new ConfigError(
      `--store-busy-timeout / STORE_BUSY_TIMEOUT: at most 1s, since the whole server waits with it`,
    );
  }
  const h2cProcesses = int("h2cProcesses", 0, 64);
  if (h2cProcesses > 0 && cert !== "") {
    throw new ConfigError(
      "--h2c-processes / H2C_PROCESSES: serves cleartext HTTP/2 only, and with --tls-cert every connection is TLS",
    );
  }
  if (h2cProcesses > 0 && (accessLog === "on" || ["debug", "trace"].includes(raw("logLevel")))) {
    throw new ConfigError(
      "--h2c-processes / H2C_PROCESSES: not with --access-log on or --log-level debug or trace, where every request is served by this process to be logged",
    );
  }
  return {
    host,
    port: int("port", 0, 65535),
    tls: cert === "" ? undefined : { cert, key, clientCa: clientCa === "" ? undefined : clientCa },
    auth,
    logLevel: raw("logLevel"),
    accessLog: accessLog === "on",
    store,
    etcd,
    dataDir,
    storeBusyTimeoutMs,
    limits: {
      maxNameBytes: int("maxNameBytes", 1),
      maxTags: int("maxTags", 0),
      maxRequestBytes: int("maxRequestBytes", 1024),
      maxCandidates: int("maxCandidates", 1),
      maxCandidatesTotal: int("maxCandidatesTotal", 1),
      maxElections: int("maxElections", 1),
      maxWatches: int("maxWatches", 1),
      watchBuffer: int("watchBuffer", 1),
      watchElectionsBuffer: int("watchElectionsBuffer", 1),
      maxPageSize: int("maxPageSize", 1),
      historyPerElection: int("historyPerElection", 0),
      summaryCacheBytes: int("summaryCacheBytes", 0),
    },
    compressMinBytes: int("compressMinBytes", 0),

    sessions,
    connections,
    shutdownGraceMs: duration("shutdownGrace"),
    h2cProcesses,
  };
}
