// What the main process and an h2c process say to each other (`--h2c-processes`: fronts.ts
// and front.ts), and how it is written: a batch per event-loop turn, its calls and answers
// in one buffer of their own layout, the rest (rare) as objects.
//
// Why a layout of its own: sent as objects through Node's IPC channel, each call and
// answer went through V8's serializer and its host-object hook for each buffer, about a
// fifth of a relayed call's CPU (`node --cpu-prof`); a buffer per batch goes through it once.

/** Ids of the messages in a batch's buffer. */
export const CALL = 0;
export const CLOSED = 1;
export const FULL = 2;
export const DRAINED = 3;
export const ANSWER = 4;
export const REGULAR = 5;
export const DRAIN = 6;

/** How much of a relayed call's body came with it. */
export const MORE = 0;
export const WHOLE = 1;
export const GONE = 2;
export type BodyRead = typeof MORE | typeof WHOLE | typeof GONE;

/** A call's set number saying its headers came with it (INLINE), too large to number. */
export const INLINE_SET = 0xffffffff;

export type Headers = Record<string, string | string[]>;

/**
 * From an h2c process to the main process: `{ calls, rare }`, the rare messages taken first.
 * In `calls`, one after another:
 * - CALL: u8, id u32, set u32, read u8, body length u32, body: a call to answer, with the
 *   number of its set of request headers (or INLINE_SET), and how much of its body came
 *   (WHOLE; MORE: the rest was not read, being over the limit; GONE: the client went before
 *   the rest came, and the call is only to be counted as canceled);
 * - CLOSED, FULL, DRAINED: u8, id u32: the stream closed before the answer ended (the
 *   client went); its buffer is full; it has room again.
 * Call ids count up from 1. The rare messages:
 * - `[HEADERS, set, headers]`: a set of request headers, numbered: calls name it by number
 *   (the calls of a client mostly repeat one set, so it is sent once);
 * - `[FORGET]`: the numbered sets are forgotten; always first in its batch;
 * - `[INLINE, id, headers]`: the headers of call `id` of this batch;
 * - `[OPEN, n]`: how many connections this process has open.
 */
export interface UpBatch {
  readonly calls: Uint8Array;
  readonly rare: readonly Rare[];
}

export const HEADERS = 0;
export const FORGET = 1;
export const INLINE = 2;
export const OPEN = 3;

export type Rare =
  | [typeof HEADERS, number, Headers]
  | [typeof FORGET]
  | [typeof INLINE, number, Headers]
  | [typeof OPEN, number];

/**
 * From the main process: `{ answers }`, a buffer holding the id of the last call taken
 * from this process (u32), the bytes its answers send (count u32, then each as length u32
 * and bytes: each once, however many streams send it, as a watch's state), then:
 * - ANSWER: u8, id u32, flags u8 (HAS_HEAD, END, TRAILERS_FOLLOW, HAS_CHUNK, HAS_TRAILER),
 *   then if HAS_HEAD the status u16 and headers, if HAS_CHUNK the index u32 of its bytes,
 *   if HAS_TRAILER the trailers: some of an answer; at END the trailers (or empty ones) if
 *   the head said they follow;
 * - REGULAR: u8, id u32: not a plain call after all: proxy it with the body read;
 * - DRAIN: u8: stop politely, then exit.
 * Headers are written as a count u8, then each entry's name (length u8, latin1) and value
 * (length u32, latin1); a name given several values has an entry for each.
 * A connection handed over is a message of its own: `{ socket: bytes read }` and the socket.
 */
export interface DownBatch {
  readonly answers: Uint8Array;
}

export const HAS_HEAD = 1;
export const END = 2;
export const TRAILERS_FOLLOW = 4;
export const HAS_CHUNK = 8;
export const HAS_TRAILER = 16;

/** The message that says an h2c process is ready for connections. */
export const READY = "ready";

/** Writes a batch's buffer, growing it as needed. */
export class Writer {
  private buffer: Buffer;
  length = 0;

  constructor(size = 4096) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  private room(bytes: number) {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
  u8(value: number) {
    this.room(1);
    this.buffer[this.length++] = value;
  }
  u16(value: number) {
    this.room(2);
    this.buffer.writeUInt16BE(value, this.length);
    this.length += 2;
  }
  u32(value: number) {
    this.room(4);
    this.buffer.writeUInt32BE(value, this.length);
    this.length += 4;
  }
  /** Writes `value` at `at`, already written (a count known only later). */
  u32At(at: number, value: number) {
    this.buffer.writeUInt32BE(value, at);
  }
  bytes(bytes: Uint8Array) {
    this.room(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }
  latin1(text: string, width: 1 | 4) {
    const size = Buffer.byteLength(text, "latin1");
    if (width === 1) this.u8(size);
    else this.u32(size);
    this.room(size);
    this.length += this.buffer.write(text, this.length, "latin1");
  }
  headers(headers: Headers) {
    const at = this.length;
    this.u8(0);
    let count = 0;
    for (const name of Object.keys(headers)) {
      const value = headers[name] as string | string[];
      for (const one of typeof value === "string" ? [value] : value) {
        this.latin1(name, 1);
        this.latin1(one, 4);
        count += 1;
      }
    }
    if (count > 255) throw new Error("more than 255 headers in an answer");
    (this.buffer as Uint8Array)[at] = count;
  }
  /** What was written, the buffer let go of. */
  done(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/** Reads a batch's buffer. */
export class Reader {
  private at = 0;
  private readonly buffer: Buffer;

  constructor(bytes: Uint8Array) {
    this.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get more(): boolean {
    return this.at < this.buffer.length;
  }
  u8(): number {
    return this.buffer[this.at++] as number;
  }
  u16(): number {
    const value = this.buffer.readUInt16BE(this.at);
    this.at += 2;
    return value;
  }
  u32(): number {
    const value = this.buffer.readUInt32BE(this.at);
    this.at += 4;
    return value;
  }
  /** The next `length` bytes, not copied. */
  bytes(length: number): Buffer {
    const bytes = this.buffer.subarray(this.at, this.at + length);
    this.at += length;
    return bytes;
  }
  latin1(width: 1 | 4): string {
    const length = width === 1 ? this.u8() : this.u32();
    const text = this.buffer.toString("latin1", this.at, this.at + length);
    this.at += length;
    return text;
  }
  /** Headers as written by Writer.headers, in an object with no prototype. */
  headers(): Headers {
    const headers: Headers = Object.create(null);
    for (let count = this.u8(); count > 0; count--) {
      const name = this.latin1(1);
      const value = this.latin1(4);
      const known = headers[name];
      if (known === undefined) headers[name] = value;
      else headers[name] = typeof known === "string" ? [known, value] : [...known, value];
    }
    return headers;
  }
}
