// What keeps a browser from being turned against electd, with crafted headers: the Host
// header (DNS rebinding), the Origin header (CORS), and the security headers every page
// is sent with.
import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, it } from "node:test";
import { startServer } from "../support/server.js";

const server = await startServer(["--allowed-hosts", "electd.internal,Ops.Example.com"]);
const withCors = await startServer(["--cors-origin", "https://ops.example.com"]);
const { port } = new URL(server.url);

const GET_TERM = "/atomix.runtime.election.v1.LeaderElection/GetTerm";
const CREATE = "/atomix.runtime.election.v1.LeaderElection/Create";

/** A request with exactly these headers (fetch would not let us set Host). */
function send(
  url: string,
  path: string,
  headers: Record<string, string>,
  method = "POST",
  body = "{}",
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { method, headers }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => {
        text += c.toString();
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
      );
    });
    req.on("error", reject);
    req.end(method === "POST" ? body : undefined);
  });
}

const json = { "content-type": "application/json" };

describe("the Host header", () => {
  for (const host of [
    `127.0.0.1:${port}`,
    `localhost:${port}`,
    "[::1]",
    "electd.internal",
    `ops.example.com:${port}`,
  ]) {
    it(`is accepted: ${host}`, async () => {
      const res = await send(server.url, CREATE, { ...json, host }, "POST", '{"id":{"name":"h"}}');
      assert.equal(res.status, 200, res.body);
    });
  }

  for (const host of [
    "attacker.example",
    `rebind.attacker.example:${port}`,
    "electd.internal.attacker.example",
  ]) {
    it(`is refused, changing nothing: ${host}`, async () => {
      const name = `rebound ${host}`;
      const res = await send(
        server.url,
        CREATE,
        { ...json, host },
        "POST",
        JSON.stringify({ id: { name } }),
      );
      assert.equal(res.status, 403);
      assert.match(res.body, /does not serve the host name .*--allowed-hosts/);
      const check = await send(
        server.url,
        GET_TERM,
        json,
        "POST",
        JSON.stringify({ id: { name } }),
      );
      assert.equal(check.status, 404);
      const page = await send(server.url, "/", { host }, "GET");
      assert.equal(page.status, 403);
    });
  }
});

describe("the Origin header", () => {
  it("lets the dashboard's own origin call", async () => {
    const res = await send(
      server.url,
      CREATE,
      { ...json, origin: server.url },
      "POST",
      '{"id":{"name":"o"}}',
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers["access-control-allow-origin"], undefined);
  });

  for (const origin of ["https://evil.example", "null", "http://localhost:1"]) {
    it(`refuses another origin without --cors-origin, changing nothing: ${origin}`, async () => {
      const res = await send(
        server.url,
        CREATE,
        { ...json, origin },
        "POST",
        '{"id":{"name":"cross"}}',
      );
      assert.equal(res.status, 403);
      assert.match(
        res.body,
        /not allowed: electd serves other origins only when --cors-origin lists them/,
      );
      assert.equal(res.headers["access-control-allow-origin"], undefined);
      const check = await send(server.url, GET_TERM, json, "POST", '{"id":{"name":"cross"}}');
      assert.equal(check.status, 404);
      const preflight = await send(
        server.url,
        CREATE,
        { origin, "access-control-request-method": "POST" },
        "OPTIONS",
      );
      assert.equal(preflight.status, 403);
      assert.equal(preflight.headers["access-control-allow-origin"], undefined);
    });
  }

  it("answers a listed origin's preflight and calls with CORS headers", async () => {
    const origin = "https://ops.example.com";
    const preflight = await send(
      withCors.url,
      CREATE,
      {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization",
      },
      "OPTIONS",
    );
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers["access-control-allow-origin"], origin);
    assert.match(String(preflight.headers["access-control-allow-headers"]), /authorization/);
    assert.match(String(preflight.headers["access-control-allow-methods"]), /POST/);
    const res = await send(
      withCors.url,
      CREATE,
      { ...json, origin },
      "POST",
      '{"id":{"name":"cors"}}',
    );
    assert.equal(res.status, 200);
    assert.equal(res.headers["access-control-allow-origin"], origin);
    assert.match(String(res.headers["access-control-expose-headers"]), /grpc-status/i);
    const other = await send(withCors.url, CREATE, { ...json, origin: "https://evil.example" });
    assert.equal(other.status, 403);
  });
});

describe("security headers", () => {
  it("are sent with the dashboard and the API", async () => {
    for (const path of ["/", "/healthz"]) {
      const res = await send(server.url, path, {}, "GET");
      const csp = String(res.headers["content-security-policy"]);
      assert.match(csp, /frame-ancestors 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.doesNotMatch(csp, /script-src[^;]*unsafe-inline/);
      assert.equal(res.headers["x-frame-options"], "DENY");
      assert.equal(res.headers["x-content-type-options"], "nosniff");
      assert.equal(res.headers["referrer-policy"], "no-referrer");
    }
  });
});
