// How the server logs requests: Fastify's JSON log, without secrets and without noise.
//
// A Connect GET request carries its whole request message in the query (`message=`), and
// some messages are bearer secrets: GetSession's is a session id, which lets whoever holds
// it keep the session alive or close it. Fastify logs `req.url` on every incoming request
// and in "Route ... not found", so both are replaced here by the path with only the
// Connect protocol parameters' values kept.
import { constants, type Http2ServerResponse } from "node:http2";
import {
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from "fastify";

/** Query parameters that describe how a Connect GET is encoded, never what it says. */
const harmless = new Set(["connect", "encoding", "base64", "compression"]);

/** The URL with every query value but the harmless ones replaced by `[redacted]`. */
export function redactedUrl(url: string): string {
  const at = url.indexOf("?");
  if (at < 0) return url;
  const query = [...new URLSearchParams(url.slice(at + 1))].map(
    ([key, value]) =>
      `${encodeURIComponent(key)}=${harmless.has(key) ? encodeURIComponent(value) : "[redacted]"}`,
  );
  return `${url.slice(0, at)}?${query.join("&")}`;
}

class RedactingLogController extends LogController {
  override routeNotFound(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.info(`Route ${request.raw.method}:${redactedUrl(request.raw.url ?? "")} not found`);
  }
}

/**
 * Logger options for `Fastify()`: Fastify's JSON logs on stdout, request URLs redacted.
 * Requests are logged one by one (as they arrive, complete, or find no route) only with
 * `accessLog`: two JSON lines per request cost more than serving a read.
 */
export function loggerOptions(
  level: string,
  accessLog: boolean,
): Pick<FastifyServerOptions, "logger" | "logController"> {
  return {
    logger: {
      level,
      serializers: {
        // Fastify's default request serializer, with the URL redacted.
        req: (req) => {
          const remotePort = req.socket?.remotePort;
          return {
            method: req.method,
            url: redactedUrl(req.url),
            host: req.host,
            remoteAddress: req.ip,
            ...(remotePort === undefined ? {} : { remotePort }),
          };
        },
      },
    },
    logController: new RedactingLogController({ disableRequestLogging: !accessLog }),
  };
}

/**
 * One debug line when a connection closes before its response was complete: usually a
 * client that went away (a Watch it stopped, a call it cancelled). Fastify logs "request
 * completed" only for responses that finish, and nothing at all for these otherwise.
 */
export function logUnfinishedResponses(fastify: FastifyInstance): void {
  // The level is fixed at start: below debug, no request pays for a listener.
  if (fastify.log.level !== "debug" && fastify.log.level !== "trace") return;
  fastify.addHook("onRequest", (req, reply, done) => {
    // Not "finish": an HTTP/2 response emits it also when the client resets the stream.
    reply.raw.once("close", () => {
      // A stream the client reset may have had its response ended all the same: Node ends
      // the request's body just before it reports the reset, and Connect answers what it
      // read of it. The reset (HTTP/2 only: an HTTP/1.1 response has no stream) says the
      // client left.
      const { stream } = reply.raw as Partial<Pick<Http2ServerResponse, "stream">>;
      const rstCode = stream?.rstCode;
      const reset = rstCode !== undefined && rstCode !== constants.NGHTTP2_NO_ERROR;
      if (!reply.raw.writableEnded || reset) {
        req.log.debug(
          { responseTime: reply.elapsedTime },
          "connection closed before the response was complete",
        );
      }
    });
    done();
  });
}
