// The server's bundle: esbuild bundles the electd command (cli/electd.ts and everything it
// imports) into OUTDIR/electd.js and a chunk per subcommand in OUTDIR/chunks/, and the
// server (server/main.ts) into one CommonJS file, OUTDIR/serve.cjs, which `electd serve`
// loads with V8's compiled code kept between starts (cli/serve-cached.ts), and what an h2c
// process runs (server/http/front.ts) into OUTDIR/front.js.
// usage: node scripts/bundle.mjs [OUTDIR]   (default dist; run by `npm run build`)
// Also imported by tests that need a copy of the build elsewhere (test/support/bundle.ts).
import { rmSync } from "node:fs";
import { sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Minified (with names kept: logs and stack traces name classes and functions) and with
 * source maps that hold the mappings but not the sources: Node 20 reads and parses each
 * loaded chunk's map when it loads the chunk, so the map's size is start-up time. See
 * README, "Installing, start-up and Node versions", for what each saves.
 */
export const bundleOptions = {
  entryPoints: [`${root}cli/electd.ts`],
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20.19",
  chunkNames: "chunks/[name]-[hash]",
  // Native code, and a client reading its .proto files from its own directory at run time.
  external: ["better-sqlite3", "etcd3"],
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: false,
  sourcemap: true,
  sourcesContent: false,
  legalComments: "linked",
  logLevel: "warning",
  banner: {
    js: "import { createRequire as __electdCreateRequire } from 'node:module'; const require = __electdCreateRequire(import.meta.url);",
  },
};

/** In the bundle, `electd serve` loads dist/serve.cjs (cli/serve-cached.ts), not the module. */
const serveFromBundle = {
  name: "serve-from-bundle",
  setup(build) {
    build.onResolve({ filter: /^\.\/serve\.js$/ }, (args) =>
      args.importer.endsWith(`${sep}cli${sep}electd.ts`)
        ? { path: `${root}cli/serve-cached.ts` }
        : undefined,
    );
  },
};

/** The server alone, as CommonJS: Node 20 can be handed compiled code for a script only. */
const serverOptions = {
  ...bundleOptions,
  entryPoints: [`${root}server/main.ts`],
  splitting: false,
  format: "cjs",
  define: { "import.meta.url": "__electd_module_url" },
  banner: {
    js: "const __electd_module_url = require('node:url').pathToFileURL(__filename).href;",
  },
};

/** Bundles into `outdir`, emptied first. */
export async function bundle(outdir) {
  const { build } = await import("esbuild");
  rmSync(outdir, { recursive: true, force: true });
  await build({ ...bundleOptions, plugins: [serveFromBundle], outdir });
  const { chunkNames: _, ...server } = serverOptions;
  await build({ ...server, outfile: `${outdir}/serve.cjs` });
  // An h2c process (`--h2c-processes`) runs this file, found next to serve.cjs.
  const { chunkNames: __, ...front } = bundleOptions;
  await build({
    ...front,
    entryPoints: [`${root}server/http/front.ts`],
    splitting: false,
    outfile: `${outdir}/front.js`,
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await bundle(process.argv[2] ?? `${root}dist`);
}
