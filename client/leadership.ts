// Leadership for a process: opens a session, keeps it alive, enters an election bound to
// the session and watches it, calling onElected(term) / onDeposed(term) as leadership
// comes and goes (the spirit of client-go's OnStartedLeading / OnStoppedLeading). Works
// with any Connect transport (connect-node, connect-web; Connect, gRPC or gRPC-Web).
//
// Leadership is claimed only while the session is known to be alive: the lease runs from
// the moment the last successful keep-alive was *sent* (the server restarted its TTL no
// earlier than that) and is given up `marginMs` before it runs out, on this process's own
// clock. So a process that cannot reach the server stops claiming before the server could
// expire the session and hand leadership to the next candidate.

import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../gen/electd/v1/session_pb.js";

/** Request header that binds Enter and Close to a session. */
export const SESSION_HEADER = "electd-session";

export interface LeadershipOptions {
  readonly transport: Transport;
  /** Election name (`id.name`). */
  readonly election: string;
  /** This process's candidate name: unique among the election's candidates. */
  readonly candidate: string;
  /** TTL to ask for; the server default (SESSION_TTL) when unset. */
  readonly ttlMs?: number;
  /** Keep-alive period; a third of the TTL when unset. */
  readonly keepAliveMs?: number;
  /** Leadership is given up this long before the lease runs out; a tenth of the TTL when unset. */
  readonly marginMs?: number;
  /** Pause before opening a new session after one was lost; 500 ms when unset. */
  readonly retryMs?: number;
  /** Create the election (idempotent) before entering it; true when unset. */
  readonly create?: boolean;
  /** Called when this candidate becomes leader; `term` is the fencing token. */
  onElected(term: bigint): void;
  /** Called when this candidate stops being leader, or stops claiming it (lease lost, stop()). */
  onDeposed(term: bigint): void;
  /** Hears failures the campaign recovers from (unreachable server, failed keep-alive). */
  onError?(error: unknown): void;
}

export interface Leadership {
  /** Whether this process may act as leader right now. */
  readonly leading: boolean;
  /** The term this process leads, 0n when it does not lead. */
  readonly term: bigint;
  /** The session in use, if one is open. */
  readonly sessionId: string | undefined;
  /**
   * Settles when the campaign ends: after stop(), or when the candidate was withdrawn or
   * evicted by someone else (this process does not enter again against an operator).
   */
  readonly done: Promise<void>;
  /** Stops claiming leadership now and closes the session, withdrawing the candidate. */
  stop(): Promise<void>;
}

const OPEN_TIMEOUT_MS = 5000;
/** First pause before a failed watch is opened again; it doubles up to half the TTL. */
const WATCH_RETRY_FIRST_MS = 100;

/** Campaigns for leadership until stop() (or eviction), across lost sessions. */
export function campaign(options: LeadershipOptions): Leadership {
  const sessions = createClient(SessionService, options.transport);
  const elections = createClient(LeaderElection, options.transport);
  const id = { name: options.election };
  const stopping = new AbortController();
  let leading = false;
  let term = 0n;
  let sessionId: string | undefined;

  const depose = () => {
    if (!leading) return;
    leading = false;
    const was = term;
    term = 0n;
    options.onDeposed(was);
  };

  /** One session's life: resolves "evicted" or "lost" once it is over and closed. */
  async function round(): Promise<"evicted" | "lost"> {
    const ended = new AbortController();
    const end = (reason: unknown) => {
      // Leadership is given up synchronously, before anything else can run.
      depose();
      ended.abort(reason);
    };
    const onStop = () => end(stopping.signal.reason);
    stopping.signal.addEventListener("abort", onStop, { once: true });
    let ttlMs = 0;
    let leaseEnd = 0;
    let confirmedAt = 0;
    let margin = 0;
    let lease: ReturnType<typeof setTimeout> | undefined;
    let beat: ReturnType<typeof setTimeout> | undefined;
    const claimable = () => !ended.signal.aborted && performance.now() < leaseEnd - margin;
    const renew = (sentAt: number) => {
      if (ended.signal.aborted) return;
      leaseEnd = sentAt + ttlMs;
      confirmedAt = performance.now();
      clearTimeout(lease);
      lease = setTimeout(
        () => end(new Error("session not kept alive within its TTL")),
        Math.max(0, leaseEnd - margin - performance.now()),
      );
    };
    const keepAlive = async (session: string, everyMs: number) => {
      const sentAt = performance.now();
      try {
        await sessions.keepAlive(
          { sessionId: session },
          { signal: ended.signal, timeoutMs: Math.max(1, Math.round(leaseEnd - sentAt)) },
        );
        if (ended.signal.aborted) return;
        renew(sentAt);
        beat = setTimeout(keepAlive, everyMs, session, everyMs);
      } catch (error) {
        if (ended.signal.aborted) return;
        if (ConnectError.from(error).code === Code.NotFound) return end(error);
        options.onError?.(error);
        // Retry soon: the lease, not this loop, decides when to give up.
        beat = setTimeout(keepAlive, Math.max(1, Math.round(margin / 2)), session, everyMs);
      }
    };

    try {
      const sentAt = performance.now();
      const opened = await sessions.openSession(
        options.ttlMs === undefined ? {} : { ttl: durationFromMs(options.ttlMs) },
        { signal: ended.signal, timeoutMs: OPEN_TIMEOUT_MS },
      );
      sessionId = opened.sessionId;
      ttlMs = opened.ttl ? durationMs(opened.ttl) : 0;
      margin = options.marginMs ?? ttlMs / 10;
      renew(sentAt);
      const everyMs = options.keepAliveMs ?? ttlMs / 3;
      beat = setTimeout(keepAlive, everyMs, sessionId, everyMs);
      const call = { signal: ended.signal };
      if (options.create ?? true) await elections.create({ id }, call);
      await elections.enter(
        { id, candidate: options.candidate },
        { ...call, headers: { [SESSION_HEADER]: sessionId } },
      );
      // A watch that fails (the server's watch slots are full, a proxy cut the stream) is
      // opened again while the session holds: giving the session up instead would withdraw
      // the candidate and enter it again, pushing the term up on every attempt. Without a
      // watch this process cannot tell whether it leads, so it does not claim to.
      for (let pause = WATCH_RETRY_FIRST_MS; ; pause = Math.min(pause * 2, ttlMs / 2)) {
        try {
          for await (const { term: now } of elections.watch({ id }, call)) {
            pause = WATCH_RETRY_FIRST_MS;
            if (now === undefined) continue;
            if (now.leader === options.candidate) {
              // A different term while still leader means someone else led in between.
              if (leading && now.term !== term) depose();
              if (!leading && claimable()) {
                leading = true;
                term = now.term;
                options.onElected(term);
              }
            } else {
              depose();
              if (!now.candidates.includes(options.candidate)) return "evicted";
            }
          }
          throw new ConnectError("watch ended by the server", Code.Unavailable);
        } catch (error) {
          const code = ConnectError.from(error).code;
          if (ended.signal.aborted || code === Code.NotFound) throw error;
          depose();
          options.onError?.(error);
          await sleep(pause, ended.signal);
        }
      }
    } catch (error) {
      if (!ended.signal.aborted) options.onError?.(error);
      return "lost";
    } finally {
      clearTimeout(lease);
      clearTimeout(beat);
      end(new Error("round over"));
      stopping.signal.removeEventListener("abort", onStop);
      if (sessionId !== undefined) await close(sessionId, confirmedAt + ttlMs);
      sessionId = undefined;
    }
  }

  /**
   * Closes a session. If that fails, waits until the server must have expired it, so the
   * next session's Enter is not a no-op on a candidate still bound to this one.
   */
  async function close(session: string, expiredBy: number): Promise<void> {
    try {
      await sessions.closeSession({ sessionId: session }, { timeoutMs: OPEN_TIMEOUT_MS });
    } catch (error) {
      if (ConnectError.from(error).code === Code.NotFound || stopping.signal.aborted) return;
      options.onError?.(error);
      await sleep(expiredBy - performance.now(), stopping.signal);
    }
  }

  const done = (async () => {
    while (!stopping.signal.aborted) {
      if ((await round()) === "evicted") return;
      await sleep(options.retryMs ?? 500, stopping.signal);
    }
  })();

  return {
    get leading() {
      return leading;
    },
    get term() {
      return term;
    },
    get sessionId() {
      return sessionId;
    },
    done,
    async stop() {
      stopping.abort(new Error("stopped"));
      await done;
    },
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
