// One listening socket for every protocol, with Node's timeouts for HTTP/1.1 working on it.
//
// Cleartext: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) are told apart by the
// connection preface. Node's cleartext http2 server cannot fall back to HTTP/1.1 and reads a
// handed-over socket's native handle directly (bytes peeked and unshifted at JS level would
// be lost); @httptoolkit/httpolyglot sniffs the preface and hands h2c sockets over as JS
// streams, so nothing is lost. TLS: Node's secure http2 server negotiates h2 or http/1.1 by
// ALPN itself.
//
// Node's HTTP/1.1 server already enforces headersTimeout, requestTimeout and
// keepAliveTimeout, so those are configured rather than rewritten.
import { readFileSync } from "node:fs";
import type {
  Server as HttpServer,
  IncomingMessage,
  RequestListener,
  ServerResponse,
} from "node:http";
import {
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from "node:http2";
import type { Server as NetServer, Socket } from "node:net";
import { createServer as createPolyglot } from "@httptoolkit/httpolyglot";
import type { ConnectionSettings } from "../config.js";

export type Handler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

export interface Listener {
  readonly server: NetServer;
  /** Stop keep-alive connections and HTTP/2 sessions politely: idle ones close now. */
  drain(): void;
  /** Destroy whatever is still connected. */
  destroy(): void;
}

// Node's own default: a request body (ours are at most MAX_REQUEST_BYTES) must arrive
// within 5 minutes of its first byte.
const REQUEST_TIMEOUT_MS = 300_000;

export function createListener(
  handler: Handler,
  tls: { cert: string; key: string } | undefined,
  limits: ConnectionSettings,
): Listener {
  const http1 = {
    headersTimeout: limits.headersTimeoutMs,
    // Node refuses a request timeout shorter than the headers timeout.
    requestTimeout: Math.max(REQUEST_TIMEOUT_MS, limits.headersTimeoutMs),
    // Node adds a second to this and advertises it in `Keep-Alive: timeout=`.
    keepAliveTimeout: limits.idleTimeoutMs,
    // Node checks the two timeouts above on this interval (30 s by default), so a deadline
    // is met within a quarter of itself, and within a second for the usual ones.
    connectionsCheckingInterval: Math.max(
      1,
      Math.min(1000, Math.floor(limits.headersTimeoutMs / 4)),
    ),
  };
  const http2 = { settings: { maxConcurrentStreams: limits.maxConcurrentStreams } };

  let server: NetServer;
  let inner: HttpServer | undefined;
  let stopTracking = () => {};
  if (tls) {
    const secure = createSecureServer(
      { allowHTTP1: true, cert: readFileSync(tls.cert), key: readFileSync(tls.key), ...http2 },
      handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
    );
    // With allowHTTP1 Node tracks HTTP/1.1 connections on this server from 'listening' on,
    // but fixes its timeouts in the constructor and sets no keep-alive timeout at all.
    server = Object.assign(secure, http1);
  } else {
    const polyglot = createPolyglot({ http: http1, http2 }, handler as RequestListener);
    // httpolyglot's HTTP/1.1 server never listens, and Node only starts tracking
    // connections (the headers and request timeouts) when a server emits 'listening'.
    // Emitted now, before anything subscribes through httpolyglot (which copies every
    // listener of the outer server onto its inner servers), it starts that and nothing else.
    const http1Server = (polyglot as unknown as { _httpServer: HttpServer })._httpServer;
    http1Server.emit("listening");
    inner = http1Server;
    stopTracking = () => {
      // close() is the public way to stop the tracking timer. Its 'close' event would reach
      // the listeners copied from the outer server (Fastify's among them), which have
      // already seen the real one.
      http1Server.removeAllListeners("close");
      http1Server.close();
    };
    server = polyglot;
  }

  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  server.on("connection", (socket: Socket) => {
    // RPCs are small request/response exchanges: without this, Nagle's algorithm and the
    // peer's delayed ACK add ~40 ms to every HTTP/2 call (measured on loopback: 44 ms vs 1.4 ms per call).
    socket.setNoDelay(true);
    // A peer that vanished while a Watch was quiet is otherwise never noticed: nothing is
    // sent, so nothing fails.
    socket.setKeepAlive(true, limits.tcpKeepAliveMs);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  server.once("close", () => stopTracking());
  return {
    server,
    drain() {
      for (const session of sessions) session.close();
      // Node's own list of HTTP/1.1 connections, now kept: idle keep-alive ones close now.
      inner?.closeIdleConnections();
      if ("closeIdleConnections" in server && typeof server.closeIdleConnections === "function") {
        server.closeIdleConnections();
      }
    },
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
