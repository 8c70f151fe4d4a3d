// Settings that keep clients from holding connections: timeouts, TCP keep-alive, the
// HTTP/2 stream limit and the cap on open connections, read like every other setting.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, loadConfig } from "../../server/config.js";
import { testConfig } from "../support/server.js";

describe("connection settings", () => {
  it("default to 10s for headers, 60s idle, 30s TCP keep-alive, 100 streams, 10000 connections", () => {
    assert.deepEqual(testConfig().connections, {
      headersTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      tcpKeepAliveMs: 30_000,
      maxConcurrentStreams: 100,
      maxConnections: 10_000,
    });
    const config = loadConfig([], {
      HEADERS_TIMEOUT: "500ms",
      IDLE_TIMEOUT: "5m",
      TCP_KEEPALIVE: "1s",
      MAX_CONCURRENT_STREAMS: "7",
      MAX_CONNECTIONS: "50",
    });
    assert.notEqual(config, "help");
    if (config !== "help") {
      assert.deepEqual(config.connections, {
        headersTimeoutMs: 500,
        idleTimeoutMs: 300_000,
        tcpKeepAliveMs: 1000,
        maxConcurrentStreams: 7,
        maxConnections: 50,
      });
    }
  });

  it("refuses values a socket cannot take, naming the setting", () => {
    for (const [flag, value, env] of [
      ["--headers-timeout", "10", "HEADERS_TIMEOUT"],
      ["--idle-timeout", "0s", "IDLE_TIMEOUT"],
      ["--tcp-keepalive", "500ms", "TCP_KEEPALIVE"],
      ["--max-concurrent-streams", "0", "MAX_CONCURRENT_STREAMS"],
      ["--max-connections", "0", "MAX_CONNECTIONS"],
    ] as const) {
      assert.throws(
        () => loadConfig([flag, value], {}),
        (error: unknown) => error instanceof ConfigError && error.message.includes(env),
        `${flag} ${value}`,
      );
    }
  });
});
