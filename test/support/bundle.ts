// A copy of the built server that any user may run: bundled as `npm run build` bundles it
// (scripts/bundle.mjs) into a fresh temporary directory, with the native module it loads,
// every file in it readable by all. For tests that run electd as another user, who may
// not be able to read the checkout at all (a clone under a 0700 directory, `mktemp -d`).
import { chmodSync, cpSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { bundle } from "../../scripts/bundle.mjs";
import { root } from "./process.js";

/** What the bundle loads from node_modules at run time: better-sqlite3 and what it requires. */
const RUNTIME_PACKAGES = ["better-sqlite3", "bindings", "file-uri-to-path"];

/** better-sqlite3's sources and build intermediates: only lib/ and the .node file are loaded. */
function loaded(path: string): boolean {
  return !/\/better-sqlite3\/(deps|src)(\/|$)|\/build\/(deps|Release\/(obj|obj\.target|test_extension\.node|sqlite3\.a))(\/|$)/.test(
    path,
  );
}

function openToAll(path: string): void {
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) openToAll(full);
    else chmodSync(full, statSync(full).mode | 0o444);
  }
  chmodSync(path, 0o755);
}

/**
 * Builds the copy in `dir` (made empty, by tempDir, for instance); resolves with its entry
 * point (the `electd` command).
 */
export async function readableBuild(dir: string): Promise<string> {
  await bundle(join(dir, "dist"));
  // The server finds its package root (for web/dist) by the nearest package.json.
  writeFileSync(join(dir, "package.json"), `${JSON.stringify({ type: "module" })}\n`);
  for (const name of RUNTIME_PACKAGES) {
    cpSync(join(root, "node_modules", name), join(dir, "node_modules", name), {
      recursive: true,
      dereference: true,
      filter: loaded,
    });
  }
  openToAll(dir);
  return join(dir, "dist", "electd.js");
}
