// `electd serve`, as the bundle loads it: the server is one CommonJS file beside the
// command (dist/serve.cjs), and on Node 20 electd keeps V8's compiled code for it between
// starts, which Node 20 does not do for any module (Node 22.1 and later do, through
// module.enableCompileCache, which electd.ts turns on: there the file is simply required).
//
// Why (npm run bench:start, side by side): compiling the server's code was about a quarter
// of a start; with the code kept, `node dist/electd.js serve` answered /healthz in 0.75x
// the time. Hand-written, because the one library for it (v8-compile-cache) keeps its
// files in a directory of the shared temporary directory that another user could create
// first, and code read from there runs as electd.
//
// The code is kept in NODE_COMPILE_CACHE (the directory Node 22 uses for the same purpose)
// or else in $XDG_CACHE_HOME/electd (~/.cache/electd), only in a directory this user owns
// and no one else may write to, one file per server build, Node version and CPU; V8
// itself refuses code made from another source or with other flags, and the server then
// compiles as usual and the file is written again. Without a usable directory nothing is
// kept. Stack traces name dist/serve.cjs: start with NODE_OPTIONS=--enable-source-maps
// for traces that name the TypeScript sources (the server is then required as usual).
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import module, { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";

type Server = typeof import("../server/main.js");

export async function serve(argv: readonly string[]): Promise<void> {
  // This module is bundled into dist/chunks/; the server is dist/serve.cjs.
  const file = fileURLToPath(new URL("../serve.cjs", import.meta.url));
  const builtIn = (module as { enableCompileCache?: unknown }).enableCompileCache !== undefined;
  if (builtIn || sourceMapsAsked()) {
    await (createRequire(import.meta.url)(file) as Server).serve(argv);
    return;
  }
  const { server, keep } = compiled(file);
  await server.serve(argv);
  // Serving: what the start ran is compiled now, and kept with the rest.
  setImmediate(keep);
}

function sourceMapsAsked(): boolean {
  const flag = "--enable-source-maps";
  return process.execArgv.includes(flag) || (process.env.NODE_OPTIONS ?? "").includes(flag);
}

/** Runs the CommonJS `file` with the code kept from an earlier start, if any. */
function compiled(file: string): { server: Server; keep: () => void } {
  const source = readFileSync(file, "utf8");
  const kept = cacheFile(source);
  let cachedData: Buffer | undefined;
  if (kept !== undefined) {
    try {
      cachedData = readFileSync(kept);
    } catch {
      // none yet
    }
  }
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    { filename: file, ...(cachedData === undefined ? {} : { cachedData }) },
  );
  const exports = {};
  const commonModule = { exports };
  script.runInThisContext()(exports, createRequire(file), commonModule, file, dirname(file));
  return {
    server: commonModule.exports as Server,
    keep() {
      if (kept === undefined || (cachedData !== undefined && !script.cachedDataRejected)) return;
      try {
        const temporary = `${kept}.${process.pid}`;
        writeFileSync(temporary, script.createCachedData(), { mode: 0o600 });
        renameSync(temporary, kept);
      } catch {
        // Not kept: the next start compiles again.
      }
    },
  };
}

/** Where this build's code is kept, or undefined when no directory is safe to use. */
function cacheFile(source: string): string | undefined {
  const base =
    process.env.NODE_COMPILE_CACHE ||
    join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "electd");
  try {
    mkdirSync(base, { recursive: true, mode: 0o700 });
    const stat = statSync(base);
    if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o022) !== 0) {
      return undefined;
    }
  } catch {
    return undefined;
  }
  const key = createHash("sha256")
    .update(source)
    .update(`\0${process.version}\0${process.arch}`)
    .digest("hex")
    .slice(0, 32);
  return join(base, `electd-serve-${key}.v8`);
}
