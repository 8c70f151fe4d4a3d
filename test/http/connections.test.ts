// No client can wedge the server by holding connections: silent connections, half-sent
// headers and an h2c preface with nothing after it are closed by --headers-timeout, idle
// connections by --idle-timeout (HTTP/2 politely, with GOAWAY; a quiet Watch is not idle),
// HTTP/2 advertises --max-concurrent-streams, and at --max-connections the longest idle
// connection makes room for a new one. Real sockets against a real server on loopback.
import assert from "node:assert/strict";
import { once } from "node:events";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect as http2Connect,
} from "node:http2";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { after, before, describe, it, type TestContext } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ConfigError, loadConfig } from "../../server/config.js";
import { start } from "../../server/electd.js";
import { startServer, testConfig } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";
import { selfSignedCertificate } from "../support/tls.js";

const service = "/atomix.runtime.election.v1.LeaderElection";
const PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/** How long anything the server should do may take on a loaded machine. */
const PATIENCE_MS = 10_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `ready()` holds, checking every 20 ms; fails after PATIENCE_MS. */
async function until(ready: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!(await ready())) {
    if (Date.now() > deadline) assert.fail(`within ${PATIENCE_MS} ms: ${what}`);
    await sleep(20);
  }
}

/** The server's count of open connections, asked on a connection of its own. */
async function openConnections(url: string): Promise<number> {
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    httpRequest(`${url}/healthz`, { agent: false }, resolve).on("error", reject).end(),
  );
  let text = "";
  for await (const chunk of res) text += chunk;
  return (JSON.parse(text) as { connections: number }).connections;
}

/** An HTTP/2 frame, for clients that misbehave on purpose. */
function h2Frame(type: number, flags: number, stream: number, payload = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** Preface, SETTINGS and `GET /healthz` on stream 1, encoded by hand (HPACK, no Huffman). */
const H2_GET_HEALTHZ = Buffer.concat([
  Buffer.from(PREFACE),
  h2Frame(0x4, 0, 0), // SETTINGS
  h2Frame(
    0x1, // HEADERS
    0x5, // END_STREAM | END_HEADERS
    1,
    Buffer.concat([
      Buffer.from([0x82, 0x86]), // :method GET, :scheme http (static table)
      Buffer.from([0x04, 8]), // :path, literal without indexing
      Buffer.from("/healthz"),
      Buffer.from([0x01, 9]), // :authority
      Buffer.from("localhost"),
    ]),
  ),
]);

/** A raw TCP connection, destroyed when the test ends; `received` is what the server sent. */
async function dial(t: TestContext, url: string) {
  const { hostname, port } = new URL(url);
  const socket = netConnect({ host: hostname, port: Number(port) });
  t.after(() => socket.destroy());
  const state = { socket, received: "", closed: false, openedAt: 0 };
  socket.on("data", (chunk: Buffer) => {
    state.received += chunk.toString("latin1");
  });
  socket.on("error", () => {}); // a reset is one way of being closed
  socket.once("close", () => {
    state.closed = true;
  });
  await once(socket, "connect");
  state.openedAt = Date.now();
  return state;
}

/** An HTTP/2 client session (h2c, or h2 with `ca`), destroyed when the test ends. */
async function h2(t: TestContext, url: string, ca?: Buffer) {
  const session = http2Connect(url, ca ? { ca } : {});
  t.after(() => session.destroy());
  const state = { session, goaway: false, closed: false };
  session.on("error", () => {});
  session.once("goaway", () => {
    state.goaway = true;
  });
  session.once("close", () => {
    state.closed = true;
  });
  await once(session, "remoteSettings");
  return state;
}

function envelope(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** A Connect JSON Watch on `session`; `states` fills as the server streams them. */
function watch(session: ClientHttp2Session, name: string) {
  const stream: ClientHttp2Stream = session.request({
    ":method": "POST",
    ":path": `${service}/Watch`,
    "content-type": "application/connect+json",
  });
  stream.end(envelope({ id: { name } }));
  const state = { stream, states: [] as unknown[], ended: false };
  let pending = Buffer.alloc(0);
  stream.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const end = 5 + pending.readUInt32BE(1);
      const flags = pending[0] ?? 0;
      if ((flags & 0x02) === 0) state.states.push(JSON.parse(pending.subarray(5, end).toString()));
      pending = pending.subarray(end);
    }
  });
  stream.on("error", () => {});
  stream.once("close", () => {
    state.ended = true;
  });
  return state;
}

/** A unary Connect JSON call over an existing HTTP/2 session. */
async function call(session: ClientHttp2Session, method: string, body: unknown): Promise<unknown> {
  const stream = session.request({
    ":method": "POST",
    ":path": `${service}/${method}`,
    "content-type": "application/json",
  });
  stream.end(JSON.stringify(body));
  let text = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    text += chunk;
  });
  await once(stream, "end", { signal: AbortSignal.timeout(PATIENCE_MS) });
  return JSON.parse(text);
}

/** A unary Connect JSON call on a connection of its own. */
async function post(url: string, method: string, body: unknown): Promise<unknown> {
  const res = await fetch(`${url}${service}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return res.json();
}

describe("connection settings", () => {
  it("default to 10s for headers, 60s idle, 30s TCP keep-alive, 1000 streams, 10000 connections", () => {
    assert.deepEqual(testConfig().connections, {
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      tcpKeepAliveMs: 30_000,
      maxConcurrentStreams: 1000,
      maxConnections: 10_000,
    });
    const config = loadConfig([], {
      HEADERS_TIMEOUT: "500ms",
      IDLE_TIMEOUT: "5m",
      TCP_KEEPALIVE: "1s",
      MAX_CONCURRENT_STREAMS: "7",
      MAX_CONNECTIONS: "50",
    });
    assert.notEqual(config, "help");
    if (config !== "help") {
      assert.deepEqual(config.connections, {
        headersTimeoutMs: 500,
        idleTimeoutMs: 300_000,
        tcpKeepAliveMs: 1000,
        maxConcurrentStreams: 7,
        maxConnections: 50,
      });
    }
  });

  it("refuses values a socket cannot take, naming the setting", () => {
    for (const [flag, value, env] of [
      ["--headers-timeout", "10", "HEADERS_TIMEOUT"],
      ["--idle-timeout", "0s", "IDLE_TIMEOUT"],
      ["--tcp-keepalive", "500ms", "TCP_KEEPALIVE"],
      ["--max-concurrent-streams", "0", "MAX_CONCURRENT_STREAMS"],
      ["--max-connections", "0", "MAX_CONNECTIONS"],
    ] as const) {
      assert.throws(
        () => loadConfig([flag, value], {}),
        (error: unknown) => error instanceof ConfigError && error.message.includes(env),
        `${flag} ${value}`,
      );
    }
  });
});

describe("connections that send nothing useful are closed", () => {
  it("closes a connection that sends nothing within --headers-timeout", async (t) => {
    const server = await startServer(["--headers-timeout", "500ms"]);
    const silent = await dial(t, server.url);
    await until(() => silent.closed, "the silent connection is closed");
    const waited = Date.now() - silent.openedAt;
    t.diagnostic(`closed after ${waited} ms`);
    assert.ok(waited >= 250, `not before the timeout: closed after ${waited} ms`);
  });

  it("closes a connection whose first request's headers never finish (slowloris)", async (t) => {
    const server = await startServer(["--headers-timeout", "500ms"]);
    const slow = await dial(t, server.url);
    slow.socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    for (let i = 0; !slow.closed && i < PATIENCE_MS / 100; i++) {
      slow.socket.write(`X-Slow-${i}: y\r\n`);
      await sleep(100);
    }
    assert.ok(slow.closed, "closed while still trickling headers");
    assert.doesNotMatch(slow.received, /serving/);
  });

  it("closes a keep-alive connection whose next request's headers never finish", async (t) => {
    // The idle timeout is long, so only the headers timeout can close it.
    const server = await startServer(["--headers-timeout", "500ms", "--idle-timeout", "60s"]);
    const slow = await dial(t, server.url);
    slow.socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await until(() => slow.received.includes("serving"), "the first request is answered");
    slow.socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n");
    for (let i = 0; !slow.closed && i < PATIENCE_MS / 100; i++) {
      slow.socket.write(`X-Slow-${i}: y\r\n`);
      await sleep(100);
    }
    assert.ok(slow.closed, "closed while still trickling headers");
    assert.match(slow.received, /HTTP\/1\.1 408/, "Node's own headers timeout answered 408");
  });

  it("closes an h2c connection that sends the preface, part of it, or no stream", async (t) => {
    const server = await startServer(["--headers-timeout", "500ms"]);
    const preface = await dial(t, server.url);
    preface.socket.write(PREFACE);
    const part = await dial(t, server.url);
    part.socket.write(PREFACE.slice(0, 10));
    const noStream = await h2(t, server.url); // preface and SETTINGS, then nothing
    await until(() => preface.closed, "the connection with only a preface is closed");
    await until(() => part.closed, "the connection with part of a preface is closed");
    await until(() => noStream.closed, "the session that opens no stream is closed");
  });
});

describe("peers that stop reading", () => {
  it("closes an h2c connection whose peer sent the preface and never reads", async (t) => {
    const server = await startServer(["--headers-timeout", "500ms"]);
    const { hostname, port } = new URL(server.url);
    const deaf = netConnect({ host: hostname, port: Number(port) });
    t.after(() => deaf.destroy());
    deaf.on("error", () => {});
    deaf.pause();
    deaf.write(PREFACE);
    await once(deaf, "connect");
    await until(
      async () => (await openConnections(server.url)) === 1,
      "only the asking connection is left open on the server",
    );
  });

  it("closes an idle HTTP/2 session whose peer stopped reading after GOAWAY", async (t) => {
    const server = await startServer(["--idle-timeout", "300ms", "--headers-timeout", "500ms"]);
    const client = await dial(t, server.url);
    client.socket.write(H2_GET_HEALTHZ);
    await until(() => client.received.includes("serving"), "the request is answered");
    client.socket.pause(); // GOAWAY and the server's FIN are never read
    await until(
      async () => (await openConnections(server.url)) === 1,
      "only the asking connection is left open on the server",
    );
  });
});

describe("idle connections", () => {
  it("sends GOAWAY to an idle HTTP/2 session but keeps one whose Watch is quiet", async (t) => {
    const server = await startServer(["--idle-timeout", "500ms"]);
    await post(server.url, "Create", { id: { name: "quiet" } });

    const watching = await h2(t, server.url);
    const w = watch(watching.session, "quiet");
    await until(() => w.states.length === 1, "the Watch sends the current state");

    const idle = await h2(t, server.url);
    const health = idle.session.request({ ":path": "/healthz" });
    health.resume();
    await once(health, "close");
    await until(() => idle.goaway, "the idle session gets GOAWAY");
    await until(() => idle.closed, "the idle session is closed");

    await sleep(2000); // four idle timeouts without a byte on the Watch
    assert.equal(watching.goaway, false, "a session with an open Watch is not idle");
    assert.equal(w.ended, false);
    await post(server.url, "Enter", { id: { name: "quiet" }, candidate: "a" });
    await until(() => w.states.length === 2, "the Watch still delivers changes");
    assert.deepEqual(w.states[1], { term: { term: "1", leader: "a" } });

    w.stream.close();
    await until(() => watching.goaway, "once the Watch ends, the session is idle");
  });

  it("closes an idle HTTP/1.1 keep-alive connection after --idle-timeout", async (t) => {
    const server = await startServer(["--idle-timeout", "500ms"]);
    const client = await dial(t, server.url);
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await until(() => client.received.includes("serving"), "the request is answered");
    assert.match(client.received, /keep-alive/i);
    await until(() => client.closed, "the idle keep-alive connection is closed");
  });

  it("advertises --max-concurrent-streams in its HTTP/2 SETTINGS", async (t) => {
    const server = await startServer(["--max-concurrent-streams", "7"]);
    const client = await h2(t, server.url);
    assert.equal(client.session.remoteSettings.maxConcurrentStreams, 7);
  });
});

describe("--max-connections", () => {
  it("serves a new client while hundreds of silent connections are open", async (t) => {
    // The headers timeout is long: only making room can close the silent connections.
    const server = await startServer(["--max-connections", "50", "--headers-timeout", "5m"]);
    const silent: Awaited<ReturnType<typeof dial>>[] = [];
    for (let batch = 0; batch < 6; batch++) {
      silent.push(...(await Promise.all(Array.from({ length: 50 }, () => dial(t, server.url)))));
    }
    await until(
      () => silent.filter((s) => s.closed).length >= silent.length - 50,
      "all but the newest 50 silent connections are closed to make room",
    );

    const started = Date.now();
    const health = await fetch(`${server.url}/healthz`, {
      signal: AbortSignal.timeout(PATIENCE_MS),
    });
    assert.equal(health.status, 200);
    const { connections } = (await health.json()) as { connections: number };
    assert.ok(connections <= 50, `${connections} connections open on the server`);
    const client = createClient(
      LeaderElection,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    await client.create({ id: { name: "crowded" } }, { timeoutMs: PATIENCE_MS });
    const term = await client.enter({ id: { name: "crowded" }, candidate: "a" });
    assert.equal(term.term?.leader, "a");
    t.diagnostic(`/healthz and two RPCs took ${Date.now() - started} ms`);
  });

  it("refuses a new connection only while every connection has a request in progress", async (t) => {
    const server = await startServer(["--max-connections", "3"]);
    await post(server.url, "Create", { id: { name: "busy" } });
    await sleep(100); // let that request's connection be counted before the watchers arrive
    const sessions = await Promise.all([1, 2, 3].map(() => h2(t, server.url)));
    const watches = sessions.map((s) => watch(s.session, "busy"));
    await until(() => watches.every((w) => w.states.length === 1), "three Watches run");

    const refused = await dial(t, server.url);
    await until(() => refused.closed, "a fourth connection is refused while all three are busy");
    const [first, second] = sessions;
    assert.ok(first && second);
    await call(first.session, "Enter", { id: { name: "busy" }, candidate: "a" });
    await until(() => watches.every((w) => w.states.length === 2), "the Watches carry on");
    assert.ok(sessions.every((s) => !s.goaway && !s.closed));

    watches[1]?.stream.close(); // the second session has nothing in progress now
    await sleep(200);
    const health = await fetch(`${server.url}/healthz`, {
      signal: AbortSignal.timeout(PATIENCE_MS),
    });
    assert.equal(health.status, 200);
    await until(() => second.goaway, "the idle session made room, with GOAWAY");
    assert.ok(!first.goaway && !first.closed, "a session with a Watch stays");
  });
});

describe("shutdown", () => {
  it("closes idle keep-alive and silent connections at once instead of waiting out the grace", async (t) => {
    const electd = await start(testConfig());
    after(() => electd.stop());
    const agent = new HttpAgent({ keepAlive: true });
    t.after(() => agent.destroy());
    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      httpRequest(`${electd.url}/healthz`, { agent }, resolve).on("error", reject).end(),
    );
    res.resume();
    await once(res, "end");
    const silent = await dial(t, electd.url);

    const started = performance.now();
    await electd.stop(); // a 3 s grace
    const took = performance.now() - started;
    t.diagnostic(`stop() took ${took.toFixed(1)} ms`);
    assert.ok(took < 2500, `stopped in ${took.toFixed(0)} ms, not forced after the grace`);
    await until(() => silent.closed, "the silent connection is closed");
  });
});

describe("the same rules over TLS", () => {
  let cert = "";
  let key = "";
  let ca: Buffer = Buffer.alloc(0);
  const dir = tempDir("tls");
  before(async () => {
    ({ cert, key, ca } = await selfSignedCertificate(dir));
  });
  const tlsFlags = () => ["--tls-cert", cert, "--tls-key", key];

  it("closes a connection that never starts its TLS handshake", async (t) => {
    const server = await startServer([...tlsFlags(), "--headers-timeout", "500ms"]);
    const silent = await dial(t, server.url);
    await until(() => silent.closed, "the silent connection is closed");
  });

  it("advertises --max-concurrent-streams and sends GOAWAY to an idle h2 session", async (t) => {
    const server = await startServer([
      ...tlsFlags(),
      "--max-concurrent-streams",
      "7",
      "--idle-timeout",
      "500ms",
    ]);
    const client = await h2(t, server.url, ca);
    assert.equal(client.session.remoteSettings.maxConcurrentStreams, 7);
    const health = client.session.request({ ":path": "/healthz" });
    health.resume();
    await once(health, "close");
    await until(() => client.goaway, "the idle session gets GOAWAY");
  });

  it("closes an idle HTTP/1.1 keep-alive connection after --idle-timeout", async (t) => {
    const server = await startServer([...tlsFlags(), "--idle-timeout", "500ms"]);
    const agent = new HttpsAgent({ keepAlive: true, ca });
    t.after(() => agent.destroy());
    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      httpsRequest(`${server.url}/healthz`, { agent }, resolve).on("error", reject).end(),
    );
    const socket: Socket = res.socket;
    let closed = false;
    socket.once("close", () => {
      closed = true;
    });
    res.resume();
    await once(res, "end");
    await until(() => closed, "the idle keep-alive connection is closed");
  });
});
