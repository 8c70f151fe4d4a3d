// One listening socket for every protocol, and the rules that keep any client from
// holding it: deadlines for a first request, idle timeouts, a cap on connections.
//
// Cleartext: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) are told apart by the
// connection preface (cleartext.ts). TLS: Node's secure http2 server negotiates h2 or
// http/1.1 by ALPN itself.
//
// Node's HTTP/1.1 server already enforces headersTimeout, requestTimeout and
// keepAliveTimeout, so those are configured rather than rewritten. What Node leaves open is
// kept here: a connection that has not yet reached a parser (silent, a half-sent h2c
// preface, a TLS handshake), an HTTP/2 session that never opens a stream or has none open,
// and how many connections there may be.
import { readFileSync } from "node:fs";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
  type ServerHttp2Stream,
} from "node:http2";
import type { Server as NetServer, Socket } from "node:net";
import type { ConnectionSettings } from "../config.js";
import { CleartextServer } from "./cleartext.js";

export type Handler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/**
 * Answers an HTTP/2 stream before Node's compatibility layer makes a request and a response
 * of it; returns false to let it go on to that layer (and `Handler`) as usual.
 */
export type StreamHandler = (
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: readonly string[],
) => boolean;

export interface Listener {
  readonly server: NetServer;
  /**
   * Stop politely: connections with no request in progress close now, HTTP/1.1 ones in use
   * close when their request ends, HTTP/2 sessions get GOAWAY and close after their streams.
   */
  drain(): void;
  /** Destroy whatever is still connected. */
  destroy(): void;
  /** Connections counted against the cap now. */
  readonly open: number;
  /** The cleartext server, whose h2c connections may be handed on (fronts.ts); not with TLS. */
  readonly cleartext: CleartextServer | undefined;
}

/** One accepted TCP connection, whatever it turns out to speak. */
interface Connection {
  readonly socket: Socket;
  readonly key: string;
  session: Http2Session | undefined;
  /** HTTP/1.1 requests or HTTP/2 streams in progress. */
  active: number;
  /** Runs from accept until the first request: a client that never asks is dropped. */
  firstRequest: NodeJS.Timeout | undefined;
  /**
   * HTTP/2 only (idle HTTP/1.1 is timed by Node's keepAliveTimeout): the idle timeout, then
   * how long a peer sent GOAWAY has to hang up.
   */
  idle: NodeJS.Timeout | undefined;
}

// Node's own default: a whole HTTP/1.1 request must arrive within 5 minutes of its first
// byte (ours are small: at most MAX_REQUEST_BYTES).
const REQUEST_TIMEOUT_MS = 300_000;

export function createListener(
  handler: Handler,
  tls: { cert: string; key: string; clientCa?: string | undefined } | undefined,
  limits: ConnectionSettings,
  streams?: StreamHandler,
): Listener {
  const http1 = {
    headersTimeout: limits.headersTimeoutMs,
    // Node refuses a request timeout shorter than the headers timeout.
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, limits.headersTimeoutMs),
    // Node adds a second to this and advertises it in `Keep-Alive: timeout=`.
    keepAliveTimeout: limits.idleTimeoutMs,
    // Node checks the two timeouts above on this interval (30 s by default): this way it
    // enforces them at most a quarter of the headers timeout late, and at most a second.
    connectionsCheckingInterval: Math.max(
      1,
      Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)),
    ),
  };
  const http2 = { settings: { maxConcurrentStreams: limits.maxConcurrentStreams } };

  let server: NetServer;
  let http2Server: Http2Server | Http2SecureServer;
  let stopTracking = () => {};
  if (tls) {
    const secure = createSecureServer(
      {
        allowHTTP1: true,
        cert: readFileSync(tls.cert),
        key: readFileSync(tls.key),
        // A client certificate is asked for and verified, never required: a client without
        // one may still sign in with a token. auth/authenticate.ts uses only verified ones.
        ...(tls.clientCa === undefined
          ? {}
          : { requestCert: true, rejectUnauthorized: false, ca: readFileSync(tls.clientCa) }),
        ...http2,
      },
      handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
    );
    // With allowHTTP1 Node tracks HTTP/1.1 connections on this server from 'listening' on,
    // but fixes its timeouts in the constructor and sets no keep-alive timeout at all.
    server = Object.assign(secure, http1);
    http2Server = secure;
  } else {
    const cleartext = new CleartextServer({ http1, http2 }, handler);
    // The HTTP/1.1 server never listens, and Node only starts tracking connections (the
    // headers and request timeouts) when a server emits 'listening'. Emitted on it alone,
    // that starts the tracking and nothing else.
    cleartext.http1.emit("listening");
    stopTracking = () => cleartext.http1.close();
    server = cleartext;
    http2Server = cleartext.http2;
  }
  if (streams) takeStreams(http2Server, streams);

  const tracked = trackConnections(server, limits);
  server.once("close", () => stopTracking());
  return {
    server,
    cleartext: tls ? undefined : (server as CleartextServer),
    get open() {
      return tracked.open;
    },
    drain: () => tracked.drain(),
    destroy: () => tracked.destroy(),
  };
}

/** What keeps a server's connections in bounds: the cap, the deadlines, a polite stop. */
export interface Connections {
  /** Connections counted against the cap now. */
  readonly open: number;
  /** See Listener.drain. */
  drain(): void;
  /** Destroy whatever is still connected. */
  destroy(): void;
}

/**
 * Tracks every connection `server` emits ("connection"), and its HTTP/1.1 requests
 * ("request") or HTTP/2 session ("session"): the cap on connections, the deadline for a
 * first request, the idle timeout and the drain. Also what an h2c process (front.ts) runs
 * on the connections handed to it. `http1`: whether `server` serves HTTP/1.1, whose
 * requests are counted one by one (false for an HTTP/2 server, for which listening to
 * "request" would have Node make a request and a response object of every stream).
 */
export function trackConnections(
  server: Pick<NetServer, "on" | "prependListener">,
  limits: Pick<
    ConnectionSettings,
    "headersTimeoutMs" | "idleTimeoutMs" | "tcpKeepAliveMs" | "maxConnections"
  >,
  http1 = true,
): Connections {
  /** Every accepted socket until it closes, counted or not: what destroy() ends. */
  const sockets = new Set<Socket>();
  /** Open connections, counted against the cap, by remote address (see keyOf). */
  const connections = new Map<string, Connection>();
  /** Connections with no request in progress, longest idle first: who makes room. */
  const idle = new Set<Connection>();
  let draining = false;

  // A TLS socket and an HTTP/2 session over TLS are other objects than the accepted socket,
  // but report its address; no two open connections share one.
  const keyOf = (socket: {
    remoteAddress?: string | undefined;
    remotePort?: number | undefined;
  }) =>
    socket.remoteAddress === undefined || socket.remotePort === undefined
      ? undefined
      : `${socket.remoteAddress}|${socket.remotePort}`;
  const find = (socket: Parameters<typeof keyOf>[0] | undefined) => {
    const key = socket && keyOf(socket);
    return key === undefined ? undefined : connections.get(key);
  };

  const forget = (c: Connection) => {
    if (connections.get(c.key) === c) connections.delete(c.key);
    idle.delete(c);
    clearTimeout(c.firstRequest);
    clearTimeout(c.idle);
  };
  /** Closes now, uncounted at once: for the deadline and for making room. */
  const drop = (c: Connection) => {
    forget(c);
    // An HTTP/2 session still sends GOAWAY, without waiting for the peer to hang up.
    if (c.session && !c.session.destroyed) c.session.destroy();
    else c.socket.destroy();
  };
  /** Closes a connection with nothing in progress; an HTTP/2 peer is told by GOAWAY. */
  const retire = (c: Connection) => {
    if (!c.session || c.session.destroyed) return drop(c);
    // close() half-closes and waits for the peer to hang up, which a peer that stopped
    // reading never does: it gets as long as a new connection has to send its request.
    // Until then it still counts, first in line to make room.
    c.session.close();
    clearTimeout(c.idle);
    c.idle = setTimeout(() => drop(c), limits.headersTimeoutMs);
  };

  const started = (c: Connection) => {
    clearTimeout(c.firstRequest);
    c.firstRequest = undefined;
    clearTimeout(c.idle);
    c.active += 1;
    idle.delete(c);
  };
  const ended = (c: Connection) => {
    c.active -= 1;
    if (c.active > 0 || connections.get(c.key) !== c) return;
    idle.add(c);
    if (draining) retire(c);
    else if (c.session) c.idle = setTimeout(() => retire(c), limits.idleTimeoutMs);
  };

  const link = (c: Connection, session: Http2Session) => {
    c.session = session;
    // One listener for every stream of the session, and "on" rather than "once" (a stream
    // closes once): an idle watch's stream holds no wrapper of its own for it.
    const streamClosed = () => ended(c);
    session.on("stream", (stream: ServerHttp2Stream) => {
      started(c);
      stream.on("close", streamClosed);
    });
    if (draining) retire(c);
  };

  // First among the listeners: an HTTP/2 server's own makes the session (and emits
  // "session") as it hears of the connection, which must be known here by then.
  server.prependListener("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // RPCs are small request/response exchanges: without this, Nagle's algorithm and the
    // peer's delayed ACK add ~40 ms to every HTTP/2 call (measured on loopback: 44 ms vs 1.4 ms per call).
    socket.setNoDelay(true);
    // A peer that vanished while a Watch was quiet is otherwise never noticed: nothing is
    // sent, so nothing fails.
    socket.setKeepAlive(true, limits.tcpKeepAliveMs);
    const key = keyOf(socket);
    if (key === undefined || draining) {
      socket.destroy(); // already gone, or arriving after shutdown began
      return;
    }
    const c: Connection = {
      socket,
      key,
      session: undefined,
      active: 0,
      firstRequest: setTimeout(() => drop(c), limits.headersTimeoutMs),
      idle: undefined,
    };
    socket.once("close", () => forget(c));
    connections.set(key, c);
    idle.add(c);
    if (connections.size <= limits.maxConnections) return;
    // Over the cap: the connection idle the longest makes room (a silent one counts as idle
    // since it connected), so a flood of silent connections cannot lock clients out. Only
    // when every other connection has a request in progress is the new one refused.
    let victim = c;
    for (const other of idle) {
      if (other !== c) {
        victim = other;
        break;
      }
    }
    drop(victim);
  });

  if (http1)
    server.on("request", (req: IncomingMessage | Http2ServerRequest, res: ServerResponse) => {
      if (req.httpVersionMajor !== 1) return; // HTTP/2 streams are counted on their session
      const c = find(req.socket);
      if (!c) return;
      started(c);
      res.once("close", () => ended(c));
    });

  server.on("session", (session: Http2Session) => {
    const c = find(session.socket);
    if (c) link(c, session);
  });

  return {
    get open() {
      return connections.size;
    },
    drain() {
      // Node's closeIdleConnections() knows only HTTP/1.1 connections between requests; this
      // list also has those still to finish their first one, and HTTP/2 sessions.
      draining = true;
      for (const c of connections.values()) {
        if (c.active === 0) retire(c);
        else c.session?.close();
      }
    },
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/**
 * Puts `streams` before the listener through which Node's HTTP/2 server makes a request and
 * a response of every stream and emits "request" (its compatibility layer, added when a
 * server is made with a request listener): streams it declines go on to that listener.
 */
function takeStreams(server: Http2Server | Http2SecureServer, streams: StreamHandler): void {
  const compatibility = server.listeners("stream") as ((...args: unknown[]) => void)[];
  // Without that listener (a Node that no longer makes requests this way) every stream is
  // left to "request", answered the regular way.
  if (compatibility.length === 0) return;
  server.removeAllListeners("stream");
  server.on(
    "stream",
    (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
      if (streams(stream, headers, raw)) return;
      for (const listener of compatibility) listener.call(server, stream, headers, flags, raw);
    },
  );
}
