// Auth as an operator meets it: protected mode off loopback, the auth file read again on
// SIGHUP without dropping anyone, and client certificates as identities.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { IdentityService } from "../../gen/electd/v1/identity_pb.js";
import { bearer, writeAuthFile } from "../support/auth.js";
import { runCommand, runMain, spawnServer } from "../support/process.js";
import { startServer } from "../support/server.js";
import { clientCertificate, selfSignedCertificate } from "../support/tls.js";

async function code(promise: Promise<unknown>): Promise<Code> {
  return promise.then(
    () => assert.fail("expected a refusal"),
    (e: unknown) => {
      console.log(String(e));
      return ConnectError.from(e).code;
    },
  );
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !check(); waited += 20) {
    if (waited > 10_000) assert.fail(`within 10 s: ${what}`);
    await sleep(20);
  }
}

// Made before any test runs: a suite that ended first would remove their directory.
const serverCert = await selfSignedCertificate();
const client = await clientCertificate("/CN=worker-1/O=acme");
const stranger = await clientCertificate("/CN=worker-1/O=acme");
const unlisted = await clientCertificate("/CN=nobody", client);
const { path, tokens } = writeAuthFile([{ name: "ops", grants: [{ role: "admin" }] }]);
// The subject's entry, added by hand: certificate_subject is the identity's name.
const file = JSON.parse(readFileSync(path, "utf8"));
file.identities.push({
  certificate_subject: "CN=worker-1, O=acme",
  grants: [{ role: "candidate", prefix: "jobs/" }],
});
writeFileSync(path, JSON.stringify(file));
// Only `client`'s CA is trusted: `stranger` has the same subject from another CA.
const server = await startServer([
  ...["--tls-cert", serverCert.cert, "--tls-key", serverCert.key],
  ...["--tls-client-ca", client.caFile, "--auth-file", path],
]);
const transport = (cert?: { cert: Buffer; key: Buffer }, token?: string) =>
  createConnectTransport({
    baseUrl: server.url,
    httpVersion: "2",
    nodeOptions: { ca: serverCert.ca, ...(cert ? { cert: cert.cert, key: cert.key } : {}) },
    interceptors: [bearer(token)],
  });

/** Creates election `name` as the identity holding `token`. */
async function createAs(url: string, token: string | undefined, name: string): Promise<void> {
  const transport = createConnectTransport({
    baseUrl: url,
    httpVersion: "1.1",
    interceptors: [bearer(token)],
  });
  await createClient(LeaderElection, transport).create({ id: { name } });
}

/** `electd run` with ELECTD_TOKEN=`token`, of a command that exits 7. */
function electdRun(url: string, election: string, token: string) {
  return runCommand(
    [
      ...["run", "--election", election, "--server", url],
      ...["--", process.execPath, "-e", "process.exit(7)"],
    ],
    { ELECTD_TOKEN: token },
  );
}

describe("protected mode", () => {
  it("refuses to serve open on an address other than loopback", async () => {
    const { code, stderr } = await runMain(["--host", "0.0.0.0", "--port", "0"]);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /--host 0\.0\.0\.0 is reachable from other machines.*--auth-file.*--insecure-no-auth/,
    );
  });

  /** Starts a server with `args`, waits for a log line matching `line`, stops it. */
  async function logs(args: readonly string[], line: RegExp): Promise<void> {
    const server = await spawnServer(["--port", "0", ...args], { LOG_LEVEL: "info" });
    try {
      await until(() => line.test(server.output()), `a log line ${line}`);
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  }

  it("serves open there with --insecure-no-auth, saying so", async () => {
    await logs(["--host", "0.0.0.0", "--insecure-no-auth"], /auth off \(--insecure-no-auth\)/);
  });

  it("serves with an auth file there", async () => {
    const { path } = writeAuthFile([{ name: "ops", grants: [{ role: "admin" }] }]);
    await logs(["--host", "0.0.0.0", "--auth-file", path], /auth on/);
  });

  it("says at start that a loopback server without an auth file is open", async () => {
    await logs([], /auth off: open to every local process as anonymous admin/);
  });
});

describe("SIGHUP", () => {
  it("reads the auth file again; open streams stay; a broken file leaves the last one in force", async () => {
    const first = writeAuthFile([
      { name: "old", grants: [{ role: "admin" }] },
      { name: "kept", grants: [{ role: "viewer" }] },
    ]);
    const server = await spawnServer(["--auth-file", first.path], { LOG_LEVEL: "info" });
    try {
      const as = (token: string | undefined) =>
        createClient(
          LeaderElection,
          createGrpcTransport({ baseUrl: server.url, interceptors: [bearer(token)] }),
        );
      const old = as(first.tokens.get("old"));
      await old.create({ id: { name: "e" } });
      const watch = as(first.tokens.get("kept"))
        .watch({ id: { name: "e" } })
        [Symbol.asyncIterator]();
      assert.equal((await watch.next()).value?.term?.leader, "");

      // "old" goes, "new" comes; "kept" keeps its name with a new token.
      const second = writeAuthFile(
        [
          { name: "new", grants: [{ role: "admin" }] },
          { name: "kept", grants: [{ role: "viewer" }] },
        ],
        first.path,
      );
      server.child.kill("SIGHUP");
      await until(() => server.output().includes("auth file read again"), "the reload");
      assert.equal(await code(old.getTerm({ id: { name: "e" } })), Code.Unauthenticated);
      const fresh = as(second.tokens.get("new"));
      await fresh.enter({ id: { name: "e" }, candidate: "a" });
      // The stream opened before the reload is still there and hears the change.
      assert.equal((await watch.next()).value?.term?.leader, "a");

      writeFileSync(first.path, "{ not json");
      server.child.kill("SIGHUP");
      await until(() => server.output().includes("the auth file in force stays"), "the refusal");
      await fresh.enter({ id: { name: "e" }, candidate: "b" });
      assert.equal((await watch.next()).value?.term?.candidates[0], "b");
      await watch.return?.();
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });
});

describe("client certificates", () => {
  it("identifies a client by its verified certificate's subject", async () => {
    const me = await createClient(IdentityService, transport(client)).whoAmI({});
    assert.equal(me.identity, "CN=worker-1, O=acme");
    assert.deepEqual(
      me.grants.map((g) => [g.role, g.prefix]),
      [["candidate", "jobs/"]],
    );
    const election = createClient(LeaderElection, transport(client));
    await createClient(LeaderElection, transport(undefined, tokens.get("ops"))).create({
      id: { name: "jobs/nightly" },
    });
    await election.enter({ id: { name: "jobs/nightly" }, candidate: "w1" });
    assert.equal(
      await code(election.anoint({ id: { name: "jobs/nightly" }, candidate: "w1" })),
      Code.PermissionDenied,
    );
  });

  it("does not take a certificate from another CA, whatever its subject", async () => {
    // Node's TLS server ends such a connection after its first response at the latest,
    // and any request it gets is unauthenticated: the caller sees that or a closed
    // connection, never an answer.
    const election = createClient(LeaderElection, transport(stranger));
    const refused = await code(election.getTerm({ id: { name: "jobs/nightly" } }));
    assert.ok(
      [Code.Unauthenticated, Code.Canceled, Code.Aborted, Code.Unavailable].includes(refused),
      `refused with ${Code[refused]}`,
    );
  });

  it("gives a verified subject missing from the auth file no role", async () => {
    const me = createClient(IdentityService, transport(unlisted));
    assert.equal(await code(me.whoAmI({})), Code.PermissionDenied);
  });

  it("still takes a token over TLS without a certificate", async () => {
    const me = await createClient(IdentityService, transport(undefined, tokens.get("ops"))).whoAmI(
      {},
    );
    assert.equal(me.identity, "ops");
  });
});

describe("the electd command under auth", () => {
  it("sends the token in ELECTD_TOKEN, and says unauthenticated without it", async () => {
    const { path, tokens } = writeAuthFile([{ name: "ops", grants: [{ role: "admin" }] }]);
    const server = await startServer(["--auth-file", path]);
    const without = await runCommand(["status", "--server", server.url], { ELECTD_TOKEN: "" });
    assert.equal(without.code, 1);
    assert.match(without.stderr, /electd status: unauthenticated: no credentials/);
    const token = { ELECTD_TOKEN: tokens.get("ops") ?? "" };
    const entered = await runCommand(["enter", "orders", "node-1", "--server", server.url], token);
    assert.equal(entered.code, 1, "Create is separate: the election does not exist yet");
    assert.match(entered.stderr, /not_found/);
    await createClient(
      LeaderElection,
      createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        interceptors: [bearer(tokens.get("ops"))],
      }),
    ).create({ id: { name: "orders" } });
    const done = await runCommand(["enter", "orders", "node-1", "--server", server.url], token);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /"leader":"node-1"/);
  });

  it("runs electd run with a candidate's token in an election an admin created", {
    timeout: 60_000,
  }, async () => {
    const { path, tokens } = writeAuthFile([
      { name: "ops", grants: [{ role: "admin" }] },
      { name: "job", grants: [{ role: "candidate", prefix: "jobs/" }] },
    ]);
    const server = await startServer(["--auth-file", path]);
    await createAs(server.url, tokens.get("ops"), "jobs/nightly");
    const run = await electdRun(server.url, "jobs/nightly", tokens.get("job") ?? "");
    assert.equal(run.code, 7, run.stderr);
  });

  it("gives electd run up, saying why, when the server refuses its token", {
    timeout: 60_000,
  }, async () => {
    const { path, tokens } = writeAuthFile([
      { name: "ops", grants: [{ role: "admin" }] },
      { name: "reader", grants: [{ role: "viewer" }] },
    ]);
    const server = await startServer(["--auth-file", path]);
    await createAs(server.url, tokens.get("ops"), "jobs/nightly");
    const run = (token: string) => electdRun(server.url, "jobs/nightly", token);
    const unknown = await run("not-a-token");
    assert.equal(unknown.code, 1, unknown.stderr);
    assert.match(unknown.stderr, /electd run: refused: unauthenticated/);
    const viewer = await run(tokens.get("reader") ?? "");
    assert.equal(viewer.code, 1, viewer.stderr);
    assert.match(viewer.stderr, /electd run: refused: permission_denied/);
  });
});
