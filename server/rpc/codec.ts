// How a request carries its messages, told from its content type (or, for a Connect GET,
// its query): enveloped or not, protobuf binary or JSON, and which header names the
// compression of its body.

/** How a request carries its message, from its content type. */
export interface Shape {
  readonly enveloped: boolean;
  readonly binary: boolean;
  /** The header naming the compression of the body (unary) or of flagged envelopes. */
  readonly encodingHeader: string;
}

export function shapeOf(contentType: string): Shape | undefined {
  const unary = /^application\/(proto|json)(;|$)/i.exec(contentType);
  if (unary) {
    return {
      enveloped: false,
      binary: unary[1]?.toLowerCase() === "proto",
      encodingHeader: "content-encoding",
    };
  }
  const stream = /^application\/(grpc-web|grpc|connect)(\+(proto|json))?(;|$)/i.exec(contentType);
  if (!stream) return undefined;
  const family = stream[1]?.toLowerCase();
  return {
    enveloped: true,
    binary: stream[3]?.toLowerCase() !== "json",
    encodingHeader: family === "connect" ? "connect-content-encoding" : "grpc-encoding",
  };
}

/**
 * Whether a call's messages go as protobuf binary: its content type says so, or, for a
 * Connect GET (which has none), its `encoding=proto` query. Anything else is JSON.
 */
export function binaryCodec(method: string, contentType: string | null, url: string): boolean {
  if (method === "GET")
    return new URL(url, "http://localhost").searchParams.get("encoding") === "proto";
  return shapeOf(contentType ?? "")?.binary ?? false;
}
