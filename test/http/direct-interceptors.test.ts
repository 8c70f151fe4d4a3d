// The direct path (server/http/direct.ts) runs unary implementations inside the
// interceptors itself, with the response's headers and trailers made only when asked for
// and each method's chain made once. electd's own interceptors set no header, so here the
// direct path is given interceptors and an implementation that do, and must answer as
// connect-es's own Node adapter answers with the same ones: the same status, headers, body
// and trailers.
import assert from "node:assert/strict";
import {
  createServer as createHttp1Server,
  request as h1request,
  type IncomingMessage,
  type Server,
} from "node:http";
import {
  createServer as createHttp2Server,
  type Http2Server,
  connect as h2connect,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createServiceImplSpec, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  GetTermRequestSchema,
  LeaderElection,
} from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { directCalls } from "../../server/http/direct.js";
import { Metrics } from "../../server/metrics/metrics.js";
import type { DirectMethod } from "../../server/rpc/routes.js";
import { grpcEnvelope } from "../support/grpc.js";

const PATH = "/atomix.runtime.election.v1.LeaderElection/GetTerm";

/** GetTerm answers with a term, and sets a header and a trailer of its own. */
const impl: Partial<ServiceImpl<typeof LeaderElection>> = {
  async getTerm(req, ctx) {
    ctx.responseHeader.set("x-impl", "header");
    ctx.responseTrailer.set("x-impl-trailer", "trailer");
    return { term: { term: 7n, leader: req.id?.name ?? "", candidates: ["a"] } };
  },
};

/** Sets a header and a trailer on the answer it passes on. */
const setsHeaders: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set("x-interceptor", "header");
  res.trailer.set("x-interceptor-trailer", "trailer");
  return res;
};

/** Passes on a copy of the request, and answers with a response object of its own. */
const copies: Interceptor = (next) => async (req) => {
  const res = await next({ ...req });
  return {
    ...res,
    header: new Headers({ "x-own": "header" }),
    trailer: new Headers({ "x-own-trailer": "trailer" }),
  };
};

/** Passes on a request of its own making, without the call it came with. */
const replaces: Interceptor = (next) => async (req) =>
  next({
    stream: false,
    service: req.service,
    method: req.method,
    requestMethod: req.requestMethod,
    url: req.url,
    signal: req.signal,
    header: req.header,
    contextValues: req.contextValues,
    message: req.message,
  } as typeof req);

const servers: (Server | Http2Server)[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function listening<S extends Server | Http2Server>(server: S): Promise<string> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An HTTP/2 and an HTTP/1.1 server answering GetTerm on the direct path alone. */
async function direct(interceptors: Interceptor[]) {
  const spec = createServiceImplSpec(LeaderElection, impl);
  const calls = directCalls({
    methods: [spec.methods.getTerm as DirectMethod],
    handlers: () => [],
    interceptors,
    admitStream: () => () => {},
    readMaxBytes: 1 << 20,
    compressMinBytes: 1 << 20,
    metrics: new Metrics(),
  });
  const h2 = createHttp2Server();
  h2.on(
    "stream",
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
      if (!calls.stream(stream, headers, raw))
        stream.respond({ ":status": 404 }, { endStream: true });
    },
  );
  const h1 = createHttp1Server((req, res) => {
    if (!calls.request(req, res)) res.writeHead(404).end();
  });
  return { grpc: await listening(h2), json: await listening(h1) };
}

/** The same on connect-es's own Node adapter. */
async function regular(interceptors: Interceptor[]) {
  const handler = connectNodeAdapter({
    routes: (router) => router.service(LeaderElection, impl),
    interceptors,
  });
  return {
    grpc: await listening(createHttp2Server(handler)),
    json: await listening(createHttp1Server(handler)),
  };
}

interface Answer {
  status: number;
  headers: Record<string, unknown>;
  body: string;
  trailers: Record<string, unknown>;
}

/** Headers to compare: the date, and how the connection is kept, differ between any two. */
function comparable(headers: IncomingHttpHeaders | IncomingMessage["headers"]) {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (key === "date" || key === "keep-alive" || key === "connection") continue;
    out[key] = value;
  }
  return out;
}

const getTerm = () =>
  grpcEnvelope(toBinary(GetTermRequestSchema, create(GetTermRequestSchema, { id: { name: "e" } })));

function grpc(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = h2connect(url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": PATH,
      "content-type": "application/grpc",
      te: "trailers",
    });
    let status = 0;
    let headers: Record<string, unknown> = {};
    let trailers: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      const { ":status": _status, ...rest } = h;
      headers = comparable(rest);
    });
    stream.on("trailers", (t) => {
      trailers = Object.fromEntries(Object.entries(t));
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => {
      session.close();
      resolve({ status, headers, body: Buffer.concat(chunks).toString("hex"), trailers });
    });
    stream.on("error", reject);
    stream.end(getTerm());
  });
}

function json(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = h1request(`${url}${PATH}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: comparable(res.headers),
          body: Buffer.concat(chunks).toString(),
          trailers: {},
        }),
      );
    });
    req.on("error", reject);
    req.end(JSON.stringify({ id: { name: "e" } }));
  });
}

describe("the direct path with interceptors that set headers", () => {
  for (const [name, interceptors] of [
    ["no interceptor (the implementation's own headers and trailers)", []],
    ["an interceptor that sets headers and trailers on the answer", [setsHeaders]],
  ] as const) {
    it(`answers as connect-es does, with ${name}`, async () => {
      const [ours, theirs] = await Promise.all([
        direct([...interceptors]),
        regular([...interceptors]),
      ]);
      for (const protocol of ["grpc", "json"] as const) {
        const call = protocol === "grpc" ? grpc : json;
        const expected = await call(theirs[protocol]);
        assert.equal(expected.status, 200, `${protocol}: ${expected.body}`);
        assert.deepEqual(await call(ours[protocol]), expected, protocol);
      }
    });
  }

  // An interceptor that answers with headers of its own replaces the call's (connect-es's
  // invokeUnaryImplementation copies them over the context's). connect-es 2.1's own copy
  // deletes names while it iterates over them, which skips every other name: its answer
  // loses its content type and grpc-status and keeps some of what was replaced. So these
  // are checked against what the replacement means, not against connect-es.
  for (const [name, interceptors, extra] of [
    ["one that copies the request and answers with headers of its own", [copies], []],
    ["the copying one outside the setting one", [copies, setsHeaders], []],
    ["the setting one outside the copying one", [setsHeaders, copies], ["x-interceptor"]],
  ] as const) {
    it(`answers with the headers an interceptor replaced them with: ${name}`, async () => {
      const ours = await direct([...interceptors]);
      const expectedHeaders = Object.fromEntries([
        ["x-own", "header"],
        ...extra.map((header) => [header, "header"]),
      ]);
      const expectedTrailers = Object.fromEntries([
        ["x-own-trailer", "trailer"],
        ...extra.map((header) => [`${header}-trailer`, "trailer"]),
      ]);
      const answered = await grpc(ours.grpc);
      assert.deepEqual(answered.headers, {
        "content-type": "application/grpc+proto",
        ...expectedHeaders,
      });
      assert.deepEqual(answered.trailers, { "grpc-status": "0", ...expectedTrailers });
      const connect = await json(ours.json);
      assert.equal(connect.status, 200);
      assert.deepEqual(JSON.parse(connect.body), {
        term: { term: "7", leader: "e", candidates: ["a"] },
      });
      assert.deepEqual(connect.headers, {
        "content-type": "application/json",
        "content-length": String(Buffer.byteLength(connect.body)),
        ...expectedHeaders,
        ...Object.fromEntries(
          Object.entries(expectedTrailers).map(([key, value]) => [`trailer-${key}`, value]),
        ),
      });
    });
  }

  it("answers internal, saying why, when an interceptor passes on a request of its own making", async () => {
    const ours = await direct([replaces]);
    const answered = await grpc(ours.grpc);
    assert.equal(answered.status, 200);
    assert.equal(answered.body, "");
    assert.equal(answered.trailers["grpc-status"], "13");
    assert.equal(
      decodeURIComponent(String(answered.trailers["grpc-message"])),
      "an interceptor replaced the call's request",
    );
    const connect = await json(ours.json);
    assert.equal(connect.status, 500);
    assert.deepEqual(JSON.parse(connect.body), {
      code: "internal",
      message: "an interceptor replaced the call's request",
    });
  });
});
