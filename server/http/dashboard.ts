// Serves the built dashboard (web/dist, made by `vite build`) at `/`. Deep links such as
// /elections/<name> get the same index.html, and the app picks the page from the URL, so a
// reload works. RPC paths and /healthz are separate routes and are never shadowed: only
// the files that exist and those deep links are routed here.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from "fastify";

export interface DashboardOptions {
  /** The folder `vite build` wrote: index.html and assets/. */
  readonly root: string;
}

/**
 * web/dist of this package, whose root is the nearest directory above this module holding
 * package.json: this module runs from server/http/ (the sources, through tsx) or bundled
 * into dist/chunks/ (`npm run build`), in a clone or an installed package alike.
 */
export const builtDashboard = join(packageRoot(fileURLToPath(import.meta.url)), "web", "dist");

function packageRoot(module: string): string {
  for (let dir = dirname(module); dirname(dir) !== dir; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
  }
  throw new Error(`no package.json above ${module}`);
}

/** Paths the dashboard's router owns besides `/`. */
const deepLinks = "/elections/*";

const notBuilt = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>electd</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">
<h1>electd is running; the dashboard is not built</h1>
<p>The API is served on this port as usual. To get the dashboard, build it and restart:</p>
<pre>npm run build
npm start</pre>
<p>(<code>npm ci</code> builds it too.)</p>
</body></html>
`;

export async function dashboard(fastify: FastifyInstance, options: DashboardOptions) {
  if (!existsSync(join(options.root, "index.html"))) {
    fastify.log.warn(`dashboard not built (${options.root} is missing): run npm run build`);
    const explain = async (_: unknown, reply: FastifyReply) =>
      reply.code(503).type("text/html; charset=utf-8").send(notBuilt);
    fastify.get("/", explain);
    fastify.get(deepLinks, explain);
    return;
  }
  await fastify.register(fastifyStatic, {
    root: options.root,
    // One route per built file instead of a catch-all, so unknown paths stay 404.
    wildcard: false,
    cacheControl: false,
    setHeaders(res, path) {
      // Vite names assets by content hash; index.html must be revalidated to pick them up.
      res.setHeader(
        "cache-control",
        relative(options.root, path).startsWith(`assets${sep}`)
          ? "public, max-age=31536000, immutable"
          : "no-cache",
      );
    },
  });
  fastify.get(deepLinks, (_, reply) => reply.sendFile("index.html"));
}

/**
 * Fastify answers a path whose percent-encoding does not decode (`/elections/%E0%A4%A`)
 * with a bare 400 before any route runs. Under the dashboard's deep links that would be a
 * blank page: the dashboard is served instead, and says the address is not valid. Other
 * such paths keep Fastify's 400.
 */
export function badUrlErrors(root: string): NonNullable<FastifyServerOptions["frameworkErrors"]> {
  return (error: Error & { code?: string }, request: FastifyRequest, reply: FastifyReply) => {
    const index = join(root, "index.html");
    if (
      error.code === "FST_ERR_BAD_URL" &&
      request.url.startsWith("/elections/") &&
      existsSync(index)
    ) {
      return reply
        .code(200)
        .type("text/html; charset=utf-8")
        .header("cache-control", "no-cache")
        .send(readFileSync(index));
    }
    return reply.code(400).send({ error: "Bad Request", code: error.code, message: error.message });
  };
}
