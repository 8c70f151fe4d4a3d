// Compressed requests (API.md section 4): a good one is served like an uncompressed one;
// one that does not decompress, or decompresses to a message that does not parse, is
// refused with invalid_argument naming the problem, on every protocol; one that grows past
// --max-request-bytes when decompressed is refused with resource_exhausted.
//
// Real clients send the bad requests: a Compression named "gzip" whose compress() returns
// chosen bytes makes each transport frame them exactly as it frames real gzip.
import assert from "node:assert/strict";
import { connect as connectHttp2 } from "node:http2";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { rejects } from "../support/rejects.js";
import { startServer } from "../support/server.js";

const { url } = await startServer(["--max-request-bytes", "2048"]);
const sessions: Http2SessionManager[] = [];
after(() => {
  for (const s of sessions) s.abort();
});

/** A "gzip" that sends `bytes(request)` instead of the compressed request. */
function sending(bytes: (request: Uint8Array) => Uint8Array): Compression {
  return {
    name: "gzip",
    compress: async (request) => new Uint8Array(bytes(request)),
    decompress: compressionGzip.decompress,
  };
}

/** gzip whose last 8 bytes (CRC and length) are missing: zlib reports a truncated stream. */
const truncatedGzip = sending((request) => gzipSync(request).subarray(0, -8));
/** Valid gzip of a message whose first field claims more bytes than follow. */
const gzippedGarbage = sending(() => gzipSync(new Uint8Array([0x0a, 0xff, 0xff, 0xff])));
/** ~1 KiB on the wire, 1 MiB once inflated: far past --max-request-bytes 2048. */
const bomb = sending(() => gzipSync(new Uint8Array(1 << 20)));

interface Protocol {
  readonly name: string;
  readonly binary: boolean;
  transport(sendCompression: Compression): Transport;
}

function h2(): Http2SessionManager {
  const manager = new Http2SessionManager(url);
  sessions.push(manager);
  return manager;
}

const protocols: Protocol[] = [
  {
    name: "Connect JSON (HTTP/1.1)",
    binary: false,
    transport: (sendCompression) =>
      createConnectTransport({
        baseUrl: url,
        httpVersion: "1.1",
        sendCompression,
        compressMinBytes: 0,
      }),
  },
  {
    name: "Connect binary (HTTP/2)",
    binary: true,
    transport: (sendCompression) =>
      createConnectTransport({
        baseUrl: url,
        httpVersion: "2",
        sessionManager: h2(),
        useBinaryFormat: true,
        sendCompression,
        compressMinBytes: 0,
      }),
  },
  {
    // Unary calls go as GET with the message in the query; Watch, streaming, as a POST.
    name: "Connect binary GET",
    binary: true,
    transport: (sendCompression) =>
      createConnectTransport({
        baseUrl: url,
        httpVersion: "1.1",
        useBinaryFormat: true,
        useHttpGet: true,
        sendCompression,
        compressMinBytes: 0,
      }),
  },
  {
    name: "gRPC (HTTP/2)",
    binary: true,
    transport: (sendCompression) =>
      createGrpcTransport({
        baseUrl: url,
        sessionManager: h2(),
        sendCompression,
        compressMinBytes: 0,
      }),
  },
  {
    name: "gRPC-Web (HTTP/1.1)",
    binary: true,
    transport: (sendCompression) =>
      createGrpcWebTransport({
        baseUrl: url,
        httpVersion: "1.1",
        sendCompression,
        compressMinBytes: 0,
      }),
  },
];

let counter = 0;

describe("compressed requests", () => {
  for (const p of protocols) {
    it(`serves good gzip requests, unary and Watch (${p.name})`, async () => {
      const client = createClient(LeaderElection, p.transport(compressionGzip));
      const plain = createClient(
        LeaderElection,
        createConnectTransport({ baseUrl: url, httpVersion: "1.1" }),
      );
      const name = `gz-${++counter}`;
      await plain.create({ id: { name } });
      await plain.enter({ id: { name }, candidate: "a" });
      const term = await client.getTerm({ id: { name } });
      assert.equal(term.term?.leader, "a");
      const watch = new AbortController();
      for await (const state of client.watch({ id: { name } }, { signal: watch.signal })) {
        assert.equal(state.term?.leader, "a");
        break;
      }
      watch.abort();
    });

    it(`refuses truncated gzip with invalid_argument, unary and Watch (${p.name})`, async () => {
      const client = createClient(LeaderElection, p.transport(truncatedGzip));
      const expected = /^request is not valid gzip \(unexpected end of file\)$/;
      await rejects(client.getTerm({ id: { name: "x" } }), Code.InvalidArgument, expected);
      await rejects(firstState(client, "x"), Code.InvalidArgument, expected);
    });

    if (p.binary) {
      it(`refuses gzip of a malformed message with invalid_argument, unary and Watch (${p.name})`, async () => {
        const client = createClient(LeaderElection, p.transport(gzippedGarbage));
        const expected =
          /^request is not a valid protobuf message after gzip decompression \(.+\)$/;
        await rejects(client.getTerm({ id: { name: "x" } }), Code.InvalidArgument, expected);
        await rejects(firstState(client, "x"), Code.InvalidArgument, expected);
      });
    }

    it(`refuses a request that inflates past --max-request-bytes with resource_exhausted (${p.name})`, async () => {
      const client = createClient(LeaderElection, p.transport(bomb));
      await rejects(client.getTerm({ id: { name: "x" } }), Code.ResourceExhausted, /2048/);
      await rejects(firstState(client, "x"), Code.ResourceExhausted, /2048/);
    });
  }

  it("refuses gzip that is not gzip at all with invalid_argument (Connect binary, fetch)", async () => {
    const res = await fetch(`${url}/atomix.runtime.election.v1.LeaderElection/GetTerm`, {
      method: "POST",
      headers: { "content-type": "application/proto", "content-encoding": "gzip" },
      body: new Uint8Array([1, 2, 3, 4, 5, 6]),
    });
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), {
      code: "invalid_argument",
      message: "request is not valid gzip (incorrect header check)",
    });
  });

  it("refuses a gRPC message flagged as compressed without grpc-encoding with invalid_argument", async () => {
    const session = connectHttp2(url);
    try {
      const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/atomix.runtime.election.v1.LeaderElection/GetTerm",
          "content-type": "application/grpc",
          te: "trailers",
        });
        let status: Record<string, unknown> = {};
        stream.on("response", (headers) => {
          if (headers["grpc-status"] !== undefined) status = headers;
        });
        stream.on("trailers", (t) => {
          status = t;
        });
        stream.on("error", reject);
        stream.on("close", () => resolve(status));
        stream.resume();
        // One envelope, compressed flag set, holding a gzipped empty message.
        const payload = gzipSync(new Uint8Array(0));
        const envelope = Buffer.alloc(5);
        envelope.writeUInt8(1, 0);
        envelope.writeUInt32BE(payload.length, 1);
        stream.end(Buffer.concat([envelope, payload]));
      });
      assert.equal(trailers["grpc-status"], String(Code.InvalidArgument));
      assert.equal(
        decodeURIComponent(String(trailers["grpc-message"])),
        "request message is flagged as compressed but grpc-encoding names no compression",
      );
    } finally {
      session.close();
    }
  });
});

/** Opens a Watch and resolves with its first state. */
async function firstState(
  client: ReturnType<typeof createClient<typeof LeaderElection>>,
  name: string,
) {
  for await (const state of client.watch({ id: { name } })) return state;
  throw new Error("the watch ended without a state");
}
