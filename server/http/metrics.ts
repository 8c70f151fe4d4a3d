// GET /metrics: every metric in Prometheus's text format, for a Prometheus scrape. With
// auth on, the scrape needs the viewer role (on any names: no metric names an election).
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Caller, Scope } from "../auth/access.js";
import { ElectdError } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";

/** The rpc /metrics is allowed as: what a viewer may read. */
const READ = "electd.v1.ElectionDirectoryService/ListElections";

export function metricsRoute(
  fastify: FastifyInstance,
  metrics: Metrics,
  admit: (request: FastifyRequest, rpc: string, scope: Scope) => Caller,
): void {
  fastify.get("/metrics", async (request, reply) => {
    try {
      admit(request, READ, { kind: "none" });
    } catch (error) {
      if (!(error instanceof ElectdError)) throw error;
      const status = error.kind === "unauthenticated" ? 401 : 403;
      return reply.code(status).type("text/plain; charset=utf-8").send(`${error.message}\n`);
    }
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}
