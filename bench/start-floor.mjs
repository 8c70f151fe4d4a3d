// The floor under electd's start (bench/start.ts): a bare Fastify server answering
// /healthz and nothing else, bundled and minified as electd is.
// usage: node FLOOR_BUNDLE --port N
import Fastify from "fastify";

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
const app = Fastify();
app.get("/healthz", async () => ({ status: "serving" }));
await app.listen({ port, host: "127.0.0.1" });
