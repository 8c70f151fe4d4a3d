// Counts and times every RPC by service, method, protocol and code. Each handler on the
// router is wrapped (as malformed.ts does), so this sees what the client is sent, whatever
// raised it: the handler, an interceptor, or Connect itself (a message too large, a bad
// timeout). The code is read from the response as each protocol carries it: gRPC in its
// trailers, gRPC-Web in its trailer frame, Connect unary from the status and error body,
// Connect streaming from its end-of-stream message. A call the client leaves before its
// response ends counts as `canceled`.
import type { DescMethod } from "@bufbuild/protobuf";
import type { Code, ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { Metrics } from "./metrics.js";
import type { CallTally } from "./tally.js";

export type Protocol = "connect" | "grpc" | "grpc-web";

export function protocolOf(contentType: string | null): Protocol {
  const type = contentType?.toLowerCase() ?? "";
  if (type.startsWith("application/grpc-web")) return "grpc-web";
  if (type.startsWith("application/grpc")) return "grpc";
  return "connect";
}

const decoder = new TextDecoder();

/** A gRPC status as Connect names codes ("ok", "not_found", ...). */
function grpcCode(status: string | null | undefined): string | undefined {
  if (status === null || status === undefined) return undefined;
  const code = Number(status);
  return code === 0 ? "ok" : codeToString(code as Code);
}

/** The code carried by one enveloped frame, if it is the last one of its protocol. */
function codeInFrame(frame: Uint8Array, protocol: Protocol): string | undefined {
  const flags = frame[0] ?? 0;
  if (protocol === "grpc-web" && flags & 0x80) {
    const trailer = /^grpc-status:\s*(\d+)/im.exec(decoder.decode(frame.subarray(5)));
    return grpcCode(trailer?.[1]);
  }
  if (protocol === "connect" && flags & 0x02) {
    try {
      const end = JSON.parse(decoder.decode(frame.subarray(5))) as { error?: { code?: string } };
      return end.error ? (end.error.code ?? "unknown") : "ok";
    } catch {
      return "unknown";
    }
  }
  return undefined;
}

/** The code of a Connect unary response: ok for 200, else its error body's code. */
function connectUnaryCode(status: number, body: Uint8Array | undefined): string {
  if (status === 200) return "ok";
  try {
    const error = JSON.parse(decoder.decode(body)) as { code?: string };
    if (typeof error.code === "string") return error.code;
  } catch {
    // not a Connect error body: fall back on the HTTP status
  }
  return codeToString(codeFromHttpStatus(status));
}

/**
 * One call, timed from its start: finish() counts it with its code. A start time and its
 * method's tally rather than prom-client's startTimer: a watch holds this for as long as it
 * is open.
 */
export class RequestClock {
  private readonly start = performance.now();

  constructor(
    private readonly metrics: Metrics,
    private readonly tally: CallTally,
  ) {}

  finish(code: string): void {
    const { tally } = this;
    this.metrics.requestDuration.observe(tally.labels, (performance.now() - this.start) / 1000);
    tally.ended(code);
  }
}

/** Starts timing one call of `method` in `protocol`: its clock's finish() counts it. */
export function startRequest(
  metrics: Metrics,
  method: DescMethod,
  protocol: Protocol,
): RequestClock {
  return new RequestClock(metrics, metrics.calls.of(method, protocol));
}

export function measureRequests(router: ConnectRouter, metrics: Metrics): void {
  router.handlers.forEach((handler, i) => {
    router.handlers[i] = Object.assign(async (req: UniversalServerRequest) => {
      const contentType = req.header.get("content-type");
      const protocol = protocolOf(contentType);
      // Connect unary (JSON or binary, or a GET) has no envelopes; its streams do.
      const enveloped =
        protocol !== "connect" || /^application\/connect\+/i.test(contentType ?? "");
      const clock = startRequest(metrics, handler.method, protocol);
      const res = await handler(req).catch((error: unknown) => {
        clock.finish("internal");
        throw error;
      });
      const { body } = res;
      const fromStatus = () =>
        res.status === 200 ? "ok" : codeToString(codeFromHttpStatus(res.status));
      if (body === undefined || body instanceof Uint8Array) {
        if (protocol === "connect") clock.finish(connectUnaryCode(res.status, body));
        else clock.finish(grpcCode(res.header?.get("grpc-status")) ?? fromStatus());
        return res;
      }
      async function* observed(): AsyncGenerator<Uint8Array> {
        let code: string | undefined;
        /** A Connect unary error's body, to read its code. */
        const error: Uint8Array[] = [];
        let complete = false;
        try {
          for await (const chunk of body as AsyncIterable<Uint8Array>) {
            if (enveloped) code = codeInFrame(chunk, protocol) ?? code;
            else if (res.status !== 200) error.push(chunk);
            yield chunk;
          }
          complete = true;
        } finally {
          // A client that resets an HTTP/2 stream can see its handler end normally after.
          if (!complete || req.signal.aborted) clock.finish("canceled");
          else if (!enveloped) clock.finish(connectUnaryCode(res.status, Buffer.concat(error)));
          else if (protocol === "grpc") {
            const status = res.trailer?.get("grpc-status") ?? res.header?.get("grpc-status");
            clock.finish(grpcCode(status) ?? fromStatus());
          } else clock.finish(code ?? fromStatus());
        }
      }
      return { ...res, body: observed() };
    }, handler) as UniversalHandler;
  });
}
