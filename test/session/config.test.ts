// Session settings: durations with units from flags or the environment, bounds checked at
// start-up with a message naming the setting.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, loadConfig, usage } from "../../server/config.js";

function sessions(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const config = loadConfig(argv, env);
  if (config === "help") throw new Error("unexpected --help");
  return config.sessions;
}

describe("session settings", () => {
  it("defaults to a 10 s TTL between 1 s and 5 min, and 100,000 sessions", () => {
    assert.deepEqual(sessions([]), {
      ttlMs: 10_000,
      minTtlMs: 1000,
      maxTtlMs: 300_000,
      maxSessions: 100_000,
    });
  });

  it("reads durations in ms, s, m or h from flags first, then the environment", () => {
    const read = sessions(["--session-ttl", "1500ms", "--session-ttl-max", "1h"], {
      SESSION_TTL: "20s",
      SESSION_TTL_MIN: "500ms",
      MAX_SESSIONS: "7",
    });
    assert.deepEqual(read, { ttlMs: 1500, minTtlMs: 500, maxTtlMs: 3_600_000, maxSessions: 7 });
    assert.equal(sessions(["--session-ttl", "2m"]).ttlMs, 120_000);
  });

  it("refuses a duration without a unit, zero, or beyond what a timer can wait", () => {
    for (const bad of ["10", "0s", "1.5s", "-1s", "25000h", "ten seconds"]) {
      assert.throws(
        () => sessions([], { SESSION_TTL_MAX: bad }),
        (error: unknown) =>
          error instanceof ConfigError &&
          /--session-ttl-max \/ SESSION_TTL_MAX/.test(error.message),
        bad,
      );
    }
  });

  it("refuses a default TTL outside the minimum and maximum", () => {
    assert.throws(
      () => sessions(["--session-ttl", "500ms"]),
      (error: unknown) =>
        error instanceof ConfigError && /--session-ttl \(SESSION_TTL\)/.test(error.message),
    );
  });

  it("lists the session settings in --help", () => {
    for (const flag of [
      "--session-ttl ",
      "--session-ttl-min",
      "--session-ttl-max",
      "--max-sessions",
    ]) {
      assert.ok(usage().includes(flag), flag);
    }
  });
});
