// Node's own HTTP/1.1 timeouts hold on the one port: a keep-alive connection whose next
// request's headers never finish is answered 408 and closed, an idle one is closed after
// --idle-timeout, and shutdown closes idle keep-alive connections at once. HTTP/2 advertises
// --max-concurrent-streams. Real sockets against a real server on loopback.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { connect as http2Connect } from "node:http2";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";
import { promisify } from "node:util";
import { ConfigError, loadConfig } from "../../server/config.js";
import { start } from "../../server/electd.js";
import { startServer, testConfig } from "../support/server.js";

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

describe("connection settings", () => {
  it("default to 10s for headers, 60s idle, 30s TCP keep-alive, 100 streams, 10000 connections", () => {
    assert.deepEqual(testConfig().connections, {
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      tcpKeepAliveMs: 30_000,
      maxConcurrentStreams: 100,
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
describe("Node's HTTP/1.1 timeouts on the shared port", () => {
  it("closes a keep-alive connection whose next request's headers never finish", async (t) => {
    // The idle timeout is long, so only the headers timeout can close it.
    const server = await startServer(["--headers-timeout", "500ms", "--idle-timeout", "60s"]);
    const slow = await dial(t, server.url);
    slow.socket.write("GET /healthz HTTP/1.1\r\nHost: electd\r\n\r\n");
    await until(() => slow.received.includes("serving"), "the first request is answered");
    slow.socket.write("GET /healthz HTTP/1.1\r\nHost: electd\r\n");
    for (let i = 0; !slow.closed && i < PATIENCE_MS / 100; i++) {
      slow.socket.write(`X-Slow-${i}: y\r\n`);
      await sleep(100);
    }
    assert.ok(slow.closed, "closed while still trickling headers");
    assert.match(slow.received, /HTTP\/1\.1 408/, "Node's own headers timeout answered 408");
  });

  it("closes an idle HTTP/1.1 keep-alive connection after --idle-timeout", async (t) => {
    const server = await startServer(["--idle-timeout", "500ms"]);
    const client = await dial(t, server.url);
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: electd\r\n\r\n");
    await until(() => client.received.includes("serving"), "the request is answered");
    assert.match(client.received, /keep-alive/i);
    await until(() => client.closed, "the idle keep-alive connection is closed");
  });
});

describe("HTTP/2 settings", () => {
  it("advertises --max-concurrent-streams in its HTTP/2 SETTINGS", async (t) => {
    const server = await startServer(["--max-concurrent-streams", "7"]);
    const client = await h2(t, server.url);
    assert.equal(client.session.remoteSettings.maxConcurrentStreams, 7);
  });
});

describe("shutdown", () => {
  it("closes idle keep-alive connections at once instead of waiting out the grace", async (t) => {
    const electd = await start(testConfig());
    after(() => electd.stop());
    const agent = new HttpAgent({ keepAlive: true });
    t.after(() => agent.destroy());
    const res = await new Promise<IncomingMessage>((resolve, reject) =>
      httpRequest(`${electd.url}/healthz`, { agent }, resolve).on("error", reject).end(),
    );
    res.resume();
    await once(res, "end");

    const started = performance.now();
    await electd.stop(); // a 3 s grace
    const took = performance.now() - started;
    t.diagnostic(`stop() took ${took.toFixed(1)} ms`);
    assert.ok(took < 2500, `stopped in ${took.toFixed(0)} ms, not forced after the grace`);
  });
});

describe("the same rules over TLS", () => {
  let dir = "";
  let cert = "";
  let key = "";
  let ca = Buffer.alloc(0);
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "electd-tls-"));
    cert = join(dir, "cert.pem");
    key = join(dir, "key.pem");
    await promisify(execFile)("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      key,
      "-out",
      cert,
    ]);
    ca = readFileSync(cert);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const tlsFlags = () => ["--tls-cert", cert, "--tls-key", key];

  it("advertises --max-concurrent-streams over TLS", async (t) => {
    const server = await startServer([...tlsFlags(), "--max-concurrent-streams", "7"]);
    const client = await h2(t, server.url, ca);
    assert.equal(client.session.remoteSettings.maxConcurrentStreams, 7);
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
