// One cleartext port for HTTP/1.1 and HTTP/2 with prior knowledge (h2c), told apart by the
// connection preface. (TLS needs none of this: Node's secure HTTP/2 server negotiates h2 or
// http/1.1 by ALPN.)
//
// Hand-written rather than @httptoolkit/httpolyglot, for one measured reason: httpolyglot
// hands every h2c socket to Node's HTTP/2 server wrapped in a JavaScript stream
// (js_stream_socket), which cost ~45 µs of CPU per call and a fifth of a unary gRPC call's
// server time in `node --cpu-prof` (a bare node:http2 server drops from 18,067 to 10,502
// req/s behind it). Node's HTTP/2 session reads a plain socket's native handle and first
// replays what is already buffered in it (Node >= 15), so the bytes read here to look at the
// preface are put back with unshift() and nothing is lost; the HTTP/1.1 server likewise
// parses what is buffered before reading the handle.
import {
  Server as Http1Server,
  type IncomingMessage,
  type ServerOptions,
  type ServerResponse,
} from "node:http";
import {
  createServer as createHttp2Server,
  type Http2Server,
  type ServerOptions as Http2ServerOptions,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from "node:http2";
import { Server as NetServer, type Socket } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** Events of a request or session: what subscribers of this server mean to hear. */
const FORWARDED = new Set<string | symbol>([
  "request",
  "checkContinue",
  "checkExpectation",
  "clientError",
  "upgrade",
  "connect",
  "dropRequest",
  "session",
  "sessionError",
  "stream",
  "timeout",
  "unknownProtocol",
]);

function ignore(): void {}

export type CleartextHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

/**
 * A TCP server that hands each connection to an HTTP/1.1 or an h2c server by its first
 * bytes. Listeners of request and session events added to it are added to both protocol
 * servers; `connection`, `listening` and `close` stay its own.
 */
export class CleartextServer extends NetServer {
  readonly http1: Http1Server;
  readonly http2: Http2Server;
  /**
   * Takes h2c connections in place of the HTTP/2 server, with the bytes read of them (an
   * h2c process serves them: fronts.ts).
   */
  h2c: ((socket: Socket, read: Buffer) => void) | undefined;

  constructor(
    options: { http1: ServerOptions; http2: Http2ServerOptions },
    handler: CleartextHandler,
  ) {
    super((socket) => this.sniff(socket, Buffer.alloc(0)));
    this.http1 = new Http1Server(options.http1, handler);
    this.http2 = createHttp2Server(options.http2, handler);
    this.on("newListener", (event, listener) => {
      if (!FORWARDED.has(event)) return;
      this.http1.on(event, listener);
      this.http2.on(event, listener);
    });
    this.on("removeListener", (event, listener) => {
      if (!FORWARDED.has(event)) return;
      this.http1.off(event, listener);
      this.http2.off(event, listener);
    });
  }

  /** Reads until the bytes so far are the HTTP/2 preface or cannot become it. */
  private sniff(socket: Socket, seen: Buffer): void {
    const chunk = socket.read() as Buffer | null;
    const data = chunk ? Buffer.concat([seen, chunk]) : seen;
    const compared = Math.min(data.length, PREFACE.length);
    const h2 = data.subarray(0, compared).equals(PREFACE.subarray(0, compared));
    if (data.length === 0 || (h2 && compared < PREFACE.length)) {
      // Until handed over, an error on the socket (a reset) is nobody's to report.
      socket.off("error", ignore);
      socket.on("error", ignore);
      socket.once("readable", () => this.sniff(socket, data));
      return;
    }
    socket.off("error", ignore);
    if (h2 && this.h2c) {
      this.h2c(socket, data);
      return;
    }
    socket.unshift(data);
    (h2 ? this.http2 : this.http1).emit("connection", socket);
  }
}
