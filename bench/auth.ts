// What auth costs a call: unary GetTerm and Enter/Withdraw pairs over Connect (HTTP/1.1)
// and gRPC (HTTP/2) against a server without an auth file and one with a 100-identity
// auth file (a token checked against every hash, grants and prefixes decided per call),
// each in its own process, interleaved round by round; prints calls per second and the
// ratio. Run: node --import tsx bench/auth.ts [--rounds 5] [--calls 2000]
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { spawnElectd } from "./support.js";

const { values } = parseArgs({
  options: { rounds: { type: "string", default: "5" }, calls: { type: "string", default: "2000" } },
});
const rounds = Number(values.rounds);
const calls = Number(values.calls);

const token = randomBytes(24).toString("base64url");
const adminToken = randomBytes(24).toString("base64url");
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const identities = Array.from({ length: 100 }, (_, i) => ({
  name: `id-${i}`,
  token_sha256: sha256(i === 99 ? token : randomBytes(24).toString("base64url")),
  grants: [{ role: "viewer" }, { role: "candidate", prefix: "bench/" }],
}));
identities.push({ name: "admin", token_sha256: sha256(adminToken), grants: [{ role: "admin" }] });
const authFile = join(mkdtempSync(join(tmpdir(), "electd-bench-auth-")), "auth.json");
writeFileSync(authFile, JSON.stringify({ identities }));

const common = ["--port", "0", "--store", "memory", "--log-level", "warn"];
const open = await spawnElectd(common);
const guarded = await spawnElectd([...common, "--auth-file", authFile]);
const withToken =
  (bearer: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set("authorization", `Bearer ${bearer}`);
    return next(req);
  };
const transports = (url: string, auth: boolean): Record<string, Transport> => {
  const interceptors = auth ? [withToken(token)] : [];
  return {
    "Connect/1.1": createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors }),
    "gRPC/2": createGrpcTransport({ baseUrl: url, interceptors }),
  };
};

async function run(transport: Transport, kind: "getTerm" | "enter"): Promise<number> {
  const client = createClient(LeaderElection, transport);
  const id = { name: "bench/e" };
  const started = performance.now();
  for (let i = 0; i < calls; i++) {
    if (kind === "getTerm") await client.getTerm({ id });
    else if (i % 2 === 0) await client.enter({ id, candidate: "c" });
    else await client.withdraw({ id, candidate: "c" });
  }
  return (calls / (performance.now() - started)) * 1000;
}

// The election, made on each server (an admin's call on the guarded one).
for (const [url, interceptors] of [
  [open.url, []],
  [guarded.url, [withToken(adminToken)]],
] as const) {
  await createClient(
    LeaderElection,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [...interceptors] }),
  ).create({ id: { name: "bench/e" } });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
console.log(
  `auth cost, ${rounds} rounds of ${calls} sequential calls each, interleaved; node ${process.version}`,
);
for (const kind of ["getTerm", "enter"] as const) {
  for (const protocol of ["Connect/1.1", "gRPC/2"]) {
    const without: number[] = [];
    const withAuth: number[] = [];
    for (let r = 0; r < rounds; r++) {
      without.push(await run(transports(open.url, false)[protocol] as Transport, kind));
      withAuth.push(await run(transports(guarded.url, true)[protocol] as Transport, kind));
    }
    const a = median(without);
    const b = median(withAuth);
    console.log(
      `${kind === "getTerm" ? "GetTerm" : "Enter/Withdraw"} ${protocol}: no auth ${a.toFixed(0)}/s, auth ${b.toFixed(0)}/s, ratio ${(b / a).toFixed(2)}`,
    );
  }
}
await open.stop();
await guarded.stop();
