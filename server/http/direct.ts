// The common calls, answered without Fastify's routing and without Connect's generic
// streaming pipeline, by the same service implementations and interceptors: plain unary
// calls, and server streams (the watches) over gRPC.
//
// Why it exists (measured with `npm run bench:vs-etcd` and `node --cpu-prof`): a gRPC
// GetTerm through Fastify and connect-es cost about 800 µs of server CPU, against 68 µs for
// a bare node:http2 server answering a constant. Most of it was the per-call machinery
// around the handler, not the handler: three AbortControllers and two AbortError
// DOMExceptions with captured stacks, async generators compiled down to promise chains for
// a single message, web Headers conversions, Fastify's request and reply objects, and the
// garbage all of that leaves (a quarter of the time).
//
// It is narrow on purpose. It takes a POST whose path is a unary method and whose request
// is the plain form: gRPC over HTTP/2 (`application/grpc` or `application/grpc+proto`,
// uncompressed, no deadline header) or Connect unary (`application/json` or
// `application/proto`, uncompressed, no deadline header). Whatever else arrives, and any
// such request whose body is not one well-formed message within the size limit, goes
// through the regular path with the bytes already read, so every irregular case is
// answered by connect-es exactly as before. Errors are encoded with connect-es's own
// functions (setTrailerStatus, errorToJsonBytes, codeToHttpStatus), messages with its
// serializers, and the implementation is called through its invokeUnaryImplementation
// with the same interceptors. The tests' clients (Connect and gRPC from Node) take it;
// browsers' requests carry Origin and go through Fastify's guard, as gRPC-Web always does.
//
// Server streams over gRPC (the watches: LeaderElection.Watch, WatchElections,
// WatchElectionList), in the same plain form, are answered here too, for what a watch costs
// when many watchers are sent the same message: Connect serializes and envelopes every
// message once per stream (two copies of its bytes each time), so a thousand directory
// watchers sent the same page of elections made two thousand copies of it, and their garbage
// took most of the server's time while the snapshots went out (bench:directory: a third of
// the busy time in the first seconds was garbage collection, keep-alives waited 200 ms).
// Here each message object is encoded, enveloped and compressed once, whichever streams
// send it, and the same bytes are written to each (HTTP/2 writes them without a copy).
// Headers go with the first message, as Connect sends them, so that an implementation may
// still set them; the status goes in the trailers, set by connect-es's setTrailerStatus.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import {
  compressionNegotiate,
  createMethodSerializationLookup,
  invokeUnaryImplementation,
  type MethodSerializationLookup,
  transformInvokeImplementation,
  type UniversalHandler,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  codeToString,
  errorToJsonBytes,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Metrics } from "../metrics/metrics.js";
import { type Protocol, startRequest } from "../metrics/requests.js";
import type { DirectMethod } from "../rpc/routes.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

type Compression = ReturnType<typeof compressionNegotiate>["response"];

export interface DirectCallOptions {
  /** The unary and server-streaming methods, with their implementations. */
  readonly methods: readonly DirectMethod[];
  /** The router's handlers (each wrapped as every call is): the regular path. */
  readonly handlers: () => readonly UniversalHandler[];
  readonly interceptors: readonly Interceptor[];
  /** The call's context values (who is calling), as Connect's plugin is given them. */
  readonly contextValues?: (req: Request) => ContextValues;
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  readonly metrics: Metrics;
}

interface Route {
  readonly method: DirectMethod;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
  readonly path: string;
  handler: UniversalHandler | undefined;
}

/** Connect-node's default, as connect-fastify configures it. */
const acceptCompression = [compressionGzip, compressionBrotli];

/**
 * Returns a request listener that answers the plain calls itself and returns false for
 * every other request, which the caller hands to Fastify.
 */
export function directCalls(options: DirectCallOptions): (req: Request, res: Response) => boolean {
  const { interceptors, readMaxBytes, compressMinBytes, metrics } = options;
  const frames = new StreamFrames(compressMinBytes);
  const routes = new Map<string, Route>();
  for (const method of options.methods) {
    const path = `/${method.method.parent.typeName}/${method.method.name}`;
    routes.set(path, {
      method,
      path,
      serialization: createMethodSerializationLookup(method.method, undefined, undefined, {
        readMaxBytes,
        writeMaxBytes: Number.MAX_SAFE_INTEGER,
      }),
      handler: undefined,
    });
  }

  /** The regular path, given what was read of the body already. */
  async function regular(
    route: Route,
    req: Request,
    res: Response,
    body: AsyncIterable<Uint8Array>,
  ) {
    route.handler ??= options.handlers().find((h) => h.requestPath === route.path);
    const handler = route.handler;
    if (!handler) throw new Error(`no handler for ${route.path}`);
    try {
      const uReq = universalRequestFromNodeRequest(
        req,
        res,
        undefined,
        options.contextValues?.(req),
      );
      await universalResponseToNodeResponse(await handler({ ...uReq, body }), res);
    } catch (error) {
      // As connect-fastify does: a call the client abandoned ends quietly.
      if (ConnectError.from(error).code === Code.Aborted) return;
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  }

  async function call(
    route: Route,
    protocol: Protocol,
    binary: boolean,
    req: Request,
    res: Response,
  ) {
    const read = await readBody(req, readMaxBytes + (protocol === "grpc" ? 5 : 0));
    if (read.gone) {
      // The client left before its request was complete: nothing can be answered, and the
      // call counts as canceled, as the regular path counts it.
      startRequest(metrics, route.method.method, protocol)("canceled");
      return;
    }
    if (!read.ended) return regular(route, req, res, replay(read.chunks, read.rest));
    const bytes =
      read.chunks.length === 1 ? (read.chunks[0] as Buffer) : Buffer.concat(read.chunks);
    let payload: Uint8Array = bytes;
    if (protocol === "grpc") {
      // One uncompressed message, exactly: anything else is the regular path's to answer.
      if (bytes.length < 5 || bytes[0] !== 0 || bytes.readUInt32BE(1) !== bytes.length - 5) {
        return regular(route, req, res, replay([bytes]));
      }
      payload = bytes.subarray(5);
    } else if (payload.length === 0 && !binary) {
      return regular(route, req, res, replay([bytes]));
    }
    let input: unknown;
    try {
      input = route.serialization.getI(binary).parse(payload);
    } catch {
      return regular(route, req, res, replay([bytes]));
    }

    const finish = startRequest(metrics, route.method.method, protocol);
    const controller = new AbortController();
    // Closed before this side ended it: the client went away. (Node's HTTP/2 compatibility
    // layer emits "finish" for a reset stream too, and its response has no `destroyed`.)
    let closed = false;
    const gone = () => closed && !res.writableEnded;
    res.once("close", () => {
      closed = true;
      if (gone()) controller.abort(new ConnectError("the client went away", Code.Canceled));
    });
    const responseHeader = new Headers();
    const responseTrailer = new Headers();
    if (protocol === "grpc") {
      responseHeader.set("content-type", "application/grpc+proto");
      responseTrailer.set("grpc-status", "0");
    } else {
      responseHeader.set("content-type", binary ? "application/proto" : "application/json");
    }
    const context: HandlerContext = {
      method: route.method.method,
      service: route.method.method.parent,
      signal: controller.signal,
      timeoutMs: () => undefined,
      requestMethod: "POST",
      requestHeader: headersOf(req),
      responseHeader,
      responseTrailer,
      protocolName: protocol,
      values: options.contextValues?.(req) ?? createContextValues(),
      url: `http://${req.headers.host ?? req.headers[":authority"] ?? "localhost"}${route.path}`,
    };
    const compression = compressionNegotiate(
      acceptCompression,
      null,
      headerValue(req, protocol === "grpc" ? "grpc-accept-encoding" : "accept-encoding"),
      protocol === "grpc" ? "grpc-accept-encoding" : "accept-encoding",
    );
    if (protocol === "grpc" && compression.response) {
      responseHeader.set("grpc-encoding", compression.response.name);
    }
    if (route.method.kind === "server_streaming") {
      finish(await stream(route, context, input, compression.response, res, () => closed));
      return;
    }
    let body: Uint8Array | undefined;
    let error: ConnectError | undefined;
    try {
      const output = await invokeUnaryImplementation(
        route.method,
        context,
        input as never,
        interceptors as Interceptor[],
      );
      body = route.serialization.getO(binary).serialize(output);
    } catch (e) {
      error = asConnectError(e);
    }
    if (closed) {
      finish("canceled");
      return;
    }
    res.once("close", () => finish(gone() ? "canceled" : error ? codeToString(error.code) : "ok"));

    if (protocol === "grpc") {
      let message: Uint8Array | undefined;
      if (error) setTrailerStatus(responseTrailer, error);
      else if (body) message = await frameOf(body, compression.response, compressMinBytes);
      res.writeHead(200, record(responseHeader));
      (res as Http2ServerResponse).addTrailers(record(responseTrailer));
      if (message) res.end(message);
      else res.end();
      return;
    }
    let status = 200;
    if (error) {
      status = codeToHttpStatus(error.code);
      responseHeader.set("content-type", "application/json");
      error.metadata.forEach((value, key) => {
        responseHeader.set(key, value);
      });
      body = errorToJsonBytes(error, {});
    }
    let answer = body as Uint8Array;
    if (compression.response && answer.byteLength >= compressMinBytes) {
      answer = await compression.response.compress(answer);
      responseHeader.set("content-encoding", compression.response.name);
    }
    const header = trailerMux(responseHeader, responseTrailer);
    header.set("content-length", answer.byteLength.toString(10));
    res.writeHead(status, record(header));
    res.end(answer);
  }

  /**
   * Sends what a server-streaming implementation yields, each message as the frame it
   * shares with every other stream sending it; returns the call's code. Ends at once when
   * the client goes: the call's signal is aborted (which ends every watch) and the
   * implementation is returned from, wherever it was waiting.
   */
  async function stream(
    route: Route,
    context: HandlerContext,
    input: unknown,
    compression: Compression,
    res: Response,
    closed: () => boolean,
  ): Promise<string> {
    const outputs = transformInvokeImplementation(
      route.method,
      context,
      interceptors as Interceptor[],
    )(single(input as never));
    const it = outputs[Symbol.asyncIterator]();
    let headed = false;
    const head = () => {
      if (headed) return;
      headed = true;
      res.writeHead(200, record(context.responseHeader));
    };
    let error: ConnectError | undefined;
    try {
      for (;;) {
        const next = await it.next();
        if (next.done || closed()) break;
        const frame = await frames.frame(route, next.value as object, compression);
        if (closed()) break;
        head();
        if (!(res as Http2ServerResponse).write(frame)) await drained(res);
        if (closed()) break;
      }
    } catch (e) {
      error = asConnectError(e);
    } finally {
      // The client left while a message was on its way: the implementation is told too.
      if (closed()) await it.return?.(undefined);
    }
    if (closed()) return "canceled";
    if (error) setTrailerStatus(context.responseTrailer, error);
    head();
    (res as Http2ServerResponse).addTrailers(record(context.responseTrailer));
    res.end();
    return error ? codeToString(error.code) : "ok";
  }

  return (req, res) => {
    if (req.method !== "POST") return false;
    const route = routes.get(req.url ?? "");
    if (!route) return false;
    const type = req.headers["content-type"];
    let protocol: Protocol;
    let binary: boolean;
    if (type === "application/grpc" || type === "application/grpc+proto") {
      if (req.httpVersionMajor !== 2) return false;
      if (!identity(req.headers["grpc-encoding"])) return false;
      if (req.headers["grpc-timeout"] !== undefined) return false;
      protocol = "grpc";
      binary = true;
    } else if (type === "application/json" || type === "application/proto") {
      if (route.method.kind !== "unary") return false;
      if (!identity(req.headers["content-encoding"])) return false;
      if (req.headers["connect-timeout-ms"] !== undefined) return false;
      const version = req.headers["connect-protocol-version"];
      if (version !== undefined && version !== "1") return false;
      protocol = "connect";
      binary = type === "application/proto";
    } else {
      return false;
    }
    call(route, protocol, binary, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    return true;
  };
}

const identity = (encoding: string | string[] | undefined) =>
  encoding === undefined || encoding === "identity";

function headerValue(req: Request, name: string): string | null {
  const value = req.headers[name];
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

/** The request's headers as web Headers, without HTTP/2 pseudo-headers. */
function headersOf(req: Request): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.startsWith(":")) continue;
    headers.append(name, raw[i + 1] as string);
  }
  return headers;
}

/** Headers as Node takes them; a repeated name keeps all its values. */
function record(headers: Headers): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null);
  headers.forEach((value, key) => {
    out[key] = key === "set-cookie" ? headers.getSetCookie() : value;
  });
  return out;
}

/**
 * The frames of streamed messages, one per message object and compression: a message
 * yielded to many streams (a page of a directory snapshot, an election's new state) is
 * serialized, enveloped and compressed once. Held weakly: a frame lives as long as its
 * message does.
 */
class StreamFrames {
  private readonly byCompression = new Map<string, WeakMap<object, Promise<Buffer>>>();

  constructor(private readonly compressMinBytes: number) {}

  frame(route: Route, message: object, compression: Compression): Promise<Buffer> {
    const name = compression?.name ?? "identity";
    let frames = this.byCompression.get(name);
    if (frames === undefined) {
      frames = new WeakMap();
      this.byCompression.set(name, frames);
    }
    let frame = frames.get(message);
    if (frame === undefined) {
      frame = this.encode(route, message, compression);
      frames.set(message, frame);
    }
    return frame;
  }

  private encode(route: Route, message: object, compression: Compression) {
    const body = route.serialization.getO(true).serialize(message as never);
    return frameOf(body, compression, this.compressMinBytes);
  }
}

async function* single<T>(input: T): AsyncIterable<T> {
  yield input;
}

/** Resolves once `res` can take more, or is closed. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** A gRPC message frame of `body`, compressed when negotiated and large enough. */
async function frameOf(
  body: Uint8Array,
  compression: Compression,
  compressMinBytes: number,
): Promise<Buffer> {
  if (compression && body.byteLength >= compressMinBytes) {
    return envelope(1, await compression.compress(body));
  }
  return envelope(0, body);
}

/** What an implementation threw, as Connect answers it: anything unknown is internal. */
function asConnectError(error: unknown): ConnectError {
  return error instanceof ConnectError
    ? error
    : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

function envelope(flags: number, message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + message.byteLength);
  frame[0] = flags;
  frame.writeUInt32BE(message.byteLength, 1);
  frame.set(message, 5);
  return frame;
}

interface Body {
  readonly chunks: Buffer[];
  /** Whether the whole body is in `chunks`. */
  readonly ended: boolean;
  /** Whether the request failed or closed before its end: the client is gone. */
  readonly gone: boolean;
  /** Past the limit: the rest. */
  readonly rest: AsyncIterator<Uint8Array> | undefined;
}

/** Reads the body up to `limit` bytes; past it, or on a failure, stops and says so. */
function readBody(req: Request, limit: number): Promise<Body> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (body: Body) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
      resolve(body);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      req.pause();
      const rest = (req as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
      done({ chunks, ended: false, gone: false, rest });
    };
    const onEnd = () => done({ chunks, ended: true, gone: false, rest: undefined });
    const onGone = () => done({ chunks, ended: false, gone: true, rest: undefined });
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onGone);
    req.once("close", onGone);
  });
}

async function* replay(
  chunks: readonly Uint8Array[],
  rest?: AsyncIterator<Uint8Array>,
): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (rest) yield* { [Symbol.asyncIterator]: () => rest };
}
