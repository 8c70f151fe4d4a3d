// The server as a process: --help, bad flags, health, and a clean stop on SIGTERM/SIGINT
// that ends open Watch streams and exits 0 within 5 s.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { settings } from "../server/config.js";
import { runMain, spawnServer } from "./support/process.js";

describe("electd process", () => {
  it("prints every setting with its flag, variable and default for --help", async () => {
    const { code, stdout } = await runMain(["--help"]);
    assert.equal(code, 0);
    // Every setting on its own line with its flag, variable and default.
    for (const setting of Object.values(settings)) {
      const line = stdout.split("\n").find((l) => l.startsWith(`  --${setting.flag} `)) ?? "";
      assert.ok(line.includes(` ${setting.env} `), `--help has a line for --${setting.flag}`);
      assert.ok(
        line.includes(`(default: ${setting.fallback || "unset"})`),
        `--help gives the default of --${setting.flag}: ${line}`,
      );
    }
  });

  it("refuses a bad flag value with a message naming it and exit code 2", async () => {
    const { code, stderr } = await runMain(["--max-candidates", "lots"]);
    assert.equal(code, 2);
    assert.match(stderr, /--max-candidates \/ MAX_CANDIDATES: "lots" is not a whole number/);
  });

  it("takes PORT and HOST from the environment and answers /healthz", async () => {
    const server = await spawnServer([], { PORT: "0", HOST: "127.0.0.1" });
    try {
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${server.url}/healthz`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { status: string }).status, "serving");
    } finally {
      server.child.kill("SIGTERM");
      await server.exited;
    }
  });

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`ends open Watch streams cleanly and exits 0 within 5 s on ${signal}`, async () => {
      const server = await spawnServer(["--port", "0"]);
      const transports = [
        createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }),
        createGrpcTransport({ baseUrl: server.url }),
      ];
      const watches = await Promise.all(
        transports.map(async (transport) => {
          const client = createClient(LeaderElection, transport);
          await client.create({ id: { name: "e" } });
          const it = client.watch({ id: { name: "e" } })[Symbol.asyncIterator]();
          assert.equal((await it.next()).done, false, "the current state arrives first");
          return it;
        }),
      );
      const started = Date.now();
      server.child.kill(signal);
      for (const it of watches) {
        const end = await it.next(); // must end without an error
        assert.equal(end.done, true);
      }
      assert.equal(await server.exited, 0);
      assert.ok(Date.now() - started < 5000, `stopped in ${Date.now() - started} ms`);
    });
  }
});
