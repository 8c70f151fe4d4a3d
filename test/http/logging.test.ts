// The server's own output at LOG_LEVEL=info never contains a session id, although Connect
// GET requests carry the request message (here a session id) in the URL. Requests are
// logged one by one only with the access log on.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { GetSessionRequestSchema, SessionService } from "../../gen/electd/v1/session_pb.js";
import { type ServerProcess, spawnServer } from "../support/process.js";

let server: ServerProcess;
before(async () => {
  server = await spawnServer(["--port", "0"], { LOG_LEVEL: "info", ACCESS_LOG: "on" });
});
after(async () => {
  server.child.kill("SIGTERM");
  await server.exited;
});

async function logged(pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pattern.test(server.output())) {
    if (Date.now() > deadline)
      throw new Error(`no log line matched ${pattern}:\n${server.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("request log", () => {
  it("never contains the session id sent in a Connect GET query", async () => {
    const sessions = createClient(
      SessionService,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
    );
    const { sessionId } = await sessions.openSession({});
    const binaryMessage = Buffer.from(
      toBinary(GetSessionRequestSchema, create(GetSessionRequestSchema, { sessionId })),
    ).toString("base64url");

    for (const useBinaryFormat of [false, true]) {
      const viaGet = createClient(
        SessionService,
        createConnectTransport({
          baseUrl: server.url,
          httpVersion: "1.1",
          useHttpGet: true,
          useBinaryFormat,
        }),
      );
      assert.ok((await viaGet.getSession({ sessionId })).ttl);
    }
    const json = encodeURIComponent(JSON.stringify({ sessionId }));
    const typo = await fetch(
      `${server.url}/electd.v1.SessionService/GetSessio?connect=v1&encoding=json&message=${json}`,
    );
    assert.equal(typo.status, 404);

    // Every request above has been logged before the output is searched.
    await logged(/encoding=proto&base64=1&message=[^"]*"/);
    await logged(/Route GET:\/electd\.v1\.SessionService\/GetSessio\?.* not found/);
    const output = server.output();
    assert.ok(!output.includes(sessionId), "the session id was logged");
    assert.ok(!output.includes(binaryMessage), "the encoded request message was logged");
    const path = "/electd.v1.SessionService/GetSession";
    assert.ok(output.includes(`"url":"${path}?connect=v1&encoding=json&message=[redacted]"`));
    assert.ok(
      output.includes(`"url":"${path}?connect=v1&encoding=proto&base64=1&message=[redacted]"`),
    );
    assert.ok(
      output.includes(
        `Route GET:${path.slice(0, -1)}?connect=v1&encoding=json&message=[redacted] not found`,
      ),
    );
  });
});

describe("access log off (the default)", () => {
  let quiet: ServerProcess;
  before(async () => {
    quiet = await spawnServer(["--port", "0"], { LOG_LEVEL: "info" });
  });
  after(async () => {
    quiet.child.kill("SIGTERM");
    await quiet.exited;
  });

  it("logs no line per request at info, not even for a route that does not exist", async () => {
    const sessions = createClient(
      SessionService,
      createConnectTransport({ baseUrl: quiet.url, httpVersion: "1.1" }),
    );
    const { sessionId } = await sessions.openSession({});
    for (let i = 0; i < 5; i++) await sessions.getSession({ sessionId });
    assert.equal((await fetch(`${quiet.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${quiet.url}/no/such/route`)).status, 404);
    // Everything the server logged is in its output once it has exited.
    quiet.child.kill("SIGTERM");
    await quiet.exited;
    const output = quiet.output();
    assert.match(output, /SIGTERM received/);
    assert.doesNotMatch(output, /incoming request|request completed|not found/);
    assert.ok(!output.includes("/electd.v1.SessionService/"), "a request was logged");
    assert.ok(!output.includes("/healthz"), "a request was logged");
  });
});
