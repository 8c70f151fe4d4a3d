// What keeps a browser from being turned against electd, checked on every request before
// any route runs:
// - Host: only an IP address, localhost or a name given in --allowed-hosts. A page on an
//   attacker's name that re-resolves to 127.0.0.1 (DNS rebinding) sends that name, and is
//   refused: it never reaches the API or the dashboard of a loopback electd.
// - Origin: a browser's request from another origin is refused unless --cors-origin lists
//   it; listed origins get CORS headers (preflight included) with Connect's own lists of
//   methods and headers. @fastify/cors would only leave the headers out for an unlisted
//   origin (the request still runs), and would need the same lists from Connect; the
//   refusal is the part that matters here, so this is the dozen lines it takes.
// - The security headers of the dashboard's pages, on every GET (README, "Threat model").
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { cors as connectCors } from "@connectrpc/connect";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AuthSettings } from "../config.js";

/** No inline script, no framing, nothing loaded from elsewhere. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  // The dashboard sets no inline styles today; inline styles cannot run code.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const securityHeaders = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

const corsHeaders = {
  "access-control-allow-methods": connectCors.allowedMethods.join(", "),
  "access-control-allow-headers": [
    ...connectCors.allowedHeaders,
    "authorization",
    "electd-session",
    "last-event-id",
  ].join(", "),
  "access-control-expose-headers": connectCors.exposedHeaders.join(", "),
  "access-control-max-age": "7200",
};

/** The host part of a Host header ("[::1]:8080" -> "::1", "Example.com:80" -> "example.com"). */
export function hostName(header: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed?.[1]) return bracketed[1].toLowerCase();
  return header.replace(/:\d+$/, "").toLowerCase();
}

export function hostAllowed(
  header: string | undefined,
  settings: AuthSettings,
  listening: string,
): boolean {
  // Only browsers are tricked into sending a foreign name, and they always send a Host.
  if (header === undefined || header === "") return true;
  const host = hostName(header);
  return (
    isIP(host) !== 0 ||
    host === "localhost" ||
    host === listening.toLowerCase() ||
    settings.allowedHosts.includes(host)
  );
}

export function guard(fastify: FastifyInstance, settings: AuthSettings, listening: string): void {
  const allowedOrigins = new Set(settings.corsOrigins);
  const refuse = (reply: FastifyReply, message: string) =>
    reply.code(403).type("text/plain; charset=utf-8").send(`${message}\n`);
  fastify.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    // What a browser renders or frames is fetched with GET; rpc answers to a POST are
    // never pages, and are sent as the direct path sends them (direct.ts).
    if (request.method === "GET" || request.method === "HEAD") reply.headers(securityHeaders);
    const host = requestHost(request);
    if (!hostAllowed(host, settings, listening)) {
      request.log.warn({ audit: "refused", host }, "request for a host name electd does not serve");
      return refuse(
        reply,
        `electd does not serve the host name ${JSON.stringify(host)}: add it to --allowed-hosts`,
      );
    }
    const origin = request.headers.origin;
    // Origin "null" (a sandboxed frame, a file) is any page's: refused like a foreign one.
    if (origin === undefined || sameOrigin(origin, host)) return;
    if (!allowedOrigins.has(origin)) {
      request.log.warn({ audit: "refused", origin }, "cross-origin request");
      return refuse(
        reply,
        `requests from ${origin} are not allowed: electd serves other origins only when --cors-origin lists them`,
      );
    }
    reply.headers({ "access-control-allow-origin": origin, vary: "Origin", ...corsHeaders });
    if (request.method === "OPTIONS") return reply.code(204).send();
  });
}

/** The Host header, or HTTP/2's :authority. */
export function hostOf(headers: IncomingHttpHeaders): string | undefined {
  const host = headers.host ?? headers[":authority"];
  return typeof host === "string" ? host : undefined;
}

function requestHost(request: FastifyRequest): string | undefined {
  return hostOf(request.headers);
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host.toLowerCase();
  } catch {
    return false;
  }
}
