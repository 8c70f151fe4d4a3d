// The gRPC health protocol (grpc.health.v1.Health) against real servers: Check and List on
// every protocol, Watch over @grpc/grpc-js as Kubernetes-style probes call it; NOT_SERVING
// while the store cannot commit and once shutdown begins, with Watch streams ending OK.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import Database from "better-sqlite3";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from "../../gen/grpc/health/v1/health_pb.js";
import { start } from "../../server/electd.js";
import { DATA_FILE } from "../../server/store/durable.js";
import { startServer, testConfig } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

const protoRoot = fileURLToPath(new URL("../../proto", import.meta.url));
const ELECTION = "atomix.runtime.election.v1.LeaderElection";
const PATIENCE_MS = 10_000;

/** Health as a gRPC client built from gRPC's own health.proto calls it. */
function grpcJsHealth(url: string) {
  const definition = protoLoader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [protoRoot],
    enums: String,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const client = new loaded.grpc.health.v1.Health(
    new URL(url).host,
    grpc.credentials.createInsecure(),
  );
  /** The statuses a Watch receives, and how it ended. */
  const watch = (service: string) => {
    const statuses: string[] = [];
    const call = (
      client.Watch as (r: unknown) => grpc.ClientReadableStream<{ status: string }>
    ).call(client, { service });
    call.on("data", (res: { status: string }) => statuses.push(res.status));
    const ended = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("error", () => {}); // the status event reports it
    return { statuses, ended, cancel: () => call.cancel() };
  };
  const check = (service: string) =>
    new Promise<string>((resolve, reject) =>
      (
        client.Check as (r: unknown, cb: (e: grpc.ServiceError | null, r: unknown) => void) => void
      ).call(client, { service }, (error, res) =>
        error ? reject(error) : resolve((res as { status: string }).status),
      ),
    );
  return { check, watch, close: () => client.close() };
}

async function until(ready: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + PATIENCE_MS;
  while (!(await ready())) {
    if (Date.now() > deadline) assert.fail(`within ${PATIENCE_MS} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("grpc.health.v1.Health", () => {
  it("answers Check and List on every protocol: the server and each service it serves", async () => {
    const server = await startServer();
    const baseUrl = server.url;
    for (const transport of [
      createConnectTransport({ baseUrl, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl }),
      createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
    ]) {
      const health = createClient(Health, transport);
      assert.equal((await health.check({})).status, Status.SERVING);
      assert.equal((await health.check({ service: ELECTION })).status, Status.SERVING);
      assert.equal(
        (await health.check({ service: "electd.v1.SessionService" })).status,
        Status.SERVING,
      );
      await assert.rejects(health.check({ service: "no.such.Service" }), (e: unknown) => {
        const error = ConnectError.from(e);
        return error.code === Code.NotFound && /no\.such\.Service/.test(error.rawMessage);
      });
      const { statuses } = await health.list({});
      assert.equal(statuses[""]?.status, Status.SERVING);
      assert.equal(statuses[ELECTION]?.status, Status.SERVING);
    }
    // As curl sends it.
    const res = await fetch(`${baseUrl}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    assert.deepEqual(await res.json(), { status: "SERVING" });
    const grpcJs = grpcJsHealth(baseUrl);
    try {
      assert.equal(await grpcJs.check(""), "SERVING");
    } finally {
      grpcJs.close();
    }
  });

  it("tells Watch clients NOT_SERVING at shutdown, then ends their streams with OK", async () => {
    const electd = await start(testConfig());
    const health = grpcJsHealth(electd.url);
    try {
      const server = health.watch("");
      const election = health.watch(ELECTION);
      const unknown = health.watch("no.such.Service");
      await until(
        () => server.statuses.length + election.statuses.length + unknown.statuses.length === 3,
        "every Watch gets the status now",
      );
      assert.deepEqual(server.statuses, ["SERVING"]);
      assert.deepEqual(election.statuses, ["SERVING"]);
      assert.deepEqual(unknown.statuses, ["SERVICE_UNKNOWN"]);

      await electd.stop(PATIENCE_MS);
      for (const watch of [server, election, unknown]) {
        assert.equal((await watch.ended).code, grpc.status.OK);
      }
      assert.deepEqual(server.statuses, ["SERVING", "NOT_SERVING"]);
      assert.deepEqual(election.statuses, ["SERVING", "NOT_SERVING"]);
      assert.deepEqual(unknown.statuses, ["SERVICE_UNKNOWN"]);
    } finally {
      health.close();
      await electd.stop();
    }
  });

  it("is NOT_SERVING while the store cannot commit, and SERVING again once it can", async () => {
    const dataDir = tempDir("health");
    const server = await startServer(["--store", "durable", "--data-dir", dataDir]);
    const elections = createClient(LeaderElection, createGrpcTransport({ baseUrl: server.url }));
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    const id = { name: "e" };
    await elections.create({ id });
    const watcher = grpcJsHealth(server.url);
    try {
      const watch = watcher.watch("");
      await until(() => watch.statuses.length === 1, "the Watch gets the status now");

      // Another process holds the data file's write lock, as a sqlite3 shell can.
      const outside = new Database(join(dataDir, DATA_FILE));
      outside.exec("BEGIN IMMEDIATE");
      try {
        await assert.rejects(elections.enter({ id, candidate: "a" }), (e: unknown) => {
          return ConnectError.from(e).code === Code.Unavailable;
        });
        assert.equal((await health.check({})).status, Status.NOT_SERVING);
      } finally {
        outside.exec("ROLLBACK");
        outside.close();
      }
      await elections.enter({ id, candidate: "a" });
      assert.equal((await health.check({})).status, Status.SERVING);
      await until(() => watch.statuses.length === 3, "the Watch hears both changes");
      assert.deepEqual(watch.statuses, ["SERVING", "NOT_SERVING", "SERVING"]);
      watch.cancel();
    } finally {
      watcher.close();
    }
  });
});
