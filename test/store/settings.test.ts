// Choosing the store: durable in ./data unless told otherwise, set by flag or environment,
// and wired into the server (its /healthz names the store it runs on).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, loadConfig, settings } from "../../server/config.js";
import { DATA_FILE } from "../../server/store/durable.js";
import { startServer } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

describe("store settings", () => {
  it("keeps data in the durable store under ./data by default", () => {
    const config = loadConfig([], {});
    assert.ok(config !== "help");
    assert.equal(config.store, "durable");
    assert.equal(config.dataDir, "./data");
  });

  it("takes --store and --data-dir from flags before STORE and DATA_DIR", () => {
    const fromEnv = loadConfig([], { STORE: "memory", DATA_DIR: "/var/lib/electd" });
    assert.ok(fromEnv !== "help");
    assert.equal(fromEnv.store, "memory");
    assert.equal(fromEnv.dataDir, "/var/lib/electd");
    const fromFlags = loadConfig(["--store", "durable", "--data-dir", "/srv/e"], {
      STORE: "memory",
      DATA_DIR: "/var/lib/electd",
    });
    assert.ok(fromFlags !== "help");
    assert.equal(fromFlags.store, "durable");
    assert.equal(fromFlags.dataDir, "/srv/e");
  });

  it("refuses an unknown store and an empty data directory, naming the setting", () => {
    assert.throws(
      () => loadConfig(["--store", "disk"], {}),
      (error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /--store \/ STORE: "disk" is not durable, memory or etcd/);
        return true;
      },
    );
    assert.throws(() => loadConfig([], { DATA_DIR: "" }), /--data-dir \/ DATA_DIR/);
  });

  it("waits 50ms for another process's lock on the data file unless told otherwise", () => {
    const byDefault = loadConfig([], {});
    assert.ok(byDefault !== "help");
    assert.equal(byDefault.storeBusyTimeoutMs, 50);
    const fromEnv = loadConfig([], { STORE_BUSY_TIMEOUT: "200ms" });
    assert.ok(fromEnv !== "help");
    assert.equal(fromEnv.storeBusyTimeoutMs, 200);
    const fromFlag = loadConfig(["--store-busy-timeout", "1s"], { STORE_BUSY_TIMEOUT: "200ms" });
    assert.ok(fromFlag !== "help");
    assert.equal(fromFlag.storeBusyTimeoutMs, 1000);
  });

  it("refuses a store busy timeout that would freeze the server, naming the setting", () => {
    for (const value of ["2s", "1001ms", "0ms", "fast"]) {
      assert.throws(
        () => loadConfig(["--store-busy-timeout", value], {}),
        (error) =>
          error instanceof ConfigError &&
          /--store-busy-timeout \/ STORE_BUSY_TIMEOUT/.test(error.message),
        value,
      );
    }
  });

  it("takes the total candidates limit from --max-candidates-total or MAX_CANDIDATES_TOTAL", () => {
    const limit = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const config = loadConfig(argv, env);
      assert.ok(config !== "help");
      return config.limits.maxCandidatesTotal;
    };
    assert.equal(limit([]), Number(settings.maxCandidatesTotal.fallback));
    assert.equal(limit([], { MAX_CANDIDATES_TOTAL: "5000" }), 5000);
    assert.equal(limit(["--max-candidates-total", "7"], { MAX_CANDIDATES_TOTAL: "5000" }), 7);
    for (const bad of ["0", "-1", "1.5", "lots", ""]) {
      assert.throws(
        () => limit([], { MAX_CANDIDATES_TOTAL: bad }),
        (error) =>
          error instanceof ConfigError &&
          error.message.startsWith(`--max-candidates-total / MAX_CANDIDATES_TOTAL: "${bad}"`),
        bad,
      );
    }
  });

  it("serves from the durable store in the chosen directory, and says so on /healthz", async () => {
    const dataDir = join(tempDir("settings"), "data");
    const electd = await startServer(["--store", "durable", "--data-dir", dataDir]);
    assert.ok(existsSync(join(dataDir, DATA_FILE)));
    const health = (await (await fetch(`${electd.url}/healthz`)).json()) as { store: string };
    assert.equal(health.store, "durable");
    await electd.stop(500);
  });

  it("gives tests the memory store unless they choose one", async () => {
    const electd = await startServer();
    const health = (await (await fetch(`${electd.url}/healthz`)).json()) as { store: string };
    assert.equal(health.store, "memory");
  });

  it("reaches etcd at the local default unless told otherwise, with user and password from the environment only", () => {
    const config = loadConfig(["--store", "etcd"], {});
    assert.ok(config !== "help");
    assert.deepEqual(config.etcd, {
      endpoints: ["http://127.0.0.1:2379"],
      prefix: "/electd/",
      cacert: undefined,
      cert: undefined,
      key: undefined,
      username: undefined,
      password: undefined,
      timeoutMs: 5000,
      maxTxnOps: 128,
    });
    const set = loadConfig(
      [
        "--store",
        "etcd",
        "--etcd-endpoints",
        "https://a:2379, https://b:2379",
        "--etcd-timeout",
        "2s",
      ],
      {
        ETCD_PREFIX: "/team/",
        ETCD_MAX_TXN_OPS: "64",
        ETCD_CACERT: "ca.pem",
        ETCD_CERT: "c.pem",
        ETCD_KEY: "k.pem",
        ETCD_USERNAME: "electd",
        ETCD_PASSWORD: "secret",
      },
    );
    assert.ok(set !== "help");
    assert.deepEqual(set.etcd, {
      endpoints: ["https://a:2379", "https://b:2379"],
      prefix: "/team/",
      cacert: "ca.pem",
      cert: "c.pem",
      key: "k.pem",
      username: "electd",
      password: "secret",
      timeoutMs: 2000,
      maxTxnOps: 64,
    });
  });

  it("refuses etcd settings that cannot work, naming the setting", () => {
    const refused = (argv: string[], env: NodeJS.ProcessEnv, message: RegExp) =>
      assert.throws(
        () => loadConfig(["--store", "etcd", ...argv], env),
        (error) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          return true;
        },
      );
    refused(
      ["--etcd-endpoints", "127.0.0.1:2379"],
      {},
      /--etcd-endpoints \/ ETCD_ENDPOINTS: "127.0.0.1:2379" is not a URL/,
    );
    refused(["--etcd-endpoints", " , "], {}, /at least one endpoint/);
    refused(
      ["--etcd-prefix", "/electd"],
      {},
      /--etcd-prefix \/ ETCD_PREFIX: "\/electd" must end with "\/"/,
    );
    refused(["--etcd-cert", "c.pem"], {}, /--etcd-cert and --etcd-key/);
    refused(
      ["--etcd-max-txn-ops", "0"],
      {},
      /--etcd-max-txn-ops \/ ETCD_MAX_TXN_OPS: "0" is not a whole number from 1/,
    );
    refused(
      [],
      { ETCD_USERNAME: "electd" },
      /ETCD_USERNAME and ETCD_PASSWORD must be given together/,
    );
    refused(["--etcd-timeout", "5"], {}, /--etcd-timeout \/ ETCD_TIMEOUT/);
  });
});
