// Types of scripts/bundle.mjs, for the tests that import it.
import type { BuildOptions } from "esbuild";

export declare const bundleOptions: BuildOptions;
export declare function bundle(outdir: string): Promise<void>;
