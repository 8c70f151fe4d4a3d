// One port serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) in cleartext, and with
// --tls-cert/--tls-key the same port serves TLS with ALPN (h2 and http/1.1). Checked with
// curl, an independent client, as well as the Connect transports.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { startServer } from "../support/server.js";
import { selfSignedCertificate } from "../support/tls.js";

const run = promisify(execFile);
const path = "/atomix.runtime.election.v1.LeaderElection/GetTerm";

/** curl a Connect JSON GetTerm; returns the HTTP version used and the body. */
async function curl(url: string, ...flags: string[]) {
  const { stdout } = await run("curl", [
    "-sS",
    ...flags,
    "-H",
    "content-type: application/json",
    "-d",
    '{"id":{"name":"e"}}',
    "-w",
    "\n%{http_version}",
    `${url}${path}`,
  ]);
  const lines = stdout.trimEnd().split("\n");
  return { version: lines.pop(), body: JSON.parse(lines.join("\n")) as unknown };
}

describe("one port, every protocol", () => {
  it("serves HTTP/1.1 and h2c with prior knowledge on the same cleartext port", async () => {
    const server = await startServer();
    await fetch(`${server.url}/atomix.runtime.election.v1.LeaderElection/Create`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"id":{"name":"e"}}',
    });
    const h1 = await curl(server.url, "--http1.1");
    const h2 = await curl(server.url, "--http2-prior-knowledge");
    assert.equal(h1.version, "1.1");
    assert.equal(h2.version, "2");
    assert.deepEqual(h1.body, { term: {} });
    assert.deepEqual(h2.body, h1.body);
  });

  it("serves TLS with ALPN h2 and http/1.1 on the same port when given a certificate", async () => {
    const { cert, key, ca } = await selfSignedCertificate();
    const server = await startServer(["--tls-cert", cert, "--tls-key", key]);
    assert.match(server.url, /^https:/);
    const client = createClient(
      LeaderElection,
      createGrpcTransport({ baseUrl: server.url, nodeOptions: { ca } }),
    );
    await client.create({ id: { name: "e" } });
    const viaH1 = createClient(
      LeaderElection,
      createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", nodeOptions: { ca } }),
    );
    assert.equal((await viaH1.enter({ id: { name: "e" }, candidate: "a" })).term?.leader, "a");
    const h2 = await curl(server.url, "--cacert", cert, "--http2");
    const h1 = await curl(server.url, "--cacert", cert, "--http1.1");
    assert.equal(h2.version, "2");
    assert.equal(h1.version, "1.1");
    assert.deepEqual(h2.body, { term: { term: "1", leader: "a" } });
    assert.deepEqual(h1.body, h2.body);
  });
});
