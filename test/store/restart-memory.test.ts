// A server that ran always starts again with the same settings: loading the data file must
// not need more memory than serving what is in it. The server is filled through the API
// under a heap limit, stopped, and started again under the same limit.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { type ServerProcess, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

const ELECTIONS = 3000;
/**
 * Measured on Node 20: this server needs 80 to 100 MB of heap to be filled with these
 * elections, and restarts in under 80 MB; loading all rows before building any needed
 * about 120 MB, so it ran under this limit and could not start again.
 */
const HEAP_MB = 110;
/** As many tags of the longest allowed kind as an election may carry: 16 KiB each. */
const TAGS = Array.from({ length: 64 }, (_, i) => `${i}`.padEnd(256, "t"));

function start(dataDir: string): Promise<ServerProcess> {
  return spawnServer(
    ["--port", "0", "--store", "durable", "--data-dir", dataDir, "--max-tags", "64"],
    {
      NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}`,
    },
  );
}

async function stop(server: ServerProcess): Promise<void> {
  server.child.kill("SIGTERM");
  assert.equal(await server.exited, 0, server.output());
}

describe("durable store memory", () => {
  it("starts again, under the same heap limit, with everything it served", async () => {
    const dataDir = tempDir("memory");
    const first = await start(dataDir);
    const sessions = new Http2SessionManager(first.url);
    try {
      const client = createClient(
        LeaderElection,
        createConnectTransport({ baseUrl: first.url, httpVersion: "2", sessionManager: sessions }),
      );
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < ELECTIONS; i = next++) {
          await client.create({ id: { name: `election-${i}` }, tags: TAGS });
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      const health = (await (await fetch(`${first.url}/healthz`)).json()) as { elections: number };
      assert.equal(health.elections, ELECTIONS);
    } finally {
      sessions.abort();
      await stop(first);
    }
    const second = await start(dataDir);
    try {
      const health = (await (await fetch(`${second.url}/healthz`)).json()) as { elections: number };
      assert.equal(health.elections, ELECTIONS);
    } finally {
      await stop(second);
    }
  });
});
