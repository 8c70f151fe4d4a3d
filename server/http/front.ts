// An h2c process (`--h2c-processes`): serves HTTP/2 cleartext connections for the main
// process, on a core of its own. The main process accepts every connection; those that open
// with the HTTP/2 preface are handed here, socket and all (fronts.ts). This process keeps
// them in the same bounds as the main process keeps its own (listener.ts: the cap, the
// deadlines, the drain), and for each stream:
// - a POST to one of the paths the direct path answers, without Origin, is read (up to the
//   size limit) and relayed to the main process, which answers it as its own (direct.ts,
//   through fronts.ts's RelayedExchange); the answer comes back to be written here. Most
//   calls are these.
// - any other stream, and any relayed call the main process hands back (not plain after
//   all), is proxied to the main process's HTTP/2 server over a connection of its own on a
//   Unix socket, one per client connection, and answered the regular way there.
// The elections, sessions and watches stay in the main process, in one thread: nothing
// about their consistency changes. What moves here is HTTP/2 itself: framing, streams and
// flow control, about two thirds of a unary call's CPU (README, "Performance").
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  createServer,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import type { ConnectionSettings } from "../config.js";
import { httpDate } from "./date.js";
import { trackConnections } from "./listener.js";

/** What the main process tells an h2c process at its start (in ELECTD_FRONT, as JSON). */
export interface FrontSettings {
  readonly connections: ConnectionSettings;
  /** The paths of the calls the main process answers directly: relayed. */
  readonly paths: readonly string[];
  /** Most bytes of a relayed call's body read before it is relayed as is. */
  readonly readLimit: number;
  /** The main process's Unix socket for the streams proxied (fronts.ts). */
  readonly internal: string;
}

/**
 * From an h2c process to the main process, in batches (one per event-loop turn):
 * - `[HEADERS, set, headers]`: a set of request headers, numbered: calls name it by number
 *   (the calls of a client mostly repeat one set, so it is sent once);
 * - `[FORGET]`: the numbered sets are forgotten (when there are too many);
 * - `[CALL, id, set, body, read]`: a call to answer, and how much of its body `body` is
 *   (WHOLE; MORE: the rest was not read, being over the limit; GONE: the client went
 *   before the rest came, and the call is to be counted as canceled);
 * - `[CLOSED, id]`: the stream closed before the answer ended (the client went);
 * - `[FULL, id]`, `[DRAINED, id]`: the stream's buffer is full, or has room again;
 * - `[OPEN, n]`: how many connections this process has open.
 */
export type Up =
  | [typeof CALL, number, number, Uint8Array[], BodyRead]
  | [typeof HEADERS, number, Record<string, string | string[]>]
  | [typeof FORGET]
  | [typeof CLOSED | typeof FULL | typeof DRAINED, number]
  | [typeof OPEN, number];

/**
 * From the main process, in batches:
 * - `[ANSWER, id, head, chunk, end, trailers]`: some of the answer. `head` is
 *   `[status, headers, trailers follow]` when the headers are to be sent first, else null;
 *   then `chunk` if not null; `end`: the answer ends there, then `trailers` if not null;
 * - `[REGULAR, id]`: not a plain call after all: proxy it with the body read;
 * - `[DRAIN]`: stop politely, then exit.
 * A connection handed over is a message of its own: `{ socket: bytes read }` and the socket.
 */
export type Down =
  | [
      typeof ANSWER,
      number,
      [number, Record<string, string | string[]>, boolean] | null,
      Uint8Array | null,
      boolean,
      Record<string, string | string[]> | null,
    ]
  | [typeof REGULAR, number]
  | [typeof DRAIN];

export const CALL = 0;
export const CLOSED = 1;
export const FULL = 2;
export const DRAINED = 3;
export const OPEN = 4;
export const HEADERS = 5;

export const MORE = 0;
export const WHOLE = 1;
export const GONE = 2;
export type BodyRead = typeof MORE | typeof WHOLE | typeof GONE;
export const FORGET = 6;
export const ANSWER = 0;
export const REGULAR = 1;
export const DRAIN = 2;

/** The message that says an h2c process is ready for connections. */
export const READY = "ready";

/** A relayed call, until its answer ends. */
interface Relayed {
  readonly stream: ServerHttp2Stream;
  /** What the call is proxied with if handed back; dropped once answered. */
  headers: IncomingHttpHeaders | undefined;
  chunks: Buffer[] | undefined;
  ended: boolean;
  /** Whether the main process was told the stream is full. */
  full: boolean;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = constants;

/** Most sets of request headers numbered at once (HEADERS), in each process. */
const MAX_HEADER_SETS = 1024;

function ignore(): void {}

/** Serves the connections the main process hands over, until told to drain. */
export function serveFront(settings: FrontSettings, send: (message: unknown) => void): void {
  const paths = new Set(settings.paths);
  const server = createServer({
    settings: { maxConcurrentStreams: settings.connections.maxConcurrentStreams },
  });
  // HTTP/2 only: a "request" listener would have Node make a request and a response of
  // every stream (its compatibility layer).
  const tracked = trackConnections(server, settings.connections, false);
  const calls = new Map<number, Relayed>();
  let nextId = 0;
  let draining = false;

  let batch: Up[] = [];
  const flush = () => {
    const out = batch;
    batch = [];
    send(out);
  };
  const up = (message: Up) => {
    if (batch.length === 0) setImmediate(flush);
    batch.push(message);
  };

  // The main process's gauge of open connections counts these too.
  let told = 0;
  const count = setInterval(() => {
    const open = tracked.open;
    if (open === told) return;
    told = open;
    up([OPEN, open]);
  }, 250);

  /** The sets of request headers numbered, by their names and values. */
  const sets = new Map<string, number>();
  const setOf = (headers: IncomingHttpHeaders, raw: readonly string[]) => {
    // No name or value holds a NUL (RFC 9113, 8.2.1).
    const key = raw.join("\0");
    let set = sets.get(key);
    if (set === undefined) {
      if (sets.size >= MAX_HEADER_SETS) {
        sets.clear();
        up([FORGET]);
      }
      set = sets.size;
      sets.set(key, set);
      up([HEADERS, set, plainHeaders(headers)]);
    }
    return set;
  };

  server.on(
    "stream",
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
      stream.on("error", ignore);
      const path = headers[":path"];
      if (
        headers[":method"] === "POST" &&
        typeof path === "string" &&
        paths.has(path) &&
        headers.origin === undefined &&
        // A client waiting for 100 Continue sends no body until it is told to go on.
        headers.expect === undefined
      ) {
        relay(stream, headers, raw);
      } else {
        proxy(stream, headers, [], true);
      }
    },
  );

  /** Reads the body (up to the limit), then relays the call. */
  function relay(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]) {
    const chunks: Buffer[] = [];
    let size = 0;
    const send = (read: BodyRead) => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onGone);
      const id = ++nextId;
      up([CALL, id, setOf(headers, raw), chunks, read]);
      if (read === GONE) return;
      calls.set(id, { stream, headers, chunks, ended: read === WHOLE, full: false });
      stream.once("close", () => {
        if (calls.delete(id)) up([CLOSED, id]);
      });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size <= settings.readLimit) return;
      stream.pause();
      send(MORE);
    };
    const onEnd = () => send(WHOLE);
    // The client went halfway: the main process counts the call, as it counts its own.
    const onGone = () => send(GONE);
    stream.on("data", onData);
    stream.once("end", onEnd);
    stream.once("close", onGone);
  }

  const answer = (batch: Down[]) => {
    for (const message of batch) {
      if (message[0] === DRAIN) {
        drain();
        continue;
      }
      const call = calls.get(message[1]);
      if (!call) continue; // closed meanwhile
      const { stream } = call;
      switch (message[0]) {
        case ANSWER: {
          const [, id, head, chunk, end, trailer] = message;
          if (end) calls.delete(id);
          if (stream.destroyed) break;
          if (head) {
            call.headers = undefined;
            call.chunks = undefined;
            const [status, header, trailers] = head;
            // Dated here, as Node's compatibility layer dates every response.
            stream.respond(
              { ":status": status, ...header, date: httpDate() },
              { waitForTrailers: trailers },
            );
          }
          if (end) {
            if (trailer) stream.once("wantTrailers", () => stream.sendTrailers(trailer));
            if (chunk) stream.end(asBuffer(chunk));
            else stream.end();
          } else if (chunk && !stream.write(asBuffer(chunk)) && !call.full) {
            call.full = true;
            up([FULL, id]);
            stream.once("drain", () => {
              call.full = false;
              if (calls.has(id)) up([DRAINED, id]);
            });
          }
          break;
        }
        case REGULAR:
          calls.delete(message[1]);
          if (stream.destroyed || !call.headers) break;
          proxy(stream, call.headers, call.chunks ?? [], !call.ended);
          break;
      }
    }
  };

  /** Each client connection's own connection to the main process, for its streams proxied. */
  const internal = new WeakMap<Http2Session, ClientHttp2Session>();
  const internalOf = (session: Http2Session) => {
    const open = internal.get(session);
    if (open && !open.closed && !open.destroyed) return open;
    const made = connect("http://localhost", {
      createConnection: () => netConnect(settings.internal),
      settings: { enablePush: false },
    });
    made.on("error", ignore);
    internal.set(session, made);
    session.once("close", () => made.close());
    return made;
  };

  /**
   * Sends the stream to the main process's HTTP/2 server, with what was read of its body
   * (`chunks`) and the rest if `more`, and its answer back.
   */
  function proxy(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    chunks: readonly Buffer[],
    more: boolean,
  ) {
    const session = stream.session;
    if (!session) return;
    let upstream: ClientHttp2Stream;
    try {
      upstream = internalOf(session).request(forwarded(headers), { endStream: false });
    } catch {
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    upstream.on("error", ignore);
    for (const chunk of chunks) upstream.write(chunk);
    if (more) {
      stream.pipe(upstream);
      stream.resume();
    } else {
      upstream.end();
    }
    let trailers: IncomingHttpHeaders | undefined;
    let finished = false;
    upstream.once("response", (header: IncomingHttpHeaders, flags: number) => {
      if (stream.destroyed) return;
      const type = header["content-type"];
      // Only gRPC answers end with trailers here.
      const grpc =
        typeof type === "string" &&
        type.startsWith("application/grpc") &&
        !type.startsWith("application/grpc-web");
      if (flags & NGHTTP2_FLAG_END_STREAM) {
        finished = true;
        stream.respond(header as OutgoingHttpHeaders, { endStream: true });
        return;
      }
      stream.respond(header as OutgoingHttpHeaders, { waitForTrailers: grpc });
      if (grpc) stream.once("wantTrailers", () => stream.sendTrailers(trailers ?? {}));
      upstream.pipe(stream);
    });
    // A client that asked to be told to go on (Expect: 100-continue) is told so.
    upstream.once("continue", () => {
      if (!stream.destroyed && !stream.headersSent) stream.additionalHeaders({ ":status": 100 });
    });
    upstream.once("trailers", (header: IncomingHttpHeaders) => {
      trailers = header;
    });
    upstream.once("end", () => {
      finished = true;
    });
    // A reset either way is passed on to the other side.
    stream.once("close", () => {
      if (!finished && !upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
    });
    upstream.once("close", () => {
      if (!stream.destroyed && !finished) stream.close(upstream.rstCode || NGHTTP2_CANCEL);
    });
  }

  function take(socket: Socket, read: Uint8Array) {
    socket.on("error", ignore);
    if (draining) {
      socket.destroy();
      return;
    }
    socket.unshift(Buffer.from(read.buffer, read.byteOffset, read.byteLength));
    server.emit("connection", socket);
  }

  function drain() {
    if (draining) return;
    draining = true;
    clearInterval(count);
    tracked.drain();
    // Done once the last connection has closed.
    setInterval(() => {
      if (tracked.open === 0) process.exit(0);
    }, 20);
  }

  process.on("message", (message: unknown, handle: unknown) => {
    if (Array.isArray(message)) answer(message as Down[]);
    else if (handle && typeof message === "object" && message !== null && "socket" in message) {
      take(handle as Socket, (message as { socket: Uint8Array }).socket);
    }
  });
  // The main process is gone: so is every call this process could relay.
  process.once("disconnect", () => {
    tracked.destroy();
    process.exit(0);
  });
  send(READY);
}

/** The bytes as a Buffer, not copied: what came as a Uint8Array. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The call's headers as strings, in an object with no prototype. */
function plainHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null);
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** A stream's headers as a request to the main process: the same, but for the scheme. */
function forwarded(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = plainHeaders(headers);
  out[":scheme"] = "http";
  return out;
}

if (process.env.ELECTD_FRONT !== undefined && process.send) {
  const send = process.send.bind(process);
  serveFront(JSON.parse(process.env.ELECTD_FRONT) as FrontSettings, (message) => send(message));
}
