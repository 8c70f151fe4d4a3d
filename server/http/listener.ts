// One listening socket for every protocol. Cleartext: HTTP/1.1 and HTTP/2 with prior
// knowledge (h2c) are told apart by the connection preface. Node's cleartext http2 server
// cannot fall back to HTTP/1.1 and reads a handed-over socket's native handle directly
// (bytes peeked and unshifted at JS level would be lost); @httptoolkit/httpolyglot sniffs
// the preface and hands h2c sockets over as JS streams, so nothing is lost. TLS: Node's
// secure http2 server negotiates h2 or http/1.1 by ALPN itself.
import { readFileSync } from "node:fs";
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import {
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from "node:http2";
import type { Server as NetServer, Socket } from "node:net";
import { createServer as createPolyglot } from "@httptoolkit/httpolyglot";

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

export function createListener(
  handler: Handler,
  tls: { cert: string; key: string } | undefined,
): Listener {
  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  const server: NetServer = tls
    ? createSecureServer(
        { allowHTTP1: true, cert: readFileSync(tls.cert), key: readFileSync(tls.key) },
        handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
      )
    : createPolyglot(handler as RequestListener);
  server.on("connection", (socket: Socket) => {
    // RPCs are small request/response exchanges: without this, Nagle's algorithm and the
    // peer's delayed ACK add ~40 ms to every HTTP/2 call (measured on loopback: 44 ms vs 1.4 ms per call).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  return {
    server,
    drain() {
      for (const session of sessions) session.close();
      // httpolyglot keeps its HTTP/1.1 server private; closing its idle keep-alive
      // connections is the only way to let close() finish before they time out.
      (
        server as { _httpServer?: { closeIdleConnections(): void } }
      )._httpServer?.closeIdleConnections();
      if ("closeIdleConnections" in server && typeof server.closeIdleConnections === "function") {
        server.closeIdleConnections();
      }
    },
    destroy() {
      for (const socket of sockets) socket.destroy();
    },
  };
}
