// Watch resources (API.md section 3): watchers are released when clients go away, and a
// client that reads slowly costs bounded memory and still sees states in order.
import assert from "node:assert/strict";
import { connect as connectHttp2, constants } from "node:http2";
import { connect as connectTcp } from "node:net";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  LeaderElection,
  WatchRequestSchema,
  WatchResponseSchema,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--watch-buffer", "8", "--max-candidates", "200"]);
const url = new URL(server.url);
const client = createClient(
  LeaderElection,
  createConnectTransport({ baseUrl: server.url, httpVersion: "2" }),
);

async function waitFor(condition: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A Connect streaming JSON Watch request over a raw TCP socket, as a crashed client leaves it. */
function rawWatch(name: string): Promise<ReturnType<typeof connectTcp>> {
  const body = JSON.stringify({ id: { name } });
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  frame.write(body, 5);
  return new Promise((resolve, reject) => {
    const socket = connectTcp(Number(url.port), url.hostname, () => {
      socket.write(
        `POST /atomix.runtime.election.v1.LeaderElection/Watch HTTP/1.1\r\nHost: ${url.host}\r\n` +
          `Content-Type: application/connect+json\r\nContent-Length: ${frame.length}\r\n\r\n`,
      );
      socket.write(frame);
    });
    socket.once("data", () => resolve(socket));
    socket.once("error", reject);
  });
}

describe("watch resources", () => {
  it("releases all 1,000 watchers when their clients abort or vanish", async () => {
    await client.create({ id: { name: "many" } });
    const controllers = Array.from({ length: 500 }, () => new AbortController());
    const streams = controllers.map(async (ctl) => {
      try {
        for await (const _ of client.watch({ id: { name: "many" } }, { signal: ctl.signal })) {
          // keep reading until aborted
        }
      } catch {
        // aborted
      }
    });
    const sockets = [];
    for (let i = 0; i < 500; i++) sockets.push(await rawWatch("many"));
    await waitFor(() => server.hub.size === 1000);
    for (const ctl of controllers) ctl.abort();
    for (const socket of sockets) socket.destroy();
    await Promise.all(streams);
    await waitFor(() => server.hub.size === 0);
    const health = (await (await fetch(`${server.url}/healthz`)).json()) as { watches: number };
    assert.equal(health.watches, 0);
  });

  // Connect streams go through Connect's pipeline; plain gRPC ones are sent as pushed
  // (http/direct.ts). Both keep the same mailbox.
  const forms = {
    "Connect streaming JSON": {
      contentType: "application/connect+json",
      request: (name: string) => Buffer.from(JSON.stringify({ id: { name } })),
      candidates: (message: Buffer) =>
        (JSON.parse(message.toString()) as { term?: { candidates: string[] } }).term?.candidates,
    },
    gRPC: {
      contentType: "application/grpc",
      request: (name: string) =>
        toBinary(WatchRequestSchema, create(WatchRequestSchema, { id: { name } })),
      candidates: (message: Buffer) => fromBinary(WatchResponseSchema, message).term?.candidates,
    },
  };
  for (const [form, { contentType, request, candidates }] of Object.entries(forms)) {
    it(`keeps a slow reader's backlog bounded and its states in order, ending at the latest (${form})`, async () => {
      const name = `slow-${contentType}`;
      await client.create({ id: { name } });
      // Large states fill the HTTP/2 flow-control window after a few messages.
      for (let i = 0; i < 200; i++) {
        await client.enter({
          id: { name },
          candidate: `candidate-${String(i).padStart(3, "0")}-${"x".repeat(40)}`,
        });
      }
      const session = connectHttp2(server.url);
      const body = request(name);
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      frame.set(body, 5);
      const stream = session.request({
        [constants.HTTP2_HEADER_METHOD]: "POST",
        [constants.HTTP2_HEADER_PATH]: "/atomix.runtime.election.v1.LeaderElection/Watch",
        "content-type": contentType,
        te: "trailers",
      });
      stream.end(frame);
      stream.pause(); // read nothing for now
      await waitFor(() => server.hub.size === 1);
      // Promote the last candidate 150 times: it moves one place forward each time.
      const climber = `candidate-199-${"x".repeat(40)}`;
      let last: { term?: { candidates: string[] } | undefined } = {};
      let maxPending = 0;
      for (let i = 0; i < 150; i++) {
        last = await client.promote({ id: { name }, candidate: climber });
        maxPending = Math.max(maxPending, server.hub.pending);
      }
      assert.ok(maxPending <= 8, `backlog stayed within --watch-buffer (max seen ${maxPending})`);

      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.resume();
      const queues: string[][] = [];
      await waitFor(() => {
        const all = Buffer.concat(chunks);
        queues.length = 0;
        for (let at = 0; at + 5 <= all.length; ) {
          const length = all.readUInt32BE(at + 1);
          if (at + 5 + length > all.length) break;
          const queue = candidates(all.subarray(at + 5, at + 5 + length));
          if (queue) queues.push(queue);
          at += 5 + length;
        }
        return JSON.stringify(queues.at(-1)) === JSON.stringify(last.term?.candidates);
      });
      stream.close();
      session.close();
      assert.ok(
        queues.length < 151,
        `intermediate states were coalesced (${queues.length} received)`,
      );
      // Coalescing may skip states but never reorders: the climber only ever moves forward.
      const positions = queues.map((q) => q.indexOf(climber));
      for (let i = 1; i < positions.length; i++) {
        assert.ok(
          (positions[i] ?? 0) < (positions[i - 1] ?? 0),
          `state ${i} is newer than state ${i - 1}`,
        );
      }
      await waitFor(() => server.hub.size === 0);
    });
  }
});
