// The main process's side of `--h2c-processes` (front.ts is the other): starts the h2c
// processes, hands each h2c connection to one of them in turn, answers the calls they relay
// through the direct path as its own, and serves the streams they proxy on a Unix socket.
//
// Why processes and not worker threads: a connection can be handed to another process
// (Node passes the socket itself), not to another thread, and threads sharing the listening
// socket share one file descriptor, closed by whichever of them ends first (Node 20 has no
// SO_REUSEPORT). The main process keeps listening and accepting as it does without them, so
// HTTP/1.1 and the first bytes of every connection are read where they always were.
import { type ChildProcess, fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import type { IncomingHttpHeaders } from "node:http";
import { createServer, type Server as NetServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ConnectionSettings } from "../config.js";
import type { CleartextServer } from "./cleartext.js";
import {
  type Body,
  type Caller,
  type CloseListener,
  type Exchange,
  type HeaderRecord,
  tell,
} from "./direct.js";
import type { FrontSettings } from "./front.js";
import {
  ANSWER,
  type BodyRead,
  CALL,
  CLOSED,
  type DownBatch,
  DRAIN,
  DRAINED,
  END,
  FORGET,
  FULL,
  GONE,
  HAS_CHUNK,
  HAS_HEAD,
  HAS_TRAILER,
  HEADERS,
  INLINE,
  INLINE_SET,
  OPEN,
  READY,
  REGULAR,
  Reader,
  TRAILERS_FOLLOW,
  type UpBatch,
  WHOLE,
  Writer,
} from "./relay.js";

export interface FrontOptions {
  readonly count: number;
  readonly cleartext: CleartextServer;
  readonly connections: ConnectionSettings;
  /** The paths the direct path answers: the calls relayed. */
  readonly paths: readonly string[];
  readonly readLimit: number;
  /** See FrontSettings. */
  readonly waitingLimit: number;
  /** Answers a relayed call if it is plain (DirectCalls.exchange); false hands it back. */
  readonly answer: (x: Exchange) => boolean;
  /** Told when an h2c process fails or ends unasked (it is started again). */
  readonly onError: (fields: Record<string, unknown>, message: string) => void;
}

export interface Fronts {
  /** Connections the h2c processes have open. */
  readonly open: number;
  /** Each h2c process stops politely and exits once its connections have closed. */
  drain(): void;
  /** Resolves once every h2c process has exited. */
  stopped(): Promise<void>;
  /** Kills whatever is still running. */
  destroy(): void;
}

/** The module an h2c process runs: the bundle's, or the source when run from it. */
const entry = new URL(
  import.meta.url.endsWith(".ts") ? "./front.ts" : "./front.js",
  import.meta.url,
);

/** An h2c process that fails within this long of its start is started again later. */
const QUICK_EXIT_MS = 10_000;
const MAX_RESTART_DELAY_MS = 10_000;

/** One h2c process and the calls it relayed that are not yet answered. */
class Front {
  readonly calls = new Map<number, RelayedExchange>();
  /** The sets of request headers it numbered (see UpBatch in relay.ts). */
  readonly sets = new Map<number, IncomingHttpHeaders>();
  open = 0;
  ready = false;
  /** Exited: what it still says is not listened to. */
  dead = false;
  /** The id of the last call taken from it. */
  taken = 0;
  /** Whether batches wait to be written to it; exchanges that wait for room, if so. */
  backlogged = false;
  readonly waiting = new Set<RelayedExchange>();
  private unsent = 0;
  /** The batch being made: its answers, and the bytes they send. */
  private out: Writer | undefined;
  private chunks: Uint8Array[] = [];
  private chunkIndex = new Map<Uint8Array, number>();

  constructor(readonly child: ChildProcess) {}

  private batch(): Writer {
    if (this.out) return this.out;
    setImmediate(this.flush);
    this.out = new Writer();
    return this.out;
  }

  /** Some of an answer: its head (status, headers, trailers follow), bytes, end, trailers. */
  answer(
    id: number,
    head: [number, HeaderRecord, boolean] | null,
    chunk: Uint8Array | undefined,
    end: boolean,
    trailer: HeaderRecord | undefined,
  ) {
    const w = this.batch();
    w.u8(ANSWER);
    w.u32(id);
    w.u8(
      (head ? HAS_HEAD | (head[2] ? TRAILERS_FOLLOW : 0) : 0) |
        (end ? END : 0) |
        (chunk ? HAS_CHUNK : 0) |
        (trailer ? HAS_TRAILER : 0),
    );
    if (head) {
      w.u16(head[0]);
      w.headers(head[1]);
    }
    if (chunk) w.u32(this.chunk(chunk));
    if (trailer) w.headers(trailer);
  }

  regular(id: number) {
    const w = this.batch();
    w.u8(REGULAR);
    w.u32(id);
  }

  drain() {
    this.batch().u8(DRAIN);
  }

  /** The index of `chunk` among the bytes of the batch being made: each is sent once. */
  private chunk(chunk: Uint8Array): number {
    let index = this.chunkIndex.get(chunk);
    if (index === undefined) {
      index = this.chunks.length;
      this.chunks.push(chunk);
      this.chunkIndex.set(chunk, index);
    }
    return index;
  }

  private readonly flush = () => {
    const answers = this.out?.done();
    this.out = undefined;
    const w = new Writer(8 + (answers?.length ?? 0) + this.chunks.length * 64);
    w.u32(this.taken);
    w.u32(this.chunks.length);
    for (const chunk of this.chunks) {
      w.u32(chunk.length);
      w.bytes(chunk);
    }
    if (answers) w.bytes(answers);
    this.chunks = [];
    this.chunkIndex = new Map();
    if (!this.child.connected) return;
    const batch: DownBatch = { answers: w.done() };
    this.unsent += 1;
    const written = this.child.send(batch, undefined, undefined, this.sent);
    if (!written) this.backlogged = true;
  };

  private readonly sent = () => {
    this.unsent -= 1;
    if (this.unsent > 0 || !this.backlogged) return;
    this.backlogged = false;
    const waiting = [...this.waiting];
    this.waiting.clear();
    for (const x of waiting) x.unblocked();
  };

  /** Its calls in progress end as if their clients went. */
  lost() {
    this.dead = true;
    this.ready = false;
    for (const x of this.calls.values()) x.closedThere();
    this.calls.clear();
    this.sets.clear();
    this.waiting.clear();
    this.open = 0;
  }
}

export async function startFronts(options: FrontOptions): Promise<Fronts> {
  const { cleartext } = options;
  // The streams proxied arrive here, on a socket only this user may open.
  const dir = mkdtempSync(join(tmpdir(), "electd-"));
  const internal = join(dir, "h2c.sock");
  const server: NetServer = createServer((socket: Socket) => {
    cleartext.http2.emit("connection", socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(internal, () => resolve());
  });

  const settings: FrontSettings = {
    connections: {
      ...options.connections,
      // Each process keeps its share of the cap.
      maxConnections: Math.max(1, Math.ceil(options.connections.maxConnections / options.count)),
    },
    paths: options.paths,
    readLimit: options.readLimit,
    waitingLimit: options.waitingLimit,
    internal,
  };
  const fronts: Front[] = [];
  let stopping = false;
  let next = 0;
  let exited: () => void = () => {};
  const allExited = new Promise<void>((resolve) => {
    exited = resolve;
  });
  const running = () => fronts.some((f) => !f.dead);
  /** Once stopping and every process has exited: the socket and its directory go. */
  const finish = () => {
    if (!stopping || running()) return;
    server.close();
    rmSync(dir, { recursive: true, force: true });
    exited();
  };
  const stop = () => {
    stopping = true;
    cleartext.h2c = undefined;
  };

  /** Quick failures in a row of each slot: the next start waits longer. */
  const failures: number[] = [];
  const spawn = (slot: number): Promise<void> => {
    const child = fork(entry, [], {
      serialization: "advanced",
      env: { ...process.env, ELECTD_FRONT: JSON.stringify(settings) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const front = new Front(child);
    fronts[slot] = front;
    const born = Date.now();
    child.on("message", (message: unknown) => {
      if (front.dead) return;
      if (message === READY) {
        front.ready = true;
        return;
      }
      receive(front, message as UpBatch);
    });
    // Failing to start, or to be written to: its exit (if it ran) says the rest.
    child.on("error", (error) => {
      options.onError({ err: error }, "an h2c process failed");
    });
    child.once("exit", (code, signal) => {
      front.lost();
      if (stopping) return finish();
      options.onError({ code, signal }, "an h2c process exited; starting another");
      failures[slot] = Date.now() - born < QUICK_EXIT_MS ? (failures[slot] ?? 0) + 1 : 0;
      const delay = Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** ((failures[slot] ?? 1) - 1));
      setTimeout(() => {
        if (stopping) return;
        try {
          spawn(slot).catch(() => {});
        } catch (error) {
          options.onError({ err: error }, "an h2c process could not be started");
        }
      }, delay).unref();
    });
    return new Promise((resolve, reject) => {
      const ready = (message: unknown) => {
        if (message !== READY) return;
        child.off("message", ready);
        resolve();
      };
      child.on("message", ready);
      child.once("exit", () => reject(new Error("an h2c process exited as it started")));
    });
  };

  const receive = (front: Front, { calls, rare }: UpBatch) => {
    /** Headers of this batch's calls too large to number, by call id. */
    let inline: Map<number, IncomingHttpHeaders> | undefined;
    for (const m of rare) {
      switch (m[0]) {
        case FORGET:
          front.sets.clear();
          break;
        case HEADERS:
          // Shared by every call that has them: nothing writes to a call's headers.
          front.sets.set(m[1], Object.freeze(m[2]));
          break;
        case INLINE:
          inline ??= new Map();
          inline.set(m[1], m[2]);
          break;
        case OPEN:
          front.open = m[1];
          break;
      }
    }
    const r = new Reader(calls);
    while (r.more) {
      const type = r.u8();
      const id = r.u32();
      switch (type) {
        case CALL: {
          const set = r.u32();
          const read = r.u8() as BodyRead;
          const body = r.bytes(r.u32());
          front.taken = id;
          const headers = (set === INLINE_SET ? inline?.get(id) : front.sets.get(set)) ?? noHeaders;
          const x = new RelayedExchange(front, id, headers, body, read);
          // A call whose client went is only counted (by the direct path, as canceled).
          if (read !== GONE) front.calls.set(id, x);
          else x.closedThere();
          if (!options.answer(x)) x.regular();
          break;
        }
        case CLOSED:
          front.calls.get(id)?.closedThere();
          break;
        case FULL:
          front.calls.get(id)?.fill();
          break;
        case DRAINED:
          front.calls.get(id)?.drain();
          break;
        default:
          throw new Error(`a call batch with a message of type ${type}`);
      }
    }
  };

  try {
    await Promise.all(Array.from({ length: options.count }, (_, slot) => spawn(slot)));
  } catch (error) {
    stop();
    for (const front of fronts) front?.child.kill("SIGKILL");
    server.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }

  // Each h2c connection goes to the next process ready for it; with none (all restarting),
  // the main process serves it as it does without them.
  cleartext.h2c = (socket, read) => {
    for (let tried = 0; tried < fronts.length; tried++) {
      const front = fronts[next++ % fronts.length];
      if (front?.ready && front.child.connected) {
        hand(front, socket, read);
        return;
      }
    }
    socket.unshift(read);
    cleartext.http2.emit("connection", socket);
  };

  return {
    get open() {
      let open = 0;
      for (const front of fronts) open += front.open;
      return open;
    },
    drain() {
      if (stopping) return;
      stop();
      for (const front of fronts) front.drain();
      finish();
    },
    stopped: () => allExited,
    destroy() {
      stop();
      for (const front of fronts) front.child.kill("SIGKILL");
      finish();
    },
  };
}

/**
 * Hands the connection over, with the bytes read of it. From here on, whatever the client
 * sends is the h2c process's to read: Node stops reading a socket it sends only once the
 * other side has it, and what it read meanwhile would be lost, so reading stops first.
 * (`readStop` is the socket's libuv handle's own; Node has no public way to stop a socket
 * that is being read from reading its file descriptor.)
 */
function hand(front: Front, socket: Socket, read: Buffer) {
  (socket as unknown as { _handle?: { readStop?(): number } })._handle?.readStop?.();
  const rest = socket.read() as Buffer | null;
  const bytes = rest ? Buffer.concat([read, rest]) : read;
  // Node would have the listening server ask the h2c process about this socket when it
  // closes, and count it out of the server's connections twice (once here, once as it is
  // destroyed below): as far as the server knows, this is an ordinary connection that
  // closes once sent, so closing the server waits for its own connections only.
  (socket as unknown as { server: unknown }).server = null;
  front.child.send({ socket: bytes }, socket, { keepOpen: false }, () => {
    // Sent, the socket here has no file descriptor left: this only lets go of it (and of
    // its place among the main process's connections). Not sent, it closes.
    socket.destroy();
  });
}

const noHeaders: IncomingHttpHeaders = Object.freeze({});

/**
 * A call relayed by an h2c process, answered by the direct path as a stream of its own
 * would be: the body came with it, the answer goes back in messages.
 */
class RelayedExchange implements Exchange {
  closed = false;
  headersSent = false;
  readonly rawHeaders: readonly string[] = [];
  headers: IncomingHttpHeaders;
  /** Whether this side ended the answer (or handed the call back). */
  private ended = false;
  private full = false;
  private pending: [number, HeaderRecord, boolean] | null = null;
  private room: (() => void) | undefined;
  private listeners: CloseListener[] | undefined;
  /** A view into the batch it came in: let go of once read. */
  private body: Buffer | undefined;

  constructor(
    private readonly front: Front,
    private readonly id: number,
    headers: IncomingHttpHeaders,
    body: Buffer,
    private readonly bodyRead: BodyRead,
  ) {
    this.headers = headers;
    this.body = body;
  }

  read(limit: number): Promise<Body> {
    // Read once (the direct path does): a watch does not keep its batch's bytes.
    const body = this.body ?? Buffer.alloc(0);
    this.body = undefined;
    const size = body.length;
    return Promise.resolve({
      chunks: [body],
      ended: this.bodyRead === WHOLE && size <= limit,
      gone: this.bodyRead === GONE,
    });
  }
  get caller(): Caller {
    return { headers: this.headers, socket: undefined };
  }
  get gone() {
    return this.closed && !this.ended;
  }
  onClose(listener: CloseListener) {
    if (this.closed) {
      tell(listener);
      return;
    }
    this.listeners = this.listeners ? [...this.listeners, listener] : [listener];
  }
  head(status: number, header: HeaderRecord, trailers: boolean) {
    if (this.closed) return;
    this.headersSent = true;
    // Sent with what follows (the direct path writes or ends right after): a unary answer
    // is one message. Should nothing follow in this turn, it goes alone.
    this.pending = [status, header, trailers];
    queueMicrotask(this.sendHead);
  }
  write(chunk: Uint8Array) {
    if (!this.closed) this.front.answer(this.id, this.taken(), chunk, false, undefined);
    return !this.full && !this.front.backlogged;
  }
  drained() {
    if (this.closed || (!this.full && !this.front.backlogged)) return Promise.resolve();
    if (this.front.backlogged) this.front.waiting.add(this);
    return new Promise<void>((resolve) => {
      this.room = resolve;
    });
  }
  end(chunk?: Uint8Array, trailer?: HeaderRecord) {
    if (this.closed) return;
    this.ended = true;
    this.front.answer(this.id, this.taken(), chunk, true, trailer);
    this.close();
  }
  regular() {
    if (!this.closed) {
      this.ended = true;
      this.front.regular(this.id);
      this.close();
    }
    return undefined;
  }
  settle() {
    this.headers = noHeaders;
  }

  /** The h2c process says the stream's buffer is full; then that it has room. */
  fill() {
    this.full = true;
  }
  drain() {
    this.full = false;
    if (!this.front.backlogged) this.wake();
  }
  /** The h2c process has taken every batch written to it: a writer may go on. */
  unblocked() {
    if (!this.full) this.wake();
  }
  /** The stream closed there: the client went. */
  closedThere() {
    this.close();
  }

  private readonly sendHead = () => {
    if (this.pending && !this.closed) {
      this.front.answer(this.id, this.taken(), undefined, false, undefined);
    }
  };

  /** The head not yet sent, if any: it goes with the next message. */
  private taken() {
    const head = this.pending;
    this.pending = null;
    return head;
  }

  private wake() {
    const room = this.room;
    this.room = undefined;
    room?.();
  }
  private close() {
    if (this.closed) return;
    this.closed = true;
    this.front.calls.delete(this.id);
    this.front.waiting.delete(this);
    this.wake();
    const listeners = this.listeners ?? [];
    this.listeners = undefined;
    for (const listener of listeners) tell(listener);
  }
}
