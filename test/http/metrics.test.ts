// GET /metrics against a real server: calls are made over Connect, gRPC and gRPC-Web, then
// the scrape is parsed (Prometheus text format) and its counts compared with the calls.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { start } from "../../server/electd.js";
import { startServer, testConfig } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

const ELECTION = "atomix.runtime.election.v1.LeaderElection";
const PATIENCE_MS = 10_000;

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/**
 * The samples of a scrape in the Prometheus text format (prom-client writes it but has no
 * parser): `name{label="value",...} number`, one per line; comments skipped.
 */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `a sample line: ${line}`);
    const labels: Record<string, string> = Object.create(null);
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      if (key !== undefined && value !== undefined) labels[key] = value.replace(/\\(.)/g, "$1");
    }
    samples.push({ name: match[1] ?? "", labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parse(await res.text());
}

/** The value of the one sample with this name and these labels (0 when absent). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `one sample of ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(ready: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!(await ready())) {
    if (Date.now() > deadline) assert.fail(`within ${PATIENCE_MS} ms: ${what}`);
    await sleep(20);
  }
}

// Started at the top level: startServer stops it when this file ends.
const server = await startServer();
const grpcSessions = new Http2SessionManager(server.url);
after(() => grpcSessions.abort());
const transports = new Map<string, Transport>([
  ["connect", createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
  ["grpc", createGrpcTransport({ baseUrl: server.url, sessionManager: grpcSessions })],
  ["grpc-web", createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
]);
const transport = (protocol: string) => {
  const t = transports.get(protocol);
  assert.ok(t);
  return t;
};

describe("GET /metrics", () => {
  it("counts requests by service, method, protocol and code, and times them", async () => {
    for (const protocol of ["connect", "grpc", "grpc-web"]) {
      const client = createClient(LeaderElection, transport(protocol));
      const id = { name: `e-${protocol}` };
      await client.create({ id });
      await client.enter({ id, candidate: "a" });
      await client.enter({ id, candidate: "b" });
      await client.anoint({ id, candidate: "b" });
      await client.getTerm({ id });
      await assert.rejects(client.getTerm({ id: { name: "nope" } }), (e: unknown) => {
        return ConnectError.from(e).code === Code.NotFound;
      });
      await assert.rejects(client.enter({ id, candidate: "" }), (e: unknown) => {
        return ConnectError.from(e).code === Code.InvalidArgument;
      });
    }
    const samples = await scrape(server.url);
    for (const protocol of ["connect", "grpc", "grpc-web"]) {
      const count = (method: string, code: string) =>
        value(samples, "electd_rpc_requests_total", {
          service: ELECTION,
          method,
          protocol,
          code,
        });
      assert.equal(count("Create", "ok"), 1, protocol);
      assert.equal(count("Enter", "ok"), 2, protocol);
      assert.equal(count("Enter", "invalid_argument"), 1, protocol);
      assert.equal(count("Anoint", "ok"), 1, protocol);
      assert.equal(count("GetTerm", "ok"), 1, protocol);
      assert.equal(count("GetTerm", "not_found"), 1, protocol);
      const timed = { service: ELECTION, method: "Enter", protocol };
      assert.equal(value(samples, "electd_rpc_request_duration_seconds_count", timed), 3);
      assert.equal(
        value(samples, "electd_rpc_request_duration_seconds_bucket", { ...timed, le: "+Inf" }),
        3,
      );
      assert.ok(value(samples, "electd_rpc_request_duration_seconds_sum", timed) > 0);
    }
    // Each first Enter and each Anoint put a new leader in.
    assert.equal(value(samples, "electd_leader_changes_total", { cause: "Enter" }), 3);
    assert.equal(value(samples, "electd_leader_changes_total", { cause: "Anoint" }), 3);
    assert.equal(value(samples, "electd_elections"), 3);
    assert.equal(value(samples, "electd_candidates"), 6);
    // Commits: 3 creates and 9 updates (the refused Enter never reached the store).
    const commits = (operation: string) =>
      value(samples, "electd_store_commit_duration_seconds_count", { operation });
    assert.equal(commits("create"), 3);
    assert.equal(commits("update"), 9);
    assert.equal(value(samples, "electd_store_commit_failures_total", { operation: "update" }), 0);

    // The counts are added up as calls end and read when scraped: a second scrape counts
    // nothing twice, and a call made since is counted once.
    const getTerms = (scraped: Sample[]) =>
      value(scraped, "electd_rpc_requests_total", {
        service: ELECTION,
        method: "GetTerm",
        protocol: "grpc",
        code: "ok",
      });
    assert.equal(getTerms(await scrape(server.url)), 1);
    await createClient(LeaderElection, transport("grpc")).getTerm({ id: { name: "e-grpc" } });
    assert.equal(getTerms(await scrape(server.url)), 2);
  });

  it("counts open watches on each protocol, and a watch the client leaves as canceled", async () => {
    const controllers: AbortController[] = [];
    const ends: Promise<unknown>[] = [];
    for (const protocol of ["connect", "grpc", "grpc-web"]) {
      const client = createClient(LeaderElection, transport(protocol));
      const controller = new AbortController();
      controllers.push(controller);
      const it = client
        .watch({ id: { name: `e-${protocol}` } }, { signal: controller.signal })
        [Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false);
      ends.push(it.next().catch(() => undefined));
    }
    assert.equal(value(await scrape(server.url), "electd_watches"), 3);
    for (const controller of controllers) controller.abort();
    await Promise.all(ends);
    await until(async () => {
      const samples = await scrape(server.url);
      return ["connect", "grpc", "grpc-web"].every(
        (protocol) =>
          value(samples, "electd_rpc_requests_total", {
            service: ELECTION,
            method: "Watch",
            protocol,
            code: "canceled",
          }) === 1,
      );
    }, "each Watch counted as canceled");
    assert.equal(value(await scrape(server.url), "electd_watches"), 0);
  });

  it("counts leader changes by session expiry, session close and deletion, and sessions", async () => {
    const client = createClient(LeaderElection, transport("connect"));
    const sessions = createClient(SessionService, transport("connect"));
    const admin = createClient(ElectionAdminService, transport("grpc"));
    const bound = async (name: string, candidate: string, ttlMs: number) => {
      const { sessionId } = await sessions.openSession({ ttl: durationFromMs(ttlMs) });
      await client.create({ id: { name } });
      const headers = { "electd-session": sessionId };
      await client.enter({ id: { name }, candidate }, { headers });
      return sessionId;
    };
    await bound("expiring", "x", 1000);
    const closing = await bound("closing", "y", 60_000);
    let samples = await scrape(server.url);
    assert.equal(value(samples, "electd_sessions_open"), 2);
    assert.equal(value(samples, "electd_sessions_ending"), 0);
    assert.equal(
      value(samples, "electd_store_commit_duration_seconds_count", { operation: "put_session" }),
      2,
    );

    await sessions.closeSession({ sessionId: closing });
    await admin.deleteElection({ name: "e-connect" });
    await until(
      async () => value(await scrape(server.url), "electd_session_expiries_total") === 1,
      "the session left without keep-alives expires",
    );
    samples = await scrape(server.url);
    const changes = (cause: string) => value(samples, "electd_leader_changes_total", { cause });
    assert.equal(changes("session-expired"), 1);
    assert.equal(changes("session-closed"), 1);
    assert.equal(changes("election-deleted"), 1);
    assert.equal(changes("Enter"), 5);
    assert.equal(value(samples, "electd_sessions_open"), 0);
    assert.equal(value(samples, "electd_elections"), 4); // e-grpc, e-grpc-web, expiring, closing
    assert.equal(value(samples, "electd_candidates"), 4);
    const commits = (operation: string) =>
      value(samples, "electd_store_commit_duration_seconds_count", { operation });
    assert.equal(commits("delete"), 1);
    assert.equal(commits("delete_session"), 2);
  });

  it("counts the candidates a durable store holds when it starts", async () => {
    const dataDir = tempDir("metrics");
    const flags = ["--store", "durable", "--data-dir", dataDir];
    const first = await start(testConfig(flags));
    const client = createClient(
      LeaderElection,
      createConnectTransport({ baseUrl: first.url, httpVersion: "1.1" }),
    );
    for (const name of ["p", "q"]) {
      await client.create({ id: { name } });
      for (const candidate of ["a", "b", "c"]) await client.enter({ id: { name }, candidate });
    }
    await client.withdraw({ id: { name: "q" }, candidate: "a" });
    assert.equal(value(await scrape(first.url), "electd_candidates"), 5);
    await first.stop();
    const again = await startServer(flags);
    assert.equal(value(await scrape(again.url), "electd_candidates"), 5);
    assert.equal(value(await scrape(again.url), "electd_elections"), 2);
  });

  it("exports Node's process metrics", async () => {
    const samples = await scrape(server.url);
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes"]) {
      assert.ok(
        samples.some((s) => s.name === name),
        name,
      );
    }
    assert.ok(samples.some((s) => s.name.startsWith("nodejs_heap_size_used_bytes")));
  });
});
