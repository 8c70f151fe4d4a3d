// The dashboard's HTTP side: the built app at `/`, deep links answered with index.html,
// unknown paths left 404, cache headers, an explanation when the app is not built, and the
// API and /healthz untouched on the same port.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Fastify from "fastify";
import { badUrlErrors, dashboard } from "../../server/http/dashboard.js";
import { startServer } from "../support/server.js";

async function app(root: string) {
  const fastify = Fastify({ logger: false, frameworkErrors: badUrlErrors(root) });
  await fastify.register(dashboard, { root });
  await fastify.ready();
  after(() => fastify.close());
  return fastify;
}

describe("the dashboard route", () => {
  it("serves the built app at / and at every /elections/<name> deep link", async () => {
    const root = await mkdtemp(join(tmpdir(), "electd-dashboard-"));
    after(() => rm(root, { recursive: true, force: true }));
    await mkdir(join(root, "assets"));
    await writeFile(join(root, "index.html"), "<!doctype html><title>electd</title>");
    await writeFile(join(root, "assets", "index-abc123.js"), "console.log(1)");
    const fastify = await app(root);

    const home = await fastify.inject({ url: "/" });
    assert.equal(home.statusCode, 200);
    assert.match(home.body, /<title>electd<\/title>/);
    assert.equal(home.headers["cache-control"], "no-cache");

    for (const url of ["/elections/orders", "/elections/a%2Fb%20c", "/elections/x/y"]) {
      const deep = await fastify.inject({ url });
      assert.equal(deep.statusCode, 200, url);
      assert.equal(deep.body, home.body, url);
    }

    const asset = await fastify.inject({ url: "/assets/index-abc123.js" });
    assert.equal(asset.statusCode, 200);
    assert.equal(asset.headers["cache-control"], "public, max-age=31536000, immutable");

    assert.equal((await fastify.inject({ url: "/no/such/page" })).statusCode, 404);

    // A deep link whose percent-encoding does not decode still gets the app, which says
    // the address is not valid; elsewhere such a path is a 400.
    const malformed = await fastify.inject({ url: "/elections/%E0%A4%A" });
    assert.equal(malformed.statusCode, 200);
    assert.equal(malformed.body, home.body);
    assert.equal((await fastify.inject({ url: "/other/%E0%A4%A" })).statusCode, 400);
  });

  it("explains how to build the app when it is missing, and still starts", async () => {
    const fastify = await app(join(tmpdir(), "electd-no-such-dashboard"));
    for (const url of ["/", "/elections/orders"]) {
      const reply = await fastify.inject({ url });
      assert.equal(reply.statusCode, 503, url);
      assert.match(reply.body, /npm run build/);
    }
  });

  it("leaves the API and /healthz working on the same port", async () => {
    const server = await startServer();
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, "serving");
    const list = await fetch(`${server.url}/electd.v1.ElectionDirectoryService/ListElections`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(list.status, 200);
    assert.deepEqual(await list.json(), {});
    const home = await fetch(`${server.url}/`);
    assert.ok([200, 503].includes(home.status), `GET / answered ${home.status}`);
    assert.match(home.headers.get("content-type") ?? "", /^text\/html/);
  });
});
