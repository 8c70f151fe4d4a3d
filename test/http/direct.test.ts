// The plain unary calls and gRPC server streams are answered outside Fastify and
// Connect's generic pipeline (server/http/direct.ts). Whatever they are asked, the answer must be the one the regular
// path gives: the same requests, sent as raw bytes to a server using it and to one that
// does not (with the access log on, every request goes through Fastify), get the same
// status, headers, body and trailers. So must a server whose h2c connections are served by
// h2c processes (`--h2c-processes`, server/http/fronts.ts), which relay the plain calls to
// the direct path and proxy every other stream to the regular one.
import assert from "node:assert/strict";
import { request as h1request } from "node:http";
import { connect as h2connect } from "node:http2";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  EnterRequestSchema,
  GetTermRequestSchema,
  WatchRequestSchema,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  ListElectionsRequestSchema,
  WatchElectionsRequestSchema,
} from "../../gen/electd/v1/directory_pb.js";
import { type Electd, start } from "../../server/electd.js";
import { grpcEnvelope as envelope } from "../support/grpc.js";
import { testConfig } from "../support/server.js";

let direct: Electd;
let fronted: Electd;
let regular: Electd;
before(async () => {
  // A low threshold, so that responses of a few elections are compressed when accepted.
  const flags = ["--compress-min-bytes", "64"];
  direct = await start(testConfig(flags));
  fronted = await start(testConfig([...flags, "--h2c-processes", "2"]));
  regular = await start(testConfig([...flags, "--access-log", "on"]));
});
after(async () => {
  await Promise.all([direct?.stop(500), fronted?.stop(500), regular?.stop(500)]);
});

const election = "/atomix.runtime.election.v1.LeaderElection/";
const directory = "/electd.v1.ElectionDirectoryService/";
const admin = "/electd.v1.ElectionAdminService/";

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

/** What to compare: headers that differ between any two responses are left out. */
function comparable(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (key === "date" || key === "keep-alive" || key === "connection") continue;
    out[key] = value;
  }
  return out;
}

/** A gRPC call: its status, headers, body (every frame, as sent) and trailers. */
function grpc(url: string, path: string, body: Uint8Array, headers = {}): Promise<Answer> {
  return grpcStream(url, path, body, Number.POSITIVE_INFINITY, headers);
}

/**
 * A gRPC server stream: its headers and its first `messages` frames (bytes as sent), then
 * the stream is reset; or, when it ends sooner, everything up to its trailers.
 */
function grpcStream(
  url: string,
  path: string,
  body: Uint8Array,
  messages: number,
  headers = {},
  meanwhile?: () => Promise<unknown>,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = h2connect(url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    let received = Buffer.alloc(0);
    let status = 0;
    let head: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    let frames = 0;
    const done = () => {
      stream.close();
      session.close();
      resolve({ status, headers: head, body: received.toString("hex"), trailers });
    };
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = comparable({ ...h, ":status": undefined });
    });
    stream.on("trailers", (t) => {
      trailers = comparable({ ...t });
    });
    stream.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // Whole frames so far.
      let at = 0;
      let count = 0;
      while (at + 5 <= received.length) {
        const end = at + 5 + received.readUInt32BE(at + 1);
        if (end > received.length) break;
        at = end;
        count++;
      }
      if (count > frames) {
        frames = count;
        if (frames === 1 && meanwhile) meanwhile().catch(reject);
        if (frames >= messages) done();
      }
    });
    stream.on("end", done);
    stream.on("error", reject);
    stream.end(body);
  });
}

function connect(url: string, path: string, body: Uint8Array | string, headers = {}) {
  return new Promise<Answer>((resolve, reject) => {
    const req = h1request(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: comparable({ ...res.headers }),
          body: Buffer.concat(chunks).toString("hex"),
          trailers: comparable({ ...res.trailers }),
        }),
      );
    });
    req.on("error", reject);
    req.end(body);
  });
}

const getTerm = (name: string) =>
  toBinary(GetTermRequestSchema, create(GetTermRequestSchema, { id: { name } }));
const enter = (name: string, candidate: string) =>
  toBinary(EnterRequestSchema, create(EnterRequestSchema, { id: { name }, candidate }));

/** Sends the same request to each server, one after the other, and compares. */
async function same(send: (url: string) => Promise<Answer>, what: string): Promise<Answer> {
  const a = await send(direct.url);
  const f = await send(fronted.url);
  const b = await send(regular.url);
  assert.deepEqual(a, b, what);
  assert.deepEqual(f, b, `${what}, through h2c processes`);
  return a;
}

async function createOnBoth(name: string): Promise<void> {
  for (const server of [direct, fronted, regular]) {
    const created = await connect(
      server.url,
      `${election}Create`,
      JSON.stringify({ id: { name } }),
    );
    assert.equal(created.status, 200);
  }
}

describe("plain unary calls answered directly", () => {
  it("answer as the regular path does, over gRPC", async () => {
    await createOnBoth("e");
    const ok = await same((u) => grpc(u, `${election}Enter`, envelope(enter("e", "a"))), "Enter");
    assert.equal(ok.trailers["grpc-status"], "0");
    await same((u) => grpc(u, `${election}Enter`, envelope(enter("e", "b"))), "Enter b");
    const term = await same(
      (u) => grpc(u, `${election}GetTerm`, envelope(getTerm("e"))),
      "GetTerm",
    );
    assert.ok(term.body.length > 10, "a message came back");
    await same(
      (u) =>
        grpc(u, `${election}GetTerm`, envelope(getTerm("e")), {
          "content-type": "application/grpc+proto",
        }),
      "grpc+proto",
    );
    const missing = await same(
      (u) => grpc(u, `${election}GetTerm`, envelope(getTerm("nope"))),
      "not found",
    );
    assert.equal(missing.trailers["grpc-status"], "5");
    const bad = await same(
      (u) => grpc(u, `${election}Enter`, envelope(enter("", "a"))),
      "bad name",
    );
    assert.equal(bad.trailers["grpc-status"], "3");
    // Irregular requests: the regular path answers them.
    const flagged = await same(
      (u) => grpc(u, `${election}GetTerm`, envelope(getTerm("e"), 1)),
      "compressed flag, no encoding",
    );
    assert.equal(flagged.trailers["grpc-status"], "3");
    await same(
      (u) => grpc(u, `${election}GetTerm`, envelope(Buffer.from([0x0a, 0x09, 1]))),
      "not protobuf",
    );
    await same((u) => grpc(u, `${election}GetTerm`, Buffer.from([0, 0, 0])), "short envelope");
    await same(
      (u) =>
        grpc(
          u,
          `${election}GetTerm`,
          Buffer.concat([envelope(getTerm("e")), envelope(getTerm("e"))]),
        ),
      "two messages",
    );
    await same(
      (u) =>
        grpc(u, `${election}GetTerm`, envelope(gzipSync(getTerm("e")), 1), {
          "grpc-encoding": "gzip",
        }),
      "gzip request",
    );
    await same(
      (u) => grpc(u, `${election}GetTerm`, envelope(getTerm("e")), { "grpc-timeout": "5S" }),
      "deadline",
    );
    const huge = await same(
      (u) => grpc(u, `${election}GetTerm`, envelope(getTerm("x".repeat(70_000)))),
      "over the request size limit",
    );
    assert.equal(huge.trailers["grpc-status"], "8");
  });

  it("compress a large answer as the regular path does", async () => {
    for (let i = 0; i < 6; i++) {
      const name = `compressible-election-${i}`;
      await createOnBoth(name);
      for (const server of [direct, fronted, regular]) {
        await grpc(server.url, `${election}Enter`, envelope(enter(name, "a")));
      }
    }
    const list = toBinary(ListElectionsRequestSchema, create(ListElectionsRequestSchema, {}));
    const gz = await same(
      (u) =>
        grpc(u, `${directory}ListElections`, envelope(list), { "grpc-accept-encoding": "gzip" }),
      "gzip answer",
    );
    assert.equal(gz.headers["grpc-encoding"], "gzip");
    await same(
      (u) =>
        grpc(u, `${directory}ListElections`, envelope(list), {
          "grpc-accept-encoding": "identity",
        }),
      "identity",
    );
    const json = await same(
      (u) => connect(u, `${directory}ListElections`, "{}", { "accept-encoding": "gzip" }),
      "gzip JSON answer",
    );
    assert.equal(json.headers["content-encoding"], "gzip");
  });

  it("answer as the regular path does, over Connect", async () => {
    await createOnBoth("j");
    const body = JSON.stringify({ id: { name: "j" }, candidate: "a" });
    const ok = await same((u) => connect(u, `${election}Enter`, body), "Enter");
    assert.equal(ok.status, 200);
    await same(
      (u) => connect(u, `${election}GetTerm`, JSON.stringify({ id: { name: "j" } })),
      "GetTerm",
    );
    await same(
      (u) =>
        connect(u, `${election}GetTerm`, getTerm("j"), { "content-type": "application/proto" }),
      "binary",
    );
    const missing = await same(
      (u) => connect(u, `${election}GetTerm`, '{"id":{"name":"nope"}}'),
      "not found",
    );
    assert.equal(missing.status, 404);
    await same((u) => connect(u, `${election}GetTerm`, "{not json"), "not JSON");
    await same((u) => connect(u, `${election}GetTerm`, ""), "empty body");
    await same(
      (u) => connect(u, `${election}GetTerm`, '{"id":{"name":"j"},"nope":1}'),
      "unknown field",
    );
    await same(
      (u) =>
        connect(u, `${election}GetTerm`, '{"id":{"name":"j"}}', {
          "content-type": "application/json; charset=utf-8",
        }),
      "charset",
    );
    await same(
      (u) =>
        connect(u, `${election}GetTerm`, '{"id":{"name":"j"}}', {
          "connect-protocol-version": "2",
        }),
      "protocol version",
    );
    await same(
      (u) =>
        connect(u, `${election}GetTerm`, gzipSync('{"id":{"name":"j"}}'), {
          "content-encoding": "gzip",
        }),
      "gzip request",
    );
  });

  it("leaves a request that expects 100 Continue to the regular path, which sends it", {
    timeout: 20_000,
  }, async () => {
    await createOnBoth("continued");
    for (const server of [direct, fronted, regular]) {
      const answer = await new Promise<{ continued: boolean; status: string | undefined }>(
        (resolve, reject) => {
          const session = h2connect(server.url);
          session.on("error", reject);
          const stream = session.request(
            {
              ":method": "POST",
              ":path": `${election}GetTerm`,
              "content-type": "application/grpc",
              te: "trailers",
              expect: "100-continue",
            },
            { endStream: false },
          );
          let continued = false;
          // The body is sent only once the server has said to go on.
          stream.on("continue", () => {
            continued = true;
            stream.end(envelope(getTerm("continued")));
          });
          stream.on("trailers", (trailers) => {
            resolve({ continued, status: trailers["grpc-status"] as string | undefined });
            session.close();
          });
          stream.on("error", reject);
          stream.resume();
        },
      );
      assert.deepEqual(answer, { continued: true, status: "0" });
    }
  });

  it("leaves nothing behind when a client abandons a call halfway", async () => {
    for (const server of [direct, fronted]) await abandonHalfway(server.url);
  });
});

async function abandonHalfway(url: string) {
  const before = await metric(url, "GetTerm", "canceled");
  const partial = envelope(getTerm("e")).subarray(0, 8);
  for (const how of ["reset", "disconnect"] as const) {
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve) => {
        const session = h2connect(url);
        session.on("error", () => {});
        const stream = session.request({
          ":method": "POST",
          ":path": `${election}GetTerm`,
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        stream.write(partial, () => {
          if (how === "reset") stream.close(0x8, () => session.close(() => resolve()));
          else {
            session.destroy();
            resolve();
          }
        });
      });
    }
  }
  // Each is counted as canceled once the server has seen it go; then the server serves on.
  const deadline = Date.now() + 10_000;
  while ((await metric(url, "GetTerm", "canceled")) < before + 10) {
    if (Date.now() > deadline) throw new Error("the abandoned calls were not all seen");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(await metric(url, "GetTerm", "canceled"), before + 10);
  const ok = await grpc(url, `${election}GetTerm`, envelope(getTerm("e")));
  assert.equal(ok.trailers["grpc-status"], "0");
}

const watch = (name: string) =>
  toBinary(WatchRequestSchema, create(WatchRequestSchema, { id: { name } }));

describe("gRPC server streams answered directly", () => {
  it("send what the regular path sends: the state, each change, errors in the trailers", async () => {
    await createOnBoth("w");
    const entered: Record<string, number> = {};
    const changes = await same(
      (u) =>
        grpcStream(u, `${election}Watch`, envelope(watch("w")), 3, {}, async () => {
          entered[u] = (entered[u] ?? 0) + 1;
          await grpc(u, `${election}Enter`, envelope(enter("w", `c${entered[u]}`)));
          await grpc(u, `${election}Enter`, envelope(enter("w", `d${entered[u]}`)));
        }),
      "Watch: the state, then two changes",
    );
    assert.equal(changes.status, 200);
    assert.equal(changes.headers["content-type"], "application/grpc+proto");
    await createOnBoth("deleted-meanwhile");
    const deleted = await same(
      (u) =>
        grpcStream(
          u,
          `${election}Watch`,
          envelope(watch("deleted-meanwhile")),
          Number.POSITIVE_INFINITY,
          {},
          () => connect(u, `${admin}DeleteElection`, '{"name":"deleted-meanwhile"}'),
        ),
      "Watch of an election deleted meanwhile",
    );
    assert.equal(deleted.trailers["grpc-status"], "5");
    assert.match(decodeURIComponent(String(deleted.trailers["grpc-message"])), /was deleted/);
    const missing = await same(
      (u) => grpcStream(u, `${election}Watch`, envelope(watch("nope")), 1),
      "not found",
    );
    assert.equal(missing.trailers["grpc-status"], "5");
    assert.equal(missing.body, "", "no message before the error");
    const bad = await same(
      (u) => grpcStream(u, `${election}Watch`, envelope(watch("")), 1),
      "bad name",
    );
    assert.equal(bad.trailers["grpc-status"], "3");
    // Irregular requests: the regular path answers them.
    const flagged = await same(
      (u) => grpcStream(u, `${election}Watch`, envelope(watch("w"), 1), 1),
      "compressed flag, no encoding",
    );
    assert.equal(flagged.trailers["grpc-status"], "3");
    await same(
      (u) => grpcStream(u, `${election}Watch`, envelope(watch("w")), 1, { "grpc-timeout": "5S" }),
      "deadline",
    );
    await same(
      (u) =>
        grpcStream(u, `${election}Watch`, envelope(gzipSync(watch("w")), 1), 1, {
          "grpc-encoding": "gzip",
        }),
      "gzip request",
    );
  });

  it("compress the pages of a directory watch as the regular path does", async () => {
    for (let i = 0; i < 4; i++) await createOnBoth(`watched-directory-election-${i}`);
    const request = toBinary(
      WatchElectionsRequestSchema,
      create(WatchElectionsRequestSchema, { namePrefix: "watched-directory-" }),
    );
    for (const accept of ["gzip", "identity", undefined]) {
      const answer = await same(
        (u) =>
          grpcStream(
            u,
            `${directory}WatchElections`,
            envelope(request),
            1,
            accept === undefined ? {} : { "grpc-accept-encoding": accept },
          ),
        `WatchElections, accepting ${accept}`,
      );
      assert.equal(answer.headers["grpc-encoding"], accept === "gzip" ? "gzip" : undefined);
      assert.equal(answer.body.slice(0, 2), accept === "gzip" ? "01" : "00");
    }
  });

  it("release a watch whose client stops reading and goes, and count it as canceled", async () => {
    await createOnBoth("abandoned");
    for (const server of [direct, fronted]) await abandonWatches(server);
  });
});

async function abandonWatches(server: Electd) {
  const url = server.url;
  const before = await metric(url, "Watch", "canceled");
  const open = server.hub.size;
  for (let i = 0; i < 5; i++) {
    await grpcStream(url, `${election}Watch`, envelope(watch("abandoned")), 1);
  }
  const deadline = Date.now() + 10_000;
  while ((await metric(url, "Watch", "canceled")) < before + 5) {
    if (Date.now() > deadline) throw new Error("the abandoned watches were not all counted");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(await metric(url, "Watch", "canceled"), before + 5);
  assert.equal(server.hub.size, open, "every slot given back");
}

/** electd_rpc_requests_total of a LeaderElection method over gRPC with this code. */
async function metric(url: string, method: string, code: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("electd_rpc_requests_total{") &&
        l.includes(`method="${method}"`) &&
        l.includes('protocol="grpc"') &&
        l.includes(`code="${code}"`),
    );
  return line ? Number(line.split(" ").at(-1)) : 0;
}
