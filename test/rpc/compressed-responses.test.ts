// Compressed responses: a client that accepts gzip gets responses of COMPRESS_MIN_BYTES or
// more gzipped, and smaller ones as they are; either way it reads the same elections.
import assert from "node:assert/strict";
import { request } from "node:http";
import { describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  ListElectionsRequestSchema,
  ListElectionsResponseSchema,
} from "../../gen/electd/v1/directory_pb.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--compress-min-bytes", "2500"]);
/** 100 elections whose summaries take about 32 bytes each. */
const names = Array.from(
  { length: 100 },
  (_, i) => `compressed-response-${String(i).padStart(3, "0")}`,
);
for (const name of names) await server.store.create(name, []);

/** ListElections over Connect unary (binary, HTTP/1.1), accepting gzip: the raw answer. */
function list(pageSize: number): Promise<{ encoding: string | undefined; body: Buffer }> {
  const body = toBinary(
    ListElectionsRequestSchema,
    create(ListElectionsRequestSchema, { pageSize }),
  );
  return new Promise((resolve, reject) => {
    const req = request(
      `${server.url}/electd.v1.ElectionDirectoryService/ListElections`,
      {
        method: "POST",
        headers: { "content-type": "application/proto", "accept-encoding": "gzip" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          assert.equal(res.statusCode, 200);
          const encoding = res.headers["content-encoding"];
          resolve({ encoding, body: Buffer.concat(chunks) });
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

describe("compressed responses", () => {
  it("gzips a response of COMPRESS_MIN_BYTES or more for a client that accepts gzip", async () => {
    const { encoding, body } = await list(100);
    assert.equal(encoding, "gzip");
    const page = fromBinary(ListElectionsResponseSchema, gunzipSync(body));
    assert.equal(page.elections.length, 100);
    assert.ok(body.length < 2500, `${body.length} bytes gzipped`);
  });

  it("sends a smaller response as it is, although Connect alone would gzip it (1 KiB)", async () => {
    const { encoding, body } = await list(50);
    assert.equal(encoding, undefined);
    assert.ok(body.length > 1024 && body.length < 2500, `${body.length} bytes`);
    const page = fromBinary(ListElectionsResponseSchema, body);
    assert.deepEqual(
      page.elections.map((e) => e.name),
      names.slice(0, 50),
    );
  });
});
