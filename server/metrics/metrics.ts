// Every Prometheus metric electd exports, in one registry per server (prom-client). Counters
// and histograms are fed where things happen (requests.ts, store.ts); gauges are read from
// the server's own counts when /metrics is scraped, so they cost nothing in between.
// README's "Metrics" section lists every name below.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { CallTallies } from "./tally.js";

/** Counts read at scrape time. */
export interface MetricSources {
  elections(): number;
  sessionsOpen(): number;
  sessionsEnding(): number;
  watches(): number;
  connections(): number;
}

/** Seconds: from well under a millisecond (a memory-store call) to a minute (a Watch). */
const DURATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];
/** Seconds: commits are in-memory (microseconds) or an fsync (milliseconds). */
const COMMIT_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export class Metrics {
  readonly registry = new Registry();
  private sources: MetricSources | undefined;

  /** What each call's code adds to: read into electd_rpc_requests_total when scraped. */
  readonly calls = new CallTallies();

  private readonly requests = new Counter({
    name: "electd_rpc_requests_total",
    help: "RPCs completed, by service, method, protocol (connect, grpc, grpc-web) and code",
    labelNames: ["service", "method", "protocol", "code"] as const,
    registers: [this.registry],
    collect: () => this.countCalls(),
  });

  readonly requestDuration = new Histogram({
    name: "electd_rpc_request_duration_seconds",
    help: "Time from an RPC's request to the end of its response (a stream's whole life)",
    labelNames: ["service", "method", "protocol"] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly leaderChanges = new Counter({
    name: "electd_leader_changes_total",
    help: "Times an election's leader changed (another candidate or none leads), by cause: the RPC, session-expired, session-closed or election-deleted",
    labelNames: ["cause"] as const,
    registers: [this.registry],
  });

  /** Kept up to date by the measured store, from each published change. */
  readonly candidates = new Gauge({
    name: "electd_candidates",
    help: "Candidates (leaders and queued) in all elections",
    registers: [this.registry],
  });

  readonly sessionExpiries = new Counter({
    name: "electd_session_expiries_total",
    help: "Sessions that expired (not kept alive within their TTL); with --store etcd, counted by one server of the cluster",
    registers: [this.registry],
  });

  readonly commitDuration = new Histogram({
    name: "electd_store_commit_duration_seconds",
    help: "Time the store took to commit a change, by operation, failed commits included",
    labelNames: ["operation"] as const,
    buckets: COMMIT_BUCKETS,
    registers: [this.registry],
  });

  readonly commitFailures = new Counter({
    name: "electd_store_commit_failures_total",
    help: "Store commits that failed (disk full, data file locked, I/O error), by operation",
    labelNames: ["operation"] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const gauges: [name: string, help: string, read: (s: MetricSources) => number][] = [
      ["electd_elections", "Elections on this server", (s) => s.elections()],
      ["electd_sessions_open", "Open sessions", (s) => s.sessionsOpen()],
      [
        "electd_sessions_ending",
        "Ended sessions whose candidates are still being withdrawn (non-zero only while the store cannot commit)",
        (s) => s.sessionsEnding(),
      ],
      ["electd_watches", "Open Watch and WatchElections streams", (s) => s.watches()],
      ["electd_connections", "Open client connections", (s) => s.connections()],
    ];
    const metrics = this;
    for (const [name, help, read] of gauges) {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          if (metrics.sources) this.set(read(metrics.sources));
        },
      });
    }
  }

  /** electd_rpc_requests_total, from the tallies. */
  private countCalls(): void {
    this.requests.reset();
    for (const { labels, codes } of this.calls) {
      for (const [code, count] of codes) this.requests.inc({ ...labels, code }, count);
    }
  }

  /** Where the gauges read from, once the server's parts exist. */
  observe(sources: MetricSources): void {
    this.sources = sources;
  }
}
