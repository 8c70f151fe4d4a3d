// Malformed requests must fail with invalid_argument (API.md section 4), but connect-es
// reports several client mistakes as `internal` because it cannot tell them from a bug:
// a binary message that does not parse, a compressed body that does not decompress
// (truncated gzip, bad brotli), and an envelope flagged as compressed when the request
// names no compression. This wraps each handler: the request message is read and checked
// once up front; a bad one is replaced by an empty message and the problem is carried in
// a context value, which the interceptor below raises as invalid_argument. Connect then
// encodes that error correctly for whichever protocol the client speaks. A good request
// is handed on byte for byte, still compressed: Connect decodes it as usual.
//
// Decompression is bounded by the same read limit Connect applies. A message that grows
// past it is handed on untouched and Connect answers resource_exhausted itself, so a
// decompression bomb costs at most readMaxBytes of memory here.
//
// Separately, protobuf-es refuses invalid UTF-8 in string fields while parsing, with the
// same `internal` code and no field name. Decoding leniently instead leaves U+FFFD where
// the bad bytes were, and validate.ts refuses that naming the field.
import { promisify } from "node:util";
import { brotliDecompress, gunzip, type ZlibOptions } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode, configureTextEncoding } from "@bufbuild/protobuf/wire";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createContextKey,
  createContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { type Shape, shapeOf } from "./codec.js";

const lenient = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();
configureTextEncoding({
  encodeUtf8: (text) => encoder.encode(text),
  decodeUtf8: (bytes) => lenient.decode(bytes),
  checkUtf8: (text) => text.isWellFormed(),
});

const malformed = createContextKey<string | undefined>(undefined);

/** Raises the problem found by `guardMalformedRequests` as invalid_argument. */
export const malformedRequestInterceptor: Interceptor = (next) => async (req) => {
  const problem = req.contextValues.get(malformed);
  if (problem !== undefined) throw new ConnectError(problem, Code.InvalidArgument);
  return next(req);
};

/**
 * Wraps every unary and server-streaming handler on `router` so malformed requests are
 * caught. Their request is complete before any response, so reading it first is safe.
 */
export function guardMalformedRequests(router: ConnectRouter, readMaxBytes: number): void {
  router.handlers.forEach((handler, i) => {
    const kind = handler.method.methodKind;
    if (kind !== "unary" && kind !== "server_streaming") return;
    router.handlers[i] = Object.assign(
      async (req: UniversalServerRequest) => handler(await checked(handler, req, readMaxBytes)),
      handler,
    ) as UniversalHandler;
  });
}

interface Decompressor {
  readonly label: string;
  readonly inflate: (bytes: Uint8Array, options: ZlibOptions) => Promise<Buffer>;
}

/** The compressions connect-node accepts by default, under their wire names. */
const decompressors: Record<string, Decompressor> = {
  gzip: { label: "gzip", inflate: promisify(gunzip) },
  br: { label: "brotli", inflate: promisify(brotliDecompress) },
};

/** What checking found: nothing wrong, a problem to report, or a request to hand on as is. */
type Verdict = { problem: string } | "fine" | "handOn";

async function* replay(
  chunks: Uint8Array[],
  rest?: AsyncIterator<Uint8Array>,
): AsyncIterable<Uint8Array> {
  yield* chunks;
  if (rest) yield* { [Symbol.asyncIterator]: () => rest };
}

async function* failing(chunks: Uint8Array[], error: unknown): AsyncIterable<Uint8Array> {
  yield* chunks;
  throw error;
}

async function checked(
  handler: UniversalHandler,
  req: UniversalServerRequest,
  readMaxBytes: number,
): Promise<UniversalServerRequest> {
  if (req.method === "GET") return checkedGet(handler, req, readMaxBytes);
  const shape = shapeOf(req.header.get("content-type") ?? "");
  if (!shape) return req;
  const encoding = named(req.header.get(shape.encodingHeader));
  // Uncompressed unary JSON: Connect's own parse errors are already invalid_argument.
  // Enveloped JSON is still read, for envelopes flagged as compressed.
  if (!shape.binary && encoding === undefined && !shape.enveloped) return req;
  const body = req.body;
  if (typeof body !== "object" || body === null || !(Symbol.asyncIterator in body)) return req;
  const chunks: Uint8Array[] = [];
  let size = 0;
  const it = (body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  try {
    for (let next = await it.next(); !next.done; next = await it.next()) {
      chunks.push(next.value);
      size += next.value.length;
      // Past the limit Connect itself answers resource_exhausted: hand everything on.
      if (size > readMaxBytes + 5) return { ...req, body: replay(chunks, it) };
    }
  } catch (error) {
    // The client went away before its request was complete. Thrown from here, the raw
    // stream error would escape the handler and connect-fastify would print it with its
    // stack; read by Connect, it ends the call quietly as any abandoned call does.
    return { ...req, body: failing(chunks, error) };
  }
  const bytes = Buffer.concat(chunks);
  const unchanged = { ...req, body: replay([bytes]) };
  const verdict = shape.enveloped
    ? await checkEnvelopes(handler, bytes, shape, encoding, readMaxBytes)
    : await checkMessage(handler, bytes, shape.binary, encoding, readMaxBytes);
  if (typeof verdict === "string") return unchanged;
  // The empty message handed on is uncompressed and shorter than the body announced.
  const header = new Headers(req.header);
  header.delete("content-length");
  header.delete(shape.encodingHeader);
  const empty = shape.binary ? new Uint8Array(0) : encoder.encode("{}");
  const message = shape.enveloped ? envelope(empty) : empty;
  return {
    ...req,
    header,
    body: replay([message]),
    contextValues: flagged(req, verdict.problem),
  };
}

/** Connect unary GET: the message (maybe base64, maybe compressed) is in the query. */
async function checkedGet(
  handler: UniversalHandler,
  req: UniversalServerRequest,
  readMaxBytes: number,
): Promise<UniversalServerRequest> {
  const url = new URL(req.url);
  const query = url.searchParams;
  const binary = query.get("encoding") === "proto";
  const encoding = named(query.get("compression"));
  if (!binary && encoding === undefined) return req;
  const message = query.get("message") ?? "";
  let bytes: Uint8Array;
  try {
    bytes = query.get("base64") === "1" ? base64Decode(message) : encoder.encode(message);
  } catch {
    return req; // Connect reports bad base64 itself
  }
  const verdict = await checkMessage(handler, bytes, binary, encoding, readMaxBytes);
  if (typeof verdict === "string") return req;
  query.delete("compression");
  query.delete("base64");
  query.set("message", binary ? "" : "{}");
  return { ...req, url: url.toString(), contextValues: flagged(req, verdict.problem) };
}

/** A compression name worth acting on: absent and `identity` mean uncompressed. */
function named(encoding: string | null): string | undefined {
  return encoding === null || encoding === "" || encoding === "identity" ? undefined : encoding;
}

function flagged(req: UniversalServerRequest, problem: string) {
  const contextValues = req.contextValues ?? createContextValues();
  contextValues.set(malformed, problem);
  return contextValues;
}

function envelope(message: Uint8Array): Uint8Array {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

async function checkMessage(
  handler: UniversalHandler,
  bytes: Uint8Array,
  binary: boolean,
  encoding: string | undefined,
  readMaxBytes: number,
): Promise<Verdict> {
  let message = bytes;
  let after = "";
  if (encoding !== undefined) {
    const decompressor = decompressors[encoding];
    // An unknown compression is answered by Connect (unimplemented, naming the known ones).
    if (!decompressor) return "handOn";
    const inflated = await inflate(decompressor, bytes, readMaxBytes);
    if (!(inflated instanceof Uint8Array)) return inflated;
    message = inflated;
    after = ` after ${decompressor.label} decompression`;
  }
  if (!binary) return "fine";
  const problem = parse(handler, message);
  if (problem === undefined) return "fine";
  return { problem: `request is not a valid protobuf message${after} (${problem})` };
}

async function inflate(
  decompressor: Decompressor,
  bytes: Uint8Array,
  readMaxBytes: number,
): Promise<Uint8Array | Exclude<Verdict, "fine">> {
  // As connect-node does: an empty body is an empty message, not a truncated stream.
  if (bytes.length === 0) return bytes;
  try {
    return await decompressor.inflate(bytes, { maxOutputLength: readMaxBytes });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") return "handOn";
    const reason = error instanceof Error ? error.message : String(error);
    return { problem: `request is not valid ${decompressor.label} (${reason})` };
  }
}

function parse(handler: UniversalHandler, bytes: Uint8Array): string | undefined {
  try {
    fromBinary(handler.method.input, bytes);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Checks each envelope (flags byte, 4-byte big-endian length, message). */
async function checkEnvelopes(
  handler: UniversalHandler,
  bytes: Buffer,
  shape: Shape,
  encoding: string | undefined,
  readMaxBytes: number,
): Promise<Verdict> {
  let at = 0;
  while (at + 5 <= bytes.length) {
    const flags = bytes.readUInt8(at);
    const length = bytes.readUInt32BE(at + 1);
    if (at + 5 + length > bytes.length) return "fine"; // Connect reports truncation itself
    const compressed = (flags & 0b1) !== 0;
    if (compressed && encoding === undefined) {
      return {
        problem: `request message is flagged as compressed but ${shape.encodingHeader} names no compression`,
      };
    }
    const message = bytes.subarray(at + 5, at + 5 + length);
    const verdict = await checkMessage(
      handler,
      message,
      shape.binary,
      compressed ? encoding : undefined,
      readMaxBytes,
    );
    if (verdict !== "fine") return verdict;
    at += 5 + length;
  }
  return "fine";
}
