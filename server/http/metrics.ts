// GET /metrics: every metric in Prometheus's text format, for a Prometheus scrape.
import type { FastifyInstance } from "fastify";
import type { Metrics } from "../metrics/metrics.js";

export function metricsRoute(fastify: FastifyInstance, metrics: Metrics): void {
  fastify.get("/metrics", async (_req, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
}
