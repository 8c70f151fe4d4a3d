// What ships: the bundle `npm run build` makes (dist/electd.js, run by `npm start` and the
// package's `bin`) serves the API, the dashboard and the durable store without tsx, its
// client subcommands work, and the packed package holds the build and no sources.
// Needs `npm run build` first (`npm test` and `npm ci` run it).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmodSync, existsSync, readdirSync, statSync, writeFileSync } from "node:fs";
import module from "node:module";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { root, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

const run = promisify(execFile);

/** Polls `check` until it holds or `ms` pass; whether it held. */
async function until(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}
const bin = `${root}/dist/electd.js`;

describe("the built electd", () => {
  it("serves the API, the dashboard and the durable store from dist/, without tsx", async (t) => {
    assert.ok(existsSync(bin), "dist/electd.js is missing: run `npm run build` first");
    const dataDir = tempDir("built");
    // No --import tsx: the bundle must run on plain Node.
    const { child, url, exited } = await spawnServer(
      ["--port", "0", "--store", "durable", "--data-dir", dataDir],
      {},
      { built: bin, cwd: dataDir },
    );
    t.after(() => child.kill("SIGKILL"));
    const health = (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
    assert.deepEqual([health.status, health.store], ["serving", "durable"]);
    const page = await fetch(`${url}/elections/x`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<script type="module"/, "the built dashboard");
    const E = `${url}/atomix.runtime.election.v1.LeaderElection`;
    const created = await fetch(`${E}/Create`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: { name: "shipped" } }),
    });
    assert.equal(created.status, 200);
    const entered = await run(process.execPath, [bin, "enter", "shipped", "n1", "--server", url]);
    assert.deepEqual(JSON.parse(entered.stdout), { term: "1", leader: "n1", candidates: [] });
    const status = await run(process.execPath, [bin, "status", "--server", url]);
    assert.match(status.stdout, /^shipped\s+1\s+n1\s+0\s+-$/m);
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  });

  it("keeps V8's compiled code of the server between starts on Node 20, and starts without it", async (t) => {
    const cache = tempDir("compile-cache");
    const env: NodeJS.ProcessEnv = { NODE_COMPILE_CACHE: cache, NODE_OPTIONS: undefined };
    /** Starts `electd serve`, waits until it serves and then a moment more, stops it. */
    const startAndStop = async () => {
      const { child, url, exited } = await spawnServer(["--port", "0"], env, {
        built: bin,
        cwd: cache,
      });
      t.after(() => child.kill("SIGKILL"));
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      // The code is kept once the server serves: wait for the file (or for nothing, on a
      // Node that keeps compiled code itself).
      const kept = await until(() => files(cache).length > 0, 5_000);
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
      return kept;
    };
    const files = (dir: string) =>
      readdirSync(dir).filter((name) => /^electd-serve-[0-9a-f]{32}\.v8$/.test(name));
    const builtIn = "enableCompileCache" in module;
    const kept = await startAndStop();
    if (builtIn) {
      // Node 22.1 and later: Node keeps the code itself, in the same directory, by its own
      // file names; electd writes none of its own.
      assert.equal(kept, false);
      assert.deepEqual(files(cache), []);
      return;
    }
    assert.ok(kept, "the code was kept after the first start");
    const [name] = files(cache) as [string];
    const file = join(cache, name);
    assert.equal(statSync(file).mode & 0o777, 0o600, "readable by this user only");
    assert.ok(statSync(file).size > 100_000);
    const first = statSync(file).mtimeMs;
    await startAndStop();
    assert.equal(statSync(file).mtimeMs, first, "used as it was, not written again");
    // Damaged: V8 refuses it, the server compiles as usual and keeps fresh code.
    writeFileSync(file, "not V8's code");
    await startAndStop();
    assert.ok(statSync(file).size > 100_000, "written again");
    // A directory others may write to is not used.
    const open = tempDir("compile-cache-open");
    chmodSync(open, 0o777);
    env.NODE_COMPILE_CACHE = open;
    await startAndStop();
    assert.deepEqual(files(open), []);
  });

  it("packs the build, the dashboard and the command, and no sources", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: root,
    });
    const [pack] = JSON.parse(stdout) as [{ files: { path: string }[] }];
    const files = pack.files.map((f) => f.path);
    for (const needed of [
      "dist/electd.js",
      "dist/serve.cjs",
      "web/dist/index.html",
      "package.json",
      "README.md",
    ]) {
      assert.ok(files.includes(needed), `the package holds ${needed}`);
    }
    const sources = files.filter((f) => /\.ts$/.test(f) || /^(server|client|cli|test)\//.test(f));
    assert.deepEqual(sources, []);
  });
});
