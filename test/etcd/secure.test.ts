// etcd as deployments secure it: TLS with client certificates, and users with passwords.
// electd reaches it with --etcd-cacert, --etcd-cert and --etcd-key, and with ETCD_USERNAME
// and ETCD_PASSWORD from the environment; without them it is refused at start, saying why.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { startEtcd } from "../support/etcd.js";
import { runMain, spawnServer } from "../support/process.js";
import { selfSignedCertificate } from "../support/tls.js";

/** Creates an election and enters a candidate through the server at `url`. */
async function works(url: string) {
  const client = createClient(LeaderElection, createGrpcTransport({ baseUrl: url }));
  await client.create({ id: { name: "secured" } });
  const { term } = await client.enter({ id: { name: "secured" }, candidate: "a" });
  assert.deepEqual([term?.term, term?.leader], [1n, "a"]);
}

describe("etcd over TLS with client certificates", () => {
  it("is reached with --etcd-cacert, --etcd-cert and --etcd-key, and refused without them", async () => {
    // One self-signed certificate serves as the CA, etcd's certificate and the client's.
    const { cert, key } = await selfSignedCertificate();
    const cluster = await startEtcd({ members: 1, tls: { cert, key, ca: cert } });
    after(() => cluster.stop());
    const endpoints = ["--store", "etcd", "--etcd-endpoints", cluster.endpoints.join(",")];
    assert.match(cluster.endpoints[0] as string, /^https:/);
    const electd = await spawnServer([
      ...["--port", "0", ...endpoints, "--etcd-timeout", "2s"],
      ...["--etcd-cacert", cert, "--etcd-cert", cert, "--etcd-key", key],
    ]);
    after(() => electd.child.kill("SIGKILL"));
    await works(electd.url);
    // Trusting the CA but without a client certificate: etcd refuses the connection.
    const refused = await runMain([...endpoints, "--etcd-cacert", cert, "--etcd-timeout", "2s"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot read from etcd at https:/);
  });
});

describe("etcd with users", () => {
  it("is reached with ETCD_USERNAME and ETCD_PASSWORD from the environment", async () => {
    const cluster = await startEtcd({ members: 1 });
    after(() => cluster.stop());
    const endpoint = cluster.endpoints[0] as string;
    const etcdctl = (...args: string[]) =>
      promisify(execFile)("etcdctl", ["--endpoints", endpoint, ...args], {
        env: { ...process.env, ETCDCTL_API: "3" },
      });
    await etcdctl("user", "add", "root:rootpw");
    await etcdctl("user", "add", "electd:electdpw");
    await etcdctl("role", "add", "electd");
    await etcdctl("role", "grant-permission", "electd", "--prefix=true", "readwrite", "/electd/");
    await etcdctl("user", "grant-role", "electd", "electd");
    await etcdctl("auth", "enable");
    const flags = ["--store", "etcd", "--etcd-endpoints", endpoint, "--etcd-timeout", "2s"];
    const electd = await spawnServer(["--port", "0", ...flags], {
      ETCD_USERNAME: "electd",
      ETCD_PASSWORD: "electdpw",
    });
    after(() => electd.child.kill("SIGKILL"));
    await works(electd.url);
    const refused = await runMain(flags);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot read from etcd/);
  });
});
