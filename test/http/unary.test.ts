// The plain unary calls are answered outside Fastify and Connect's generic pipeline
// (server/http/unary.ts). Whatever they are asked, the answer must be the one the regular
// path gives: the same requests, sent as raw bytes to a server using it and to one that
// does not (with the access log on, every request goes through Fastify), get the same
// status, headers, body and trailers.
import assert from "node:assert/strict";
import { request as h1request } from "node:http";
import { connect as h2connect } from "node:http2";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  EnterRequestSchema,
  GetTermRequestSchema,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ListElectionsRequestSchema } from "../../gen/electd/v1/directory_pb.js";
import { type Electd, start } from "../../server/electd.js";
import { testConfig } from "../support/server.js";

let direct: Electd;
let regular: Electd;
before(async () => {
  // A low threshold, so that responses of a few elections are compressed when accepted.
  const flags = ["--compress-min-bytes", "64"];
  direct = await start(testConfig(flags));
  regular = await start(testConfig([...flags, "--access-log", "on"]));
});
after(async () => {
  await Promise.all([direct?.stop(500), regular?.stop(500)]);
});

const election = "/atomix.runtime.election.v1.LeaderElection/";
const directory = "/electd.v1.ElectionDirectoryService/";

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

function grpc(url: string, path: string, body: Uint8Array, headers = {}): Promise<Answer> {
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
    const chunks: Buffer[] = [];
    let status = 0;
    let head: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = comparable({ ...h, ":status": undefined });
    });
    stream.on("trailers", (t) => {
      trailers = comparable({ ...t });
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      session.close();
      resolve({ status, headers: head, body: Buffer.concat(chunks).toString("hex"), trailers });
    });
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

function envelope(message: Uint8Array, flags = 0): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = flags;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

const getTerm = (name: string) =>
  toBinary(GetTermRequestSchema, create(GetTermRequestSchema, { id: { name } }));
const enter = (name: string, candidate: string) =>
  toBinary(EnterRequestSchema, create(EnterRequestSchema, { id: { name }, candidate }));

/** Sends the same request to both servers, one after the other, and compares. */
async function same(send: (url: string) => Promise<Answer>, what: string): Promise<Answer> {
  const a = await send(direct.url);
  const b = await send(regular.url);
  assert.deepEqual(a, b, what);
  return a;
}

async function createOnBoth(name: string): Promise<void> {
  for (const server of [direct, regular]) {
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
      await grpc(direct.url, `${election}Enter`, envelope(enter(name, "a")));
      await grpc(regular.url, `${election}Enter`, envelope(enter(name, "a")));
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
});
