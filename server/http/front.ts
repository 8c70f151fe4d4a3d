// An h2c process (`--h2c-processes`): serves HTTP/2 cleartext connections for the main
// process, on a core of its own. The main process accepts every connection; those that open
// with the HTTP/2 preface are handed here, socket and all (fronts.ts). This process keeps
// them in the same bounds as the main process keeps its own (listener.ts: the cap, the
// deadlines, the drain), and for each stream:
// - a POST to one of the paths the direct path answers, without Origin or Expect, is read
//   (up to the size limit) and relayed to the main process, which answers it as its own (direct.ts,
//   through fronts.ts's RelayedExchange); the answer comes back to be written here. Most
//   calls are these.
// - any other stream, and any relayed call the main process hands back (not plain after
//   all), is proxied to the main process's HTTP/2 server over a connection of its own on a
//   Unix socket, one per client connection, and answered the regular way there.
// The elections, sessions and watches stay in the main process, in one thread: nothing
// about their consistency changes. What moves here is HTTP/2 itself: framing, streams and
// flow control, most of a unary call's CPU (README, "More cores for HTTP/2"). What the two
// processes say to each other: relay.ts.
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
import {
  ANSWER,
  type BodyRead,
  CALL,
  CLOSED,
  type DownBatch,
  DRAIN,
  DRAINED,
  END,
  FORGET,
  FULL,
  GONE,
  HAS_CHUNK,
  HAS_HEAD,
  HAS_TRAILER,
  HEADERS,
  type Headers,
  INLINE,
  INLINE_SET,
  MORE,
  OPEN,
  type Rare,
  READY,
  REGULAR,
  Reader,
  TRAILERS_FOLLOW,
  type UpBatch,
  WHOLE,
  Writer,
} from "./relay.js";

/** What the main process tells an h2c process at its start (in ELECTD_FRONT, as JSON). */
export interface FrontSettings {
  readonly connections: ConnectionSettings;
  /** The paths of the calls the main process answers directly: relayed. */
  readonly paths: readonly string[];
  /** Most bytes of a relayed call's body read before it is relayed as is. */
  readonly readLimit: number;
  /**
   * Most bytes of calls relayed that the main process has not yet taken: past it, new
   * calls are refused (REFUSED_STREAM, which tells a client it may retry) until it has.
   */
  readonly waitingLimit: number;
  /** The main process's Unix socket for the streams proxied (fronts.ts). */
  readonly internal: string;
}

/** A relayed call, until its answer ends. */
interface Relayed {
  readonly stream: ServerHttp2Stream;
  /** What the call is proxied with if handed back; dropped once answered. */
  headers: IncomingHttpHeaders | undefined;
  chunks: Buffer[] | undefined;
  ended: boolean;
  /** Whether the head said trailers end the answer. */
  trailers: boolean;
  /** Whether the main process was told the stream is full. */
  full: boolean;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM, NGHTTP2_REFUSED_STREAM } = constants;

/** What a call counts as waiting besides its body: its message, and its share of a batch. */
const CALL_BYTES = 64;

/**
 * Most sets of request headers numbered at once, and most bytes of them (each process,
 * and the main process for each); a set larger than SET_MAX_BYTES goes with its call.
 */
const MAX_HEADER_SETS = 1024;
const SET_BYTES = 1 << 20;
const SET_MAX_BYTES = 4096;

function ignore(): void {}

/** Whether the answer can still be written to the stream (a client may reset it any time). */
const open = (stream: ServerHttp2Stream) => !stream.destroyed && !stream.closed;

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

  // The batch being made: its calls written as they come, its rare messages.
  let written = new Writer();
  let rare: Rare[] = [];
  let pending = false;
  const flush = () => {
    pending = false;
    const batch: UpBatch = { calls: written.done(), rare };
    written = new Writer();
    rare = [];
    send(batch);
  };
  /** The batch to write to, sent at the end of this turn. */
  const batch = () => {
    if (!pending) {
      pending = true;
      setImmediate(flush);
    }
    return written;
  };
  const up = (type: typeof CLOSED | typeof FULL | typeof DRAINED, id: number) => {
    const w = batch();
    w.u8(type);
    w.u32(id);
  };
  const upRare = (message: Rare) => {
    batch();
    rare.push(message);
  };

  /** Calls relayed that the main process has not taken yet: their ids and sizes, in order. */
  const waiting: [number, number][] = [];
  let waitingBytes = 0;
  const taken = (id: number) => {
    while (waiting.length > 0 && (waiting[0] as [number, number])[0] <= id) {
      waitingBytes -= (waiting.shift() as [number, number])[1];
    }
  };

  // The main process's gauge of open connections counts these too.
  let told = 0;
  const count = setInterval(() => {
    const open = tracked.open;
    if (open === told) return;
    told = open;
    upRare([OPEN, open]);
  }, 250);

  /** The sets of request headers numbered, by their names and values. */
  const sets = new Map<string, number>();
  let setBytes = 0;
  const setOf = (id: number, headers: IncomingHttpHeaders, raw: readonly string[]): number => {
    // No name or value holds a NUL (RFC 9113, 8.2.1).
    const key = raw.join("\0");
    const set = sets.get(key);
    if (set !== undefined) return set;
    if (key.length > SET_MAX_BYTES) {
      upRare([INLINE, id, plainHeaders(headers)]);
      return INLINE_SET;
    }
    if (sets.size >= MAX_HEADER_SETS || setBytes + key.length > SET_BYTES) {
      sets.clear();
      setBytes = 0;
      // First in a batch of its own: every call before it was numbered the old way.
      if (pending) flush();
      upRare([FORGET]);
    }
    const number = sets.size;
    sets.set(key, number);
    setBytes += key.length;
    upRare([HEADERS, number, plainHeaders(headers)]);
    return number;
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
        // The main process is behind: what it has yet to take stays bounded.
        if (waitingBytes > settings.waitingLimit) stream.close(NGHTTP2_REFUSED_STREAM);
        else relay(stream, headers, raw);
      } else {
        proxy(stream, headers, [], true);
      }
    },
  );

  /**
   * Reads the body (up to the limit), then relays the call. What it reads counts as waiting
   * for the main process from the first byte: a burst of streams is bounded as a whole.
   */
  function relay(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]) {
    const chunks: Buffer[] = [];
    let size = 0;
    /** What this call counts in waitingBytes: its body read so far, and its message. */
    let counted = CALL_BYTES;
    waitingBytes += counted;
    const unlisten = () => {
      stream.off("data", onData);
      stream.off("end", onEnd);
      stream.off("close", onGone);
    };
    const send = (read: BodyRead) => {
      unlisten();
      const id = ++nextId;
      const set = setOf(id, headers, raw);
      const w = batch();
      w.u8(CALL);
      w.u32(id);
      w.u32(set);
      w.u8(read);
      if (read === GONE) {
        // A call whose client went is only counted: its body is not sent.
        w.u32(0);
        waitingBytes -= size;
        counted -= size;
      } else {
        w.u32(size);
        for (const chunk of chunks) w.bytes(chunk);
      }
      waiting.push([id, counted]);
      if (read === GONE) return;
      calls.set(id, {
        stream,
        headers,
        chunks,
        ended: read === WHOLE,
        trailers: false,
        full: false,
      });
      stream.once("close", () => {
        if (calls.delete(id)) up(CLOSED, id);
      });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      counted += chunk.length;
      waitingBytes += chunk.length;
      if (waitingBytes > settings.waitingLimit) {
        // Not relayed, and nothing of it kept: the client may send it again.
        unlisten();
        waitingBytes -= counted;
        stream.close(NGHTTP2_REFUSED_STREAM);
        return;
      }
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

  const answer = ({ answers }: DownBatch) => {
    const r = new Reader(answers);
    taken(r.u32());
    const chunks: Buffer[] = [];
    for (let count = r.u32(); count > 0; count--) chunks.push(r.bytes(r.u32()));
    while (r.more) {
      const type = r.u8();
      if (type === DRAIN) {
        drain();
        continue;
      }
      const id = r.u32();
      if (type === REGULAR) {
        const call = calls.get(id);
        calls.delete(id);
        if (call && open(call.stream) && call.headers) {
          proxy(call.stream, call.headers, call.chunks ?? [], !call.ended);
        }
        continue;
      }
      if (type !== ANSWER) throw new Error(`an answer batch with a message of type ${type}`);
      // Read whole, whether or not its stream is still there.
      const flags = r.u8();
      let head: [number, Headers] | undefined;
      if (flags & HAS_HEAD) head = [r.u16(), r.headers()];
      const chunk = flags & HAS_CHUNK ? chunks[r.u32()] : undefined;
      const trailer = flags & HAS_TRAILER ? r.headers() : undefined;
      const call = calls.get(id);
      if (!call) continue; // closed meanwhile
      try {
        answerPart(call, id, flags, head, chunk, trailer);
      } catch {
        // The stream went as this was written: it is over either way.
        calls.delete(id);
        if (!call.stream.destroyed) call.stream.close(NGHTTP2_CANCEL);
      }
    }
  };

  function answerPart(
    call: Relayed,
    id: number,
    flags: number,
    head: [number, Headers] | undefined,
    chunk: Buffer | undefined,
    trailer: Headers | undefined,
  ) {
    const { stream } = call;
    const end = (flags & END) !== 0;
    if (end) calls.delete(id);
    if (!open(stream)) return;
    if (head) {
      call.headers = undefined;
      call.chunks = undefined;
      call.trailers = (flags & TRAILERS_FOLLOW) !== 0;
      // Dated here, as Node's compatibility layer dates every response.
      stream.respond(
        { ":status": head[0], ...head[1], date: httpDate() },
        { waitForTrailers: call.trailers },
      );
    }
    if (end) {
      if (call.trailers) stream.once("wantTrailers", () => stream.sendTrailers(trailer ?? {}));
      if (chunk) stream.end(chunk);
      else stream.end();
    } else if (chunk && !stream.write(chunk) && !call.full) {
      call.full = true;
      up(FULL, id);
      stream.once("drain", () => {
        call.full = false;
        if (calls.has(id)) up(DRAINED, id);
      });
    }
  }

  /** Each client connection's own connection to the main process, for its streams proxied. */
  const internal = new WeakMap<Http2Session, ClientHttp2Session>();
  const internalOf = (session: Http2Session) => {
    const known = internal.get(session);
    if (known && !known.closed && !known.destroyed) return known;
    const made = connect("http://localhost", {
      createConnection: () => netConnect(settings.internal),
      settings: { enablePush: false },
    });
    made.on("error", ignore);
    internal.set(session, made);
    // Closed with its client's connection (one listener, whichever connection is current).
    if (!known) session.once("close", () => internal.get(session)?.close());
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
      stream.close(NGHTTP2_REFUSED_STREAM);
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
    // Each of these may find the client's stream reset meanwhile: the upstream one goes too.
    const guarded =
      <A extends unknown[]>(f: (...args: A) => void) =>
      (...args: A) => {
        if (!open(stream)) return;
        try {
          f(...args);
        } catch {
          if (!upstream.destroyed) upstream.close(NGHTTP2_CANCEL);
        }
      };
    upstream.once(
      "response",
      guarded((header: IncomingHttpHeaders, flags: number) => {
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
      }),
    );
    // A client that asked to be told to go on (Expect: 100-continue) is told so.
    upstream.once(
      "continue",
      guarded(() => {
        if (!stream.headersSent) stream.additionalHeaders({ ":status": 100 });
      }),
    );
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
      if (open(stream) && !finished) stream.close(upstream.rstCode || NGHTTP2_CANCEL);
    });
  }

  function take(socket: Socket, read: Uint8Array) {
    socket.on("error", ignore);
    if (draining) {
      socket.destroy();
      return;
    }
    socket.unshift(asBuffer(read));
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
    if (typeof message !== "object" || message === null) return;
    if ("answers" in message) answer(message as DownBatch);
    else if (handle && "socket" in message) {
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
