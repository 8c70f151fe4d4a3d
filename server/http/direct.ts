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
// `application/proto`, uncompressed, no deadline header), neither expecting 100 Continue
// (Node sends that on the regular path). Whatever else arrives, and any such request whose
// body is not one well-formed message within the size limit, goes through the regular
// path with the bytes already read, so every irregular case is answered by connect-es
// exactly as before. Errors are encoded with connect-es's own functions (setTrailerStatus,
// errorToJsonBytes, codeToHttpStatus), messages with its serializers, and the
// implementation is called inside the same interceptors (invokeUnary below, as connect-es's
// invokeUnaryImplementation does it). The tests' clients (Connect and gRPC from Node) take
// it; browsers' requests carry Origin and go through Fastify's guard, as gRPC-Web always
// does.
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
//
// Over HTTP/2 the calls are taken as Node's streams (ServerHttp2Stream), before its
// compatibility layer makes a request and a response object of each (listener.ts hands them
// here first). Measured side by side with h2load on bare node:http2 servers: 13,100 to
// 14,600 calls/s on streams against 10,300 to 10,900 through the compatibility layer, which
// also holds about 3 KiB more per open stream (an idle watch). A stream that turns out not
// to be plain after its body was read gets those objects made then, and goes the regular
// way like any other.
import type {
  IncomingHttpHeaders,
  IncomingMessage,
  OutgoingHttpHeaders,
  ServerResponse,
} from "node:http";
import { Http2ServerRequest, Http2ServerResponse, type ServerHttp2Stream } from "node:http2";
import type { Readable } from "node:stream";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescMethodUnary,
  type DescService,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type Interceptor,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";
import {
  compressionNegotiate,
  createMethodSerializationLookup,
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
import { type Protocol, type RequestClock, startRequest } from "../metrics/requests.js";
import type { AdmitStream } from "../rpc/auth.js";
import { toConnectError } from "../rpc/errors.js";
import type { MessageFeed } from "../rpc/pushed.js";
import type { DirectMethod } from "../rpc/routes.js";
import type { QueueReader } from "../watch/hub.js";
import { httpDate } from "./date.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

type Compression = ReturnType<typeof compressionNegotiate>["response"];

/** Who is calling, as the call's context values are read from it. */
export interface Caller {
  readonly headers: IncomingHttpHeaders;
  readonly socket: unknown;
}

export interface DirectCallOptions {
  /** The unary and server-streaming methods, with their implementations. */
  readonly methods: readonly DirectMethod[];
  /** The router's handlers (each wrapped as every call is): the regular path. */
  readonly handlers: () => readonly UniversalHandler[];
  readonly interceptors: readonly Interceptor[];
  /** What the authorization interceptor does for a stream: for the streams pushed. */
  readonly admitStream: AdmitStream;
  /** The call's context values (who is calling), as Connect's plugin is given them. */
  readonly contextValues?: (caller: Caller) => ContextValues;
  readonly readMaxBytes: number;
  readonly compressMinBytes: number;
  readonly metrics: Metrics;
}

export interface DirectCalls {
  /** The paths of the methods answered here (each a POST). */
  readonly paths: readonly string[];
  /**
   * Answers a call handed over from an HTTP/2 stream elsewhere (an h2c process, fronts.ts)
   * if it is a plain call; returns false for any other.
   */
  exchange(x: Exchange): boolean;
  /** Answers an HTTP/1.1 request that is a plain call; returns false for any other. */
  request(req: IncomingMessage, res: ServerResponse): boolean;
  /** Answers an HTTP/2 stream that is a plain call; returns false for any other. */
  stream(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: readonly string[],
  ): boolean;
}

interface Route {
  readonly method: DirectMethod;
  readonly serialization: MethodSerializationLookup<DescMessage, DescMessage>;
  readonly path: string;
  handler: UniversalHandler | undefined;
  /** A unary method's implementation inside the interceptors, made on its first call. */
  unary: UnaryFn | undefined;
}

/** A plain call: which method, in which protocol and encoding. */
interface Plain {
  readonly route: Route;
  readonly protocol: Protocol;
  readonly binary: boolean;
}

/** Connect-node's default, as connect-fastify configures it. */
const acceptCompression = [compressionGzip, compressionBrotli];

/** Returns listeners that answer the plain calls and decline every other request. */
export function directCalls(options: DirectCallOptions): DirectCalls {
  const { interceptors, readMaxBytes, compressMinBytes, metrics } = options;
  const frames = new MessageFrames(compressMinBytes);
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
      unary: undefined,
    });
  }

  /**
   * The regular path, given what was read of the body already (`chunks`) and whether the
   * rest is still to be read from the request.
   */
  async function regular(route: Route, x: Exchange, chunks: readonly Uint8Array[], more: boolean) {
    route.handler ??= options.handlers().find((h) => h.requestPath === route.path);
    const handler = route.handler;
    if (!handler) throw new Error(`no handler for ${route.path}`);
    const taken = x.regular();
    // Handed back: whoever relayed the call sends it the regular way itself.
    if (taken === undefined) return;
    const { req, res } = taken;
    try {
      const uReq = universalRequestFromNodeRequest(
        req,
        res,
        undefined,
        options.contextValues?.(req),
      );
      const rest = more ? (req as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]() : undefined;
      const body = replay(chunks, rest);
      await universalResponseToNodeResponse(await handler({ ...uReq, body }), res);
    } catch (error) {
      // As connect-fastify does: a call the client abandoned ends quietly.
      if (ConnectError.from(error).code === Code.Aborted) return;
      if (!res.headersSent) res.writeHead(500);
      res.end();
    }
  }

  /** Not one well-formed message: the regular path answers it, as it would have. */
  async function malformed(
    route: Route,
    protocol: Protocol,
    x: Exchange,
    chunks: readonly Uint8Array[],
  ) {
    // Unless the client reset the call: Node ends an HTTP/2 stream's body just before it
    // reports the reset, and a call abandoned halfway is canceled, not malformed.
    await new Promise(setImmediate);
    if (x.closed) startRequest(metrics, route.method.method, protocol).finish("canceled");
    else await regular(route, x, chunks, false);
  }

  async function call({ route, protocol, binary }: Plain, x: Exchange) {
    const read = await x.read(readMaxBytes + (protocol === "grpc" ? 5 : 0));
    if (read.gone) {
      // The client left before its request was complete: nothing can be answered, and the
      // call counts as canceled, as the regular path counts it.
      startRequest(metrics, route.method.method, protocol).finish("canceled");
      return;
    }
    if (!read.ended) return regular(route, x, read.chunks, true);
    const bytes =
      read.chunks.length === 1 ? (read.chunks[0] as Buffer) : Buffer.concat(read.chunks);
    let payload: Uint8Array = bytes;
    if (protocol === "grpc") {
      // One uncompressed message, exactly: anything else is the regular path's to answer.
      if (bytes.length < 5 || bytes[0] !== 0 || bytes.readUInt32BE(1) !== bytes.length - 5) {
        return malformed(route, protocol, x, read.chunks);
      }
      payload = bytes.subarray(5);
    } else if (payload.length === 0 && !binary) {
      return malformed(route, protocol, x, read.chunks);
    }
    let input: unknown;
    try {
      input = route.serialization.getI(binary).parse(payload);
    } catch {
      return malformed(route, protocol, x, read.chunks);
    }

    const clock = startRequest(metrics, route.method.method, protocol);
    /** The headers every answer of this call starts with. */
    const baseHeader: HeaderRecord = {
      "content-type":
        protocol === "grpc"
          ? "application/grpc+proto"
          : binary
            ? "application/proto"
            : "application/json",
    };
    const compression = compressionNegotiate(
      acceptCompression,
      null,
      headerValue(x.headers, protocol === "grpc" ? "grpc-accept-encoding" : "accept-encoding"),
      protocol === "grpc" ? "grpc-accept-encoding" : "accept-encoding",
    );
    if (protocol === "grpc" && compression.response) {
      baseHeader["grpc-encoding"] = compression.response.name;
    }
    const values = options.contextValues?.(x.caller) ?? createContextValues();
    const { pushed } = route.method;
    if (pushed) {
      // No signal and no handler context: the call closes its feed when the client goes.
      x.settle();
      const call = new PushedCall(x, frames, route, compression.response, baseHeader, clock);
      call.start(
        () => options.admitStream(route.method.method, values, undefined, input),
        (reader) => pushed.open(input, reader),
      );
      return;
    }
    const context = new CallContext(
      route.method.method,
      protocol,
      `http://${x.headers.host ?? x.headers[":authority"] ?? "localhost"}${route.path}`,
      values,
      x,
    );
    if (route.method.kind === "server_streaming") {
      clock.finish(await stream(route, context, input, baseHeader, compression.response, x));
      return;
    }
    let body: Uint8Array | undefined;
    /** A gRPC answer's frame: shared with every call answered the same message. */
    let frame: Promise<Buffer> | undefined;
    let error: ConnectError | undefined;
    try {
      route.unary ??= unaryChain(route.method, interceptors);
      const output = await invokeUnary(route.unary, context, input as object);
      if (protocol === "grpc") frame = frames.frame(route, output, compression.response);
      else body = frames.body(route, output, binary);
    } catch (e) {
      error = asConnectError(e);
    }
    if (x.closed) {
      clock.finish("canceled");
      return;
    }
    x.onClose(() => clock.finish(x.gone ? "canceled" : error ? codeToString(error.code) : "ok"));

    if (protocol === "grpc") {
      let message: Uint8Array | undefined;
      let trailer: HeaderRecord;
      if (error) {
        setTrailerStatus(context.responseTrailer, error);
        trailer = record(context.responseTrailer);
      } else {
        message = await frame;
        trailer = context.trailerSet ? record(context.responseTrailer) : {};
        trailer["grpc-status"] ??= "0";
      }
      x.head(
        200,
        context.headerSet ? withHeaders(baseHeader, context.responseHeader) : baseHeader,
        true,
      );
      x.end(message, trailer);
      return;
    }
    // Connect unary: the implementation's headers, its trailers as `trailer-` headers.
    const header =
      context.headerSet || context.trailerSet
        ? withHeaders(baseHeader, trailerMux(context.responseHeader, context.responseTrailer))
        : baseHeader;
    let status = 200;
    if (error) {
      status = codeToHttpStatus(error.code);
      header["content-type"] = "application/json";
      error.metadata.forEach((value, key) => {
        header[key] = value;
      });
      body = errorToJsonBytes(error, {});
    }
    let answer = body as Uint8Array;
    if (compression.response && answer.byteLength >= compressMinBytes) {
      answer = await compression.response.compress(answer);
      header["content-encoding"] = compression.response.name;
    }
    header["content-length"] = answer.byteLength.toString(10);
    x.head(status, header, false);
    x.end(answer);
  }

  /**
   * Sends what a server-streaming implementation yields, each message as the frame it
   * shares with every other stream sending it; returns the call's code. Ends at once when
   * the client goes: the call's signal is aborted (which ends every watch) and the
   * implementation is returned from, wherever it was waiting.
   */
  async function stream(
    route: Route,
    context: CallContext,
    input: unknown,
    baseHeader: HeaderRecord,
    compression: Compression,
    x: Exchange,
  ): Promise<string> {
    const outputs = transformInvokeImplementation(
      route.method,
      context,
      interceptors as Interceptor[],
    )(single(input as never));
    const it = outputs[Symbol.asyncIterator]();
    const head = () => {
      if (!x.headersSent) x.head(200, withHeaders(baseHeader, context.responseHeader), true);
    };
    let error: ConnectError | undefined;
    try {
      for (;;) {
        const next = await it.next();
        if (next.done || x.closed) break;
        const frame = await frames.frame(route, next.value as object, compression);
        if (x.closed) break;
        head();
        if (!x.write(frame)) await x.drained();
        if (x.closed) break;
      }
    } catch (e) {
      error = asConnectError(e);
    } finally {
      // The client left while a message was on its way: the implementation is told too.
      if (x.closed) await it.return?.(undefined);
    }
    if (x.closed) return "canceled";
    const trailer = context.responseTrailer;
    if (error) setTrailerStatus(trailer, error);
    else if (!trailer.has("grpc-status")) trailer.set("grpc-status", "0");
    head();
    x.end(undefined, record(trailer));
    return error ? codeToString(error.code) : "ok";
  }

  /** The route, protocol and encoding of a plain call; undefined for any other request. */
  function plain(
    method: string | undefined,
    path: string | undefined,
    headers: IncomingHttpHeaders,
    http2: boolean,
  ): Plain | undefined {
    if (method !== "POST") return undefined;
    const route = routes.get(path ?? "");
    if (!route) return undefined;
    // A client that waits for 100 Continue before it sends the body: Node sends it on the
    // regular path.
    if (headers.expect !== undefined) return undefined;
    const type = headers["content-type"];
    if (type === "application/grpc" || type === "application/grpc+proto") {
      if (!http2) return undefined;
      if (!identity(headers["grpc-encoding"])) return undefined;
      if (headers["grpc-timeout"] !== undefined) return undefined;
      return { route, protocol: "grpc", binary: true };
    }
    if (type === "application/json" || type === "application/proto") {
      if (route.method.kind !== "unary") return undefined;
      if (!identity(headers["content-encoding"])) return undefined;
      if (headers["connect-timeout-ms"] !== undefined) return undefined;
      const version = headers["connect-protocol-version"];
      if (version !== undefined && version !== "1") return undefined;
      return { route, protocol: "connect", binary: type === "application/proto" };
    }
    return undefined;
  }

  const answer = (plain: Plain, x: Exchange) => {
    call(plain, x).catch(() => {
      if (!x.headersSent) x.head(500, {}, false);
      x.end();
    });
  };

  return {
    paths: [...routes.keys()],
    request(req, res) {
      // HTTP/2 requests come here only once their stream was declined.
      if (req.httpVersionMajor !== 1) return false;
      const found = plain(req.method, req.url, req.headers, false);
      if (found) answer(found, new Http1Exchange(req, res));
      return found !== undefined;
    },
    stream(stream, headers, rawHeaders) {
      const { ":method": method, ":path": path } = headers;
      const found = plain(method as string | undefined, path as string | undefined, headers, true);
      if (found) answer(found, new StreamExchange(stream, headers, rawHeaders));
      return found !== undefined;
    },
    exchange(x) {
      const { ":method": method, ":path": path } = x.headers;
      const found = plain(
        method as string | undefined,
        path as string | undefined,
        x.headers,
        true,
      );
      if (found) answer(found, x);
      return found !== undefined;
    },
  };
}

/** Told once an exchange closes: an object that is itself the listener holds no closure. */
export interface ClosedListener {
  closed(): void;
}

export type CloseListener = (() => void) | ClosedListener;

export const tell = (listener: CloseListener) => {
  if (typeof listener === "function") listener();
  else listener.closed();
};

/**
 * One request and its answer: Node's HTTP/1.1 request and response, an HTTP/2 stream, or a
 * stream of an h2c process handed over (fronts.ts).
 */
export interface Exchange {
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  /** Reads the request's body, up to `limit` bytes. */
  read(limit: number): Promise<Body>;
  readonly caller: Caller;
  readonly headersSent: boolean;
  /** Whether it closed, either way. */
  readonly closed: boolean;
  /** Whether it closed before this side ended it: the client went away. */
  readonly gone: boolean;
  onClose(listener: CloseListener): void;
  /**
   * Sends the status and headers (lower-case names, the server's own); `trailers`: trailers
   * will end the answer.
   */
  head(status: number, header: HeaderRecord, trailers: boolean): void;
  /** Writes `chunk`; false when it should wait for drained(). */
  write(chunk: Uint8Array): boolean;
  /** Resolves once more can be written, or it closed. */
  drained(): Promise<void>;
  /** Ends the answer with `chunk`, then `trailer` (when the head said so). */
  end(chunk?: Uint8Array, trailer?: HeaderRecord): void;
  /**
   * Node's request and response objects for it: what the regular path takes. Undefined: the
   * call is handed back to where it came from, which sends it the regular way itself with
   * the body it read (a stream of an h2c process).
   */
  regular(): { req: Request; res: Response } | undefined;
  /**
   * The call is the direct path's from here on: lets go of what only the regular path
   * would read of the request (its headers), for a stream that may stay open for long.
   */
  settle(): void;
}

class Http1Exchange implements Exchange {
  closed = false;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
  ) {
    res.once("close", () => {
      this.closed = true;
    });
  }

  get headers() {
    return this.req.headers;
  }
  get rawHeaders() {
    return this.req.rawHeaders;
  }
  read(limit: number) {
    return readBody(this.req, limit);
  }
  get caller() {
    return this.req;
  }
  get headersSent() {
    return this.res.headersSent;
  }
  get gone() {
    return this.closed && !this.res.writableEnded;
  }
  onClose(listener: CloseListener) {
    this.res.once("close", () => tell(listener));
  }
  head(status: number, header: HeaderRecord) {
    this.res.writeHead(status, header);
  }
  write(chunk: Uint8Array) {
    return this.res.write(chunk);
  }
  drained() {
    return drainedOf(this.res);
  }
  end(chunk?: Uint8Array) {
    if (chunk) this.res.end(chunk);
    else this.res.end();
  }
  regular() {
    return { req: this.req, res: this.res };
  }
  settle() {}
}

const noHeaders: IncomingHttpHeaders = Object.freeze({});
const noRawHeaders: readonly string[] = Object.freeze([]);

class StreamExchange implements Exchange, Closing {
  closed = false;
  /** Whether this side ended the answer (a reset stream counts as ended in Node). */
  private ended = false;
  private waitsForTrailers = false;
  /** Called once the stream closes: one listener on the stream for all of them. */
  private closeListeners: CloseListener[] | undefined;
  /** The body's reader, told if the stream closes while it reads. */
  private reading: (() => void) | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    public headers: IncomingHttpHeaders,
    public rawHeaders: readonly string[],
  ) {
    stream.on("close", () => {
      this.closed = true;
      this.reading?.();
      const listeners = this.closeListeners ?? [];
      this.closeListeners = undefined;
      for (const listener of listeners) tell(listener);
    });
    // A peer that resets the stream with an error code has it destroyed with an error;
    // "close" says all this side needs to know.
    stream.on("error", ignore);
  }

  read(limit: number) {
    return readBody(this.stream, limit, this);
  }
  whileReading(listener: (() => void) | undefined) {
    this.reading = listener;
  }
  get caller() {
    return { headers: this.headers, socket: this.stream.session?.socket };
  }
  get headersSent() {
    return this.stream.headersSent;
  }
  get gone() {
    return this.closed && !this.ended;
  }
  onClose(listener: CloseListener) {
    // Most calls have one or two: an array the size of what it holds.
    this.closeListeners = this.closeListeners ? [...this.closeListeners, listener] : [listener];
  }
  head(status: number, header: HeaderRecord, trailers: boolean) {
    const stream = this.stream;
    if (stream.destroyed) return;
    // Dated as Node's compatibility layer dates every response (respond() would too, at
    // more cost per call: node --cpu-prof).
    const headers: OutgoingHttpHeaders = { ":status": status, ...header, date: httpDate() };
    if (!trailers) {
      stream.respond(headers);
      return;
    }
    stream.respond(headers, { waitForTrailers: true });
    this.waitsForTrailers = true;
  }
  write(chunk: Uint8Array) {
    return this.stream.write(chunk);
  }
  drained() {
    return drainedOf(this.stream);
  }
  end(chunk?: Uint8Array, trailer?: HeaderRecord) {
    this.ended = true;
    if (this.stream.destroyed) return;
    if (this.waitsForTrailers) {
      // Node asks for them once the last data is sent.
      const headers = trailer ?? {};
      this.stream.once("wantTrailers", () => this.stream.sendTrailers(headers));
    }
    if (chunk) this.stream.end(chunk);
    else this.stream.end();
  }
  regular() {
    const req = new Http2ServerRequest(this.stream, this.headers, {}, [...this.rawHeaders]);
    return { req, res: new Http2ServerResponse(this.stream) };
  }
  settle() {
    this.headers = noHeaders;
    this.rawHeaders = noRawHeaders;
  }
}

/**
 * A server stream sent as its messages come (a watch, rpc/pushed.ts): its request is
 * admitted as the authorization interceptor admits a stream's, then each message queued is
 * taken, framed (once for every stream sending it) and written as soon as the stream can
 * take it. While the stream is idle nothing waits: this object (its feed's reader and its
 * stream's close listener), its feed and the stream are all a watch holds. `clock` is told
 * the call's code once it is over.
 */
class PushedCall implements QueueReader, ClosedListener {
  private feed: MessageFeed | undefined;
  private release: () => void = ignore;
  private sending = false;
  private over = false;

  constructor(
    private readonly x: Exchange,
    private readonly frames: MessageFrames,
    private readonly route: Route,
    private readonly compression: Compression,
    /** The response's headers, until they are sent with the first message. */
    private header: HeaderRecord | undefined,
    private readonly clock: RequestClock,
  ) {}

  /** The feed queued a message, or ended. */
  queued(): void {
    if (!this.sending && !this.over && this.feed !== undefined) void this.send(this.feed);
  }

  /** The stream closed. */
  closed(): void {
    this.end(undefined);
  }

  /** Admits the call (`admit` returns the release of its slot), then opens its feed. */
  start(admit: () => () => void, open: (reader: QueueReader) => Promise<MessageFeed>): void {
    this.x.onClose(this);
    try {
      this.release = admit();
    } catch (error) {
      this.end(error);
      return;
    }
    open(this).then(
      (feed) => {
        this.feed = feed;
        if (this.over) feed.close();
        else void this.send(feed);
      },
      (error: unknown) => this.end(error),
    );
  }

  private head(): void {
    if (this.header === undefined) return;
    this.x.head(200, this.header, true);
    this.header = undefined;
  }

  private async send(feed: MessageFeed): Promise<void> {
    this.sending = true;
    try {
      for (;;) {
        const message = feed.poll();
        if (message === undefined) {
          // Set before anything else can run: a message queued from now on sends again.
          this.sending = false;
          if (feed.ended) this.end(undefined);
          return;
        }
        const frame = await this.frames.frame(this.route, message, this.compression);
        if (this.over) return;
        this.head();
        if (!this.x.write(frame)) await this.x.drained();
        if (this.over) return;
      }
    } catch (error) {
      this.sending = false;
      this.end(error);
    }
  }

  /** Ends the call, with `error` in the trailers when given; canceled if the client left. */
  private end(error: unknown): void {
    if (this.over) return;
    this.over = true;
    this.feed?.close();
    this.release();
    if (this.x.closed) {
      this.clock.finish("canceled");
      return;
    }
    let trailer: HeaderRecord = { "grpc-status": "0" };
    let code = "ok";
    if (error !== undefined) {
      const connectError = asConnectError(toConnectError(error));
      const headers = new Headers();
      setTrailerStatus(headers, connectError);
      trailer = record(headers);
      code = codeToString(connectError.code);
    }
    this.head();
    this.x.end(undefined, trailer);
    this.clock.finish(code);
  }
}

/**
 * A call's context, as Connect gives it to the implementation, whose signal, request
 * headers and response headers and trailers (web Headers) are made when first asked for:
 * connect-es's own context makes all of them for every call. Making the signal alone was a
 * twentieth of a gRPC GetTerm's server CPU, the three Headers about a fortieth (node
 * --cpu-prof, h2load); no implementation of electd's sets a response header. The signal
 * aborts once the client goes away before its answer ends; made after that, it is aborted
 * already.
 */
class CallContext implements HandlerContext, ClosedListener {
  readonly service: DescService;
  readonly requestMethod = "POST";
  /** Its own property, not a method: connect-es copies a context's own properties. */
  readonly timeoutMs = noTimeout;
  private controller: AbortController | undefined;
  private header: Headers | undefined;
  private answerHeader: Headers | undefined;
  private answerTrailer: Headers | undefined;

  constructor(
    readonly method: DescMethod,
    readonly protocolName: Protocol,
    readonly url: string,
    readonly values: ContextValues,
    private readonly x: Exchange,
  ) {
    this.service = method.parent;
    x.onClose(this);
  }

  get responseHeader(): Headers {
    this.answerHeader ??= new Headers();
    return this.answerHeader;
  }

  get responseTrailer(): Headers {
    this.answerTrailer ??= new Headers();
    return this.answerTrailer;
  }

  /** Whether the response's headers were asked for (and so may have been set). */
  get headerSet(): boolean {
    return this.answerHeader !== undefined;
  }

  /** Whether the response's trailers were asked for (and so may have been set). */
  get trailerSet(): boolean {
    return this.answerTrailer !== undefined;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.x.gone) this.abort();
    }
    return this.controller.signal;
  }

  get requestHeader(): Headers {
    this.header ??= headersOf(this.x.rawHeaders);
    return this.header;
  }

  /** The exchange closed. */
  closed(): void {
    if (this.controller !== undefined && this.x.gone) this.abort();
  }

  private abort(): void {
    this.controller?.abort(new ConnectError("the client went away", Code.Canceled));
  }
}

/**
 * A unary call's request as the interceptors see it: its signal and headers the call's,
 * read from it when asked for. An interceptor that passes on a copy made by spreading it
 * copies neither (they are getters of the class); the implementation's context then has the
 * call's own, which are what a copy would have held.
 */
class UnaryCall implements UnaryRequest {
  readonly stream = false;
  readonly service: DescService;
  readonly requestMethod = "POST";
  readonly url: string;
  readonly contextValues: ContextValues;

  constructor(
    readonly method: DescMethodUnary,
    readonly message: UnaryRequest["message"],
    /** The call's: an own property, so a copy made by spreading this still has it. */
    readonly context: CallContext,
  ) {
    this.service = context.service;
    this.url = context.url;
    this.contextValues = context.values;
  }

  get signal(): AbortSignal {
    return this.context.signal;
  }

  get header(): Headers {
    return this.context.requestHeader;
  }
}

type UnarySpec = Extract<DirectMethod, { kind: "unary" }>;

/**
 * The context a unary implementation is given: the call's, with the service, signal,
 * request headers and context values of the request the interceptors passed on (as
 * connect-es makes it), the signal and headers read only when asked for.
 */
class ImplementationContext implements HandlerContext {
  readonly method: DescMethod;
  readonly service: DescService;
  readonly requestMethod: string;
  readonly url: string;
  readonly protocolName: string;
  readonly values: ContextValues;
  readonly timeoutMs = noTimeout;

  constructor(
    private readonly context: CallContext,
    private readonly req: UnaryRequest,
  ) {
    this.method = context.method;
    this.service = req.service;
    this.requestMethod = context.requestMethod;
    this.url = context.url;
    this.protocolName = context.protocolName;
    this.values = req.contextValues;
  }

  get responseHeader(): Headers {
    return this.context.responseHeader;
  }

  get responseTrailer(): Headers {
    return this.context.responseTrailer;
  }

  get signal(): AbortSignal {
    return this.req.signal ?? this.context.signal;
  }

  get requestHeader(): Headers {
    return this.req.header ?? this.context.requestHeader;
  }
}

/**
 * A unary method's implementation inside the interceptors, as connect-es's
 * invokeUnaryImplementation puts it (the first interceptor outermost, the output normalized
 * with `create`), made once per method: the call travels in the request (UnaryCall's
 * `context`), so every call of the method goes through the same functions.
 */
function unaryChain(spec: DirectMethod, interceptors: readonly Interceptor[]): UnaryFn {
  const { method, impl } = spec as UnarySpec;
  const implementation: UnaryFn = async (req) => {
    const { context } = req as Partial<UnaryCall>;
    if (context === undefined) {
      throw new ConnectError("an interceptor replaced the call's request", Code.Internal);
    }
    return new UnaryAnswer(
      method,
      create(method.output, await impl(req.message, new ImplementationContext(context, req))),
      context,
    );
  };
  return interceptors.reduceRight<UnaryFn>(
    (inner, interceptor) => interceptor(inner as never) as UnaryFn,
    implementation,
  );
}

/**
 * Runs a unary call through its method's chain (unaryChain) without reading the call's
 * signal and request headers (see CallContext); the headers and trailers an interceptor
 * answered with are copied to the call's, as connect-es does.
 */
async function invokeUnary(chain: UnaryFn, context: CallContext, input: object): Promise<object> {
  const method = context.method as DescMethodUnary;
  const res = await chain(new UnaryCall(method, input as UnaryRequest["message"], context));
  if (!(res instanceof UnaryAnswer)) {
    // An interceptor answered with a response of its own: its headers are the call's. (A
    // copy of the answer made by spreading it has none: the call's are already in place.)
    copyHeaders(res.header, context.responseHeader);
    copyHeaders(res.trailer, context.responseTrailer);
  }
  return res.message;
}

type UnaryFn = (req: UnaryRequest) => Promise<UnaryResponse>;

/**
 * The implementation's answer as the interceptors see it: its headers and trailers are the
 * call's, made when first asked for (see CallContext).
 */
class UnaryAnswer implements UnaryResponse {
  readonly stream = false;
  readonly service: DescService;

  constructor(
    readonly method: DescMethodUnary,
    readonly message: UnaryResponse["message"],
    private readonly context: CallContext,
  ) {
    this.service = method.parent;
  }

  get header(): Headers {
    return this.context.responseHeader;
  }

  get trailer(): Headers {
    return this.context.responseTrailer;
  }
}

/** What an interceptor answered in place of the call's own headers, copied onto them. */
function copyHeaders(from: Headers | undefined, to: Headers): void {
  if (from === undefined || from === to) return;
  for (const key of [...to.keys()]) to.delete(key);
  from.forEach((value, key) => {
    to.set(key, value);
  });
}

function ignore(): void {}

/** No call answered here has a deadline: those with one go the regular way. */
const noTimeout = () => undefined;

const identity = (encoding: string | string[] | undefined) =>
  encoding === undefined || encoding === "identity";

function headerValue(headers: IncomingHttpHeaders, name: string): string | null {
  const value = headers[name];
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

/** The request's headers as web Headers, without HTTP/2 pseudo-headers. */
function headersOf(raw: readonly string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.startsWith(":")) continue;
    headers.append(name, raw[i + 1] as string);
  }
  return headers;
}

/** Response headers or trailers as Node takes them: lower-case names, the server's own. */
export type HeaderRecord = Record<string, string | string[]>;

/** Headers as Node takes them; a repeated name keeps all its values. */
function record(headers: Headers): HeaderRecord {
  const out: HeaderRecord = Object.create(null);
  headers.forEach((value, key) => {
    out[key] = key === "set-cookie" ? headers.getSetCookie() : value;
  });
  return out;
}

/** `base` with `headers` set over it, in a new record. */
function withHeaders(base: HeaderRecord, headers: Headers): HeaderRecord {
  return Object.assign(Object.create(null) as HeaderRecord, base, record(headers));
}

/**
 * The gRPC frames of messages sent, one per message object and compression, and Connect
 * unary bodies, one per message object and encoding: a message sent to many streams (a page
 * of a directory snapshot, an election's new state) or answering many calls (GetTerm of an
 * election that has not changed) is serialized, enveloped and compressed once. Held weakly:
 * a frame lives as long as its message does.
 */
class MessageFrames {
  private readonly byCompression = new Map<string, WeakMap<object, Promise<Buffer>>>();
  private readonly json = new WeakMap<object, Uint8Array>();
  private readonly binary = new WeakMap<object, Uint8Array>();

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

  /**
   * A Connect unary answer's body: shared, like frames, with every call answered the same
   * message in the same encoding.
   */
  body(route: Route, message: object, binary: boolean): Uint8Array {
    const bodies = binary ? this.binary : this.json;
    let body = bodies.get(message);
    if (body === undefined) {
      body = route.serialization.getO(binary).serialize(message as never);
      bodies.set(message, body);
    }
    return body;
  }

  private encode(route: Route, message: object, compression: Compression) {
    const body = route.serialization.getO(true).serialize(message as never);
    return frameOf(body, compression, this.compressMinBytes);
  }
}

async function* single<T>(input: T): AsyncIterable<T> {
  yield input;
}

/** Resolves once `to` can take more, or is closed. */
function drainedOf(to: ServerResponse | ServerHttp2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      to.off("drain", done);
      to.off("close", done);
      resolve();
    };
    to.on("drain", done);
    to.on("close", done);
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

export interface Body {
  readonly chunks: Buffer[];
  /** Whether the whole body is in `chunks`; if not and not gone, the rest waits, paused. */
  readonly ended: boolean;
  /** Whether the request failed or closed before its end: the client is gone. */
  readonly gone: boolean;
}

/** What tells a body's reader that its request closed, when something does already. */
interface Closing {
  /** Calls `listener` if the request closes until it is given undefined. */
  whileReading(listener: (() => void) | undefined): void;
}

/**
 * Reads a request's body, up to `limit` bytes; past it, or once the request closes or
 * fails, stops and says so. `closing`: what tells when the request closes, if anything does
 * already (an HTTP/2 stream's exchange, which also takes its errors); else the body's own
 * close and error are listened to. Fewer listeners to add and take off is less of each
 * call's CPU.
 */
function readBody(body: Readable, limit: number, closing?: Closing): Promise<Body> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    const done = (read: Body) => {
      if (over) return;
      over = true;
      // Nothing of the reader (nor what it read) is held for the life of a stream that
      // stays open (a watch).
      body.off("data", onData);
      if (!read.ended) body.off("end", onEnd);
      if (closing === undefined) {
        body.off("error", onGone);
        body.off("close", onGone);
      } else {
        closing.whileReading(undefined);
      }
      resolve(read);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= limit) return;
      body.pause();
      done({ chunks, ended: false, gone: false });
    };
    const onEnd = () => done({ chunks, ended: true, gone: false });
    const onGone = () => done({ chunks, ended: false, gone: true });
    body.on("data", onData);
    body.once("end", onEnd);
    if (closing) {
      closing.whileReading(onGone);
    } else {
      body.once("error", onGone);
      body.once("close", onGone);
    }
  });
}

async function* replay(
  chunks: readonly Uint8Array[],
  rest?: AsyncIterator<Uint8Array>,
): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (rest) yield* { [Symbol.asyncIterator]: () => rest };
}
