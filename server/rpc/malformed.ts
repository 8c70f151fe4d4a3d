// Malformed protobuf requests must fail with invalid_argument (API.md section 4), but
// connect-es reports a binary parse failure as `internal` (it cannot tell a bad request
// from a bug). This wraps each handler: binary request messages are parsed once up front;
// one that does not parse is replaced by an empty message and the parse error is carried
// in a context value, which the interceptor below raises as invalid_argument. Connect
// then encodes that error correctly for whichever protocol the client speaks.
//
// Separately, protobuf-es refuses invalid UTF-8 in string fields while parsing, with the
// same `internal` code and no field name. Decoding leniently instead leaves U+FFFD where
// the bad bytes were, and validate.ts refuses that naming the field.
import { fromBinary } from "@bufbuild/protobuf";
import { configureTextEncoding } from "@bufbuild/protobuf/wire";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";

const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();
configureTextEncoding({
  encodeUtf8: (text) => encoder.encode(text),
  decodeUtf8: (bytes) => lenient.decode(bytes),
  checkUtf8: (text) => text.isWellFormed(),
});

const parseError = createContextKey<string | undefined>(undefined);

/** Raises the parse error found by `guardBinaryRequests` as invalid_argument. */
export const malformedRequestInterceptor: Interceptor = (next) => async (req) => {
  const problem = req.contextValues.get(parseError);
  if (problem !== undefined) {
    throw new ConnectError(
      `request is not a valid protobuf message (${problem})`,
      Code.InvalidArgument,
    );
  }
  return next(req);
};

/**
 * Wraps every unary and server-streaming handler on `router` so malformed binary messages
 * are caught. Their request is complete before any response, so reading it first is safe.
 */
export function guardBinaryRequests(router: ConnectRouter, readMaxBytes: number): void {
  router.handlers.forEach((handler, i) => {
    const kind = handler.method.methodKind;
    if (kind !== "unary" && kind !== "server_streaming") return;
    router.handlers[i] = Object.assign(
      async (req: UniversalServerRequest) => handler(await checked(handler, req, readMaxBytes)),
      handler,
    ) as UniversalHandler;
  });
}

const binaryType = /^application\/(proto|grpc(-web)?(\+proto)?|connect\+proto)(;|$)/i;
const envelopedType = /^application\/(grpc|connect\+)/i;

async function* replay(
  chunks: Uint8Array[],
  rest?: AsyncIterator<Uint8Array>,
): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (rest) yield* { [Symbol.asyncIterator]: () => rest };
}

async function checked(
  handler: UniversalHandler,
  req: UniversalServerRequest,
  readMaxBytes: number,
): Promise<UniversalServerRequest> {
  const type = req.header.get("content-type") ?? "";
  const body = req.body;
  if (!binaryType.test(type) || req.header.has("content-encoding")) return req;
  if (typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return req;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const it = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  for (let next = await it.next(); !next.done; next = await it.next()) {
    chunks.push(next.value);
    size += next.value.length;
    // Past the limit Connect itself answers resource_exhausted: hand everything on.
    if (size > readMaxBytes + 5) return { ...req, body: replay(chunks, it) };
  }
  const bytes = Buffer.concat(chunks);
  const enveloped = envelopedType.test(type);
  const problem = enveloped ? checkEnvelopes(handler, bytes) : check(handler, bytes);
  if (problem === undefined) return { ...req, body: replay([bytes]) };
  const contextValues = req.contextValues ?? createContextValues();
  contextValues.set(parseError, problem);
  // The empty message handed on is shorter than the body announced.
  const header = new Headers(req.header);
  header.delete("content-length");
  const empty = enveloped ? new Uint8Array([0, 0, 0, 0, 0]) : new Uint8Array(0);
  return { ...req, header, body: replay([empty]), contextValues };
}

function check(handler: UniversalHandler, bytes: Uint8Array): string | undefined {
  try {
    fromBinary(handler.method.input, bytes);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Checks each uncompressed envelope (flags byte, 4-byte big-endian length, message). */
function checkEnvelopes(handler: UniversalHandler, bytes: Buffer): string | undefined {
  let at = 0;
  while (at + 5 <= bytes.length) {
    const flags = bytes.readUInt8(at);
    const length = bytes.readUInt32BE(at + 1);
    if (at + 5 + length > bytes.length) return undefined; // Connect reports truncation itself
    if ((flags & 0b1) === 0) {
      const problem = check(handler, bytes.subarray(at + 5, at + 5 + length));
      if (problem !== undefined) return problem;
    }
    at += 5 + length;
  }
  return undefined;
}
