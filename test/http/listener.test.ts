// The listener hands every HTTP/2 stream to its stream handler first (listener.ts,
// takeStreams): a stream the handler answers never becomes a request, one it declines goes
// on to the request handler through Node's compatibility layer, as does every HTTP/1.1
// request. Cleartext (h2c) and TLS (h2 by ALPN) alike. Real sockets on loopback.
import assert from "node:assert/strict";
import { request as h1request } from "node:http";
import { connect as h2connect } from "node:http2";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { createListener, type Handler, type StreamHandler } from "../../server/http/listener.js";
import { selfSignedCertificate } from "../support/tls.js";

const limits = {
  headersTimeoutMs: 10_000,
  idleTimeoutMs: 10_000,
  tcpKeepAliveMs: 60_000,
  maxConcurrentStreams: 100,
  maxConnections: 100,
};

/** A listener whose stream handler takes /taken, and whose request handler names the path. */
async function listen(tls?: { cert: string; key: string }) {
  const requests: string[] = [];
  const streams: string[] = [];
  const handler: Handler = (req, res) => {
    requests.push(req.url ?? "");
    res.end(`request ${req.url}`);
  };
  const take: StreamHandler = (stream, headers) => {
    const path = String(headers[":path"]);
    streams.push(path);
    if (path !== "/taken") return false;
    stream.respond({ ":status": 200 });
    stream.end("stream /taken");
    return true;
  };
  const listener = createListener(handler, tls, limits, take);
  await new Promise<void>((resolve) => listener.server.listen(0, "127.0.0.1", resolve));
  const { port } = listener.server.address() as AddressInfo;
  after(() => {
    listener.destroy();
    listener.server.close();
  });
  return { origin: `${tls ? "https" : "http"}://127.0.0.1:${port}`, requests, streams };
}

function h2get(origin: string, path: string, ca?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = h2connect(origin, ca ? { ca } : {});
    session.on("error", reject);
    const stream = session.request({ ":path": path });
    let body = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      body += chunk;
    });
    stream.on("end", () => {
      session.close();
      resolve(body);
    });
    stream.on("error", reject);
  });
}

function h1get(origin: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    h1request(`${origin}${path}`, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve(body));
    })
      .on("error", reject)
      .end();
  });
}

describe("HTTP/2 streams go to the stream handler first", () => {
  it("answers a stream taken without making it a request, and passes on one declined (h2c)", async () => {
    const server = await listen();
    assert.equal(await h2get(server.origin, "/taken"), "stream /taken");
    assert.equal(await h2get(server.origin, "/declined"), "request /declined");
    assert.equal(await h1get(server.origin, "/plain"), "request /plain");
    assert.deepEqual(server.streams, ["/taken", "/declined"]);
    assert.deepEqual(server.requests, ["/declined", "/plain"]);
  });

  it("does the same over TLS, where h2 is negotiated by ALPN", async () => {
    const certificate = await selfSignedCertificate();
    const server = await listen(certificate);
    assert.equal(await h2get(server.origin, "/taken", certificate.ca), "stream /taken");
    assert.equal(await h2get(server.origin, "/declined", certificate.ca), "request /declined");
    assert.deepEqual(server.streams, ["/taken", "/declined"]);
    assert.deepEqual(server.requests, ["/declined"]);
  });
});
