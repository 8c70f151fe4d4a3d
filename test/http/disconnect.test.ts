// Clients that go away before their response is complete (a Watch they stop, a call they
// reset while still sending it) are routine. The server process logs each with one debug
// line through its logger and prints no stack trace, over HTTP/1.1 and h2c alike.
import assert from "node:assert/strict";
import { request as h1request } from "node:http";
import { constants, connect as h2connect } from "node:http2";
import { after, before, describe, it } from "node:test";
import { createClient, type Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { type ServerProcess, spawnServer } from "../support/process.js";

const service = "/atomix.runtime.election.v1.LeaderElection/";
const closedEarly = "connection closed before the response was complete";

let server: ServerProcess;
const sessions: Http2SessionManager[] = [];
before(async () => {
  server = await spawnServer(["--port", "0"], { LOG_LEVEL: "debug" });
  const client = createClient(
    LeaderElection,
    createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
  );
  await client.create({ id: { name: "e" } });
});
after(async () => {
  for (const s of sessions) s.abort();
  server.child.kill("SIGTERM");
  await server.exited;
});

/** Opens a Watch with a real client and stops it once the current state arrived. */
async function abandonWatch(transport: Transport): Promise<void> {
  const client = createClient(LeaderElection, transport);
  const stop = new AbortController();
  for await (const _ of client.watch({ id: { name: "e" } }, { signal: stop.signal })) {
    stop.abort();
    break;
  }
}

/** The first bytes of one envelope: less than the request the headers announce. */
const partial = new Uint8Array([0, 0, 0, 0, 9, 0x0a]);

/** Sends part of a request over HTTP/1.1, then closes the connection. */
async function abandonH1(method: string, contentType: string): Promise<void> {
  const req = h1request(`${server.url}${service}${method}`, {
    method: "POST",
    headers: { "content-type": contentType },
  });
  req.on("error", () => {}); // the socket is destroyed on purpose
  await new Promise<void>((resolve) => req.write(partial, () => resolve()));
  req.destroy();
}

/** Sends part of a request over h2c, then resets the stream or drops the connection. */
async function abandonH2(method: string, how: "reset" | "disconnect"): Promise<void> {
  const session = h2connect(server.url);
  session.on("error", () => {});
  const stream = session.request({
    ":method": "POST",
    ":path": `${service}${method}`,
    "content-type": "application/grpc",
    te: "trailers",
  });
  stream.on("error", () => {});
  await new Promise<void>((resolve) => stream.write(partial, () => resolve()));
  if (how === "reset") {
    await new Promise<void>((resolve) => stream.close(constants.NGHTTP2_CANCEL, resolve));
    session.close();
  } else {
    session.destroy();
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("clients that go away", () => {
  it("are logged once each at debug level, without stack traces", async () => {
    const h2 = () => {
      const manager = new Http2SessionManager(server.url);
      sessions.push(manager);
      return manager;
    };
    const abandoned = [
      () => abandonWatch(createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })),
      () => abandonWatch(createGrpcTransport({ baseUrl: server.url, sessionManager: h2() })),
      () => abandonH1("Watch", "application/connect+proto"),
      () => abandonH1("GetTerm", "application/proto"),
      () => abandonH1("GetTerm", "application/grpc-web+proto"),
      () => abandonH2("Watch", "reset"),
      () => abandonH2("Watch", "disconnect"),
      () => abandonH2("GetTerm", "reset"),
      () => abandonH2("GetTerm", "disconnect"),
    ];
    for (const abandon of abandoned) await abandon();

    const lines = () => server.output().split("\n");
    const closed = () => lines().filter((line) => line.includes(closedEarly));
    await until(() => closed().length >= abandoned.length, "one log line per abandoned call");
    const health = async () =>
      ((await (await fetch(`${server.url}/healthz`)).json()) as { watches: number }).watches;
    for (let watches = await health(); watches > 0; watches = await health()) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }

    const output = server.output();
    assert.doesNotMatch(output, /\n\s+at /, "a stack trace was printed");
    assert.doesNotMatch(output, /handler for rpc/);
    assert.equal(closed().length, abandoned.length, "one line per abandoned call");
    for (const line of closed()) {
      const entry = JSON.parse(line) as { level: number; reqId?: string };
      assert.equal(entry.level, 20, "debug");
      assert.ok(entry.reqId, "logged through the request's logger");
    }
    // Every line the process printed is one JSON log entry, but for its own banner.
    for (const line of lines()) {
      if (line === "" || line.startsWith("electd ")) continue;
      assert.doesNotThrow(() => JSON.parse(line), `not a log entry: ${line}`);
    }
  });
});
