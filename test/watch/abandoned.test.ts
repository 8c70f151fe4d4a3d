// Watches abandoned by clients that stopped reading: a stream whose election state is
// larger than the HTTP/2 stream window (64 KiB) cannot even finish its first message, so
// the server's write waits for the client. When that client vanishes, the watch slot must
// come back all the same, on every protocol, or MAX_WATCHES fills up for ever.
import assert from "node:assert/strict";
import { type ClientHttp2Session, connect as connectHttp2 } from "node:http2";
import { connect as connectTcp, type Socket } from "node:net";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  LeaderElection,
  WatchRequestSchema,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { WatchElectionsRequestSchema } from "../../gen/electd/v1/directory_pb.js";
import { grpcEnvelope as envelope } from "../support/grpc.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--max-candidates", "2000"]);
const url = new URL(server.url);
const client = createClient(
  LeaderElection,
  createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
);

/** An election whose state is about 200 KiB: far more than one HTTP/2 stream window. */
async function bigElection(name: string): Promise<void> {
  await client.create({ id: { name } });
  for (let i = 0; i < 800; i++) {
    await client.enter({
      id: { name },
      candidate: `${String(i).padStart(4, "0")}-${"c".repeat(240)}`,
    });
  }
}

async function waitFor(what: string, condition: () => boolean, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const watchBody = (name: string) =>
  envelope(toBinary(WatchRequestSchema, create(WatchRequestSchema, { id: { name } })));
const directoryBody = () =>
  envelope(toBinary(WatchElectionsRequestSchema, create(WatchElectionsRequestSchema, {})));

/** Each protocol's request headers for a server-streaming call. */
const protocols = {
  gRPC: { "content-type": "application/grpc+proto", te: "trailers" },
  "gRPC-Web": { "content-type": "application/grpc-web+proto" },
  Connect: { "content-type": "application/connect+proto" },
} as const;

/**
 * Opens `count` streams on one h2c connection and never reads from them: the connection
 * window stays closed after the first 64 KiB.
 */
async function pausedStreams(
  path: string,
  body: Buffer,
  headers: Record<string, string>,
  count: number,
): Promise<ClientHttp2Session> {
  const session = connectHttp2(server.url);
  session.on("error", () => {});
  const opened = Array.from({ length: count }, () => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    stream.on("error", () => {});
    stream.end(body);
    // Never read: the stream stays paused, as a client that stopped reading leaves it.
    stream.pause();
    return new Promise<void>((resolve) => stream.once("response", () => resolve()));
  });
  await Promise.all(opened);
  return session;
}

describe("abandoned watches", () => {
  it("frees the slots of Watch streams whose clients stopped reading, then vanished, on every protocol over h2c", async () => {
    await bigElection("big");
    for (const [protocol, headers] of Object.entries(protocols)) {
      const session = await pausedStreams(
        "/atomix.runtime.election.v1.LeaderElection/Watch",
        watchBody("big"),
        headers,
        20,
      );
      await waitFor(`${protocol}: 20 watches open`, () => server.hub.size === 20);
      // The client vanishes: its socket is destroyed with nothing read.
      session.destroy();
      await waitFor(`${protocol}: every watch released`, () => server.hub.size === 0);
    }
  });

  it("frees the slots of WatchElections streams on a large directory whose clients vanished", async () => {
    const session = await pausedStreams(
      "/electd.v1.ElectionDirectoryService/WatchElections",
      directoryBody(),
      protocols.gRPC,
      20,
    );
    await waitFor("20 directory watches open", () => server.hub.size === 20);
    session.destroy();
    await waitFor("every directory watch released", () => server.hub.size === 0);
  });

  it("frees the slots of HTTP/1.1 Watch streams whose clients stopped reading, then vanished", async () => {
    const body = watchBody("big");
    const sockets = await Promise.all(
      Array.from(
        { length: 20 },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const socket = connectTcp(Number(url.port), url.hostname, () => {
              socket.write(
                `POST /atomix.runtime.election.v1.LeaderElection/Watch HTTP/1.1\r\nHost: ${url.host}\r\n` +
                  `Content-Type: application/connect+proto\r\nContent-Length: ${body.length}\r\n\r\n`,
              );
              socket.write(body);
            });
            socket.once("data", () => {
              socket.pause();
              resolve(socket);
            });
            socket.once("error", reject);
          }),
      ),
    );
    await waitFor("20 watches open", () => server.hub.size === 20);
    for (const socket of sockets) socket.destroy();
    await waitFor("every watch released", () => server.hub.size === 0);
    assert.equal(server.hub.size, 0);
  });
});
