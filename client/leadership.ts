// Leadership for a process: opens a session, keeps it alive, enters an election bound to
// the session and watches it, calling onElected(term) / onDeposed(term) as leadership
// comes and goes (the spirit of client-go's OnStartedLeading / OnStoppedLeading). Works
// with any Connect transport (connect-node, connect-web; Connect, gRPC or gRPC-Web), and
// with several: when a server cannot be reached it moves on to the next, keeping its session
// (sessions kept in a store the servers share stay alive through any of them).
//
// Leadership is claimed only while the session is known to be alive: the lease runs from
// the moment the last successful keep-alive was *sent* (the server restarted its TTL no
// earlier than that) and is given up `marginMs` before it runs out, on this process's own
// clock. So a process that cannot reach the server stops claiming before the server could
// expire the session and hand leadership to the next candidate. A process whose server dies
// keeps leading while that lease holds: it does not need to see the election to know that no
// one else can have been elected in its place before then.
//
// It follows the election with ElectionHistoryService.WatchElection, and a watch opened again
// (after its server failed, or on the next server) resumes after the last version it saw:
// a change it missed meanwhile (someone else leading for a while) is still seen, in order.
//
// Every timer runs on an injectable Clock (as client-go's leader elector takes a
// clock.Clock), so tests can step the lease without depending on machine load.

import { durationFromMs, durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { LeaderElection } from "../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionHistoryService } from "../gen/electd/v1/history_pb.js";
import { SessionService } from "../gen/electd/v1/session_pb.js";

/** Request header that binds Enter and Close to a session. */
export const SESSION_HEADER = "electd-session";

/** The time source of a campaign: a monotonic clock in milliseconds, and its timers. */
export interface Clock {
  now(): number;
  /** Calls `callback` once `ms` have passed on this clock; the returned function cancels it. */
  after(ms: number, callback: () => void): () => void;
}

/** The process's monotonic clock and Node's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  after(ms, callback) {
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  },
};

export interface LeadershipOptions {
  /**
   * The server, or several: calls go to one at a time, and to the next when it cannot be
   * reached (`unavailable` or `deadline_exceeded`).
   */
  readonly transport: Transport | readonly Transport[];
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
  /** Time source for the lease, keep-alives and pauses; systemClock when unset. */
  readonly clock?: Clock;
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
   * Rejects with the server's refusal (unauthenticated, permission_denied) when it refuses
   * this client's credentials: the campaign gives up rather than retry for ever.
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
  const clock = options.clock ?? systemClock;
  const transports = Array.isArray(options.transport) ? options.transport : [options.transport];
  const servers = (transports as readonly Transport[]).map((transport) => ({
    sessions: createClient(SessionService, transport),
    elections: createClient(LeaderElection, transport),
    history: createClient(ElectionHistoryService, transport),
  }));
  if (servers.length === 0) throw new Error("campaign: no transport");
  let current = 0;
  /** The server calls go to now, and its index for `failed`. */
  const server = () => ({ index: current, ...(servers[current] as (typeof servers)[number]) });
  /**
   * Moves on to the next server when the call that failed went to the current one and
   * could not reach it (two calls failing on the same dead server move on once).
   */
  const failed = (index: number, error: unknown) => {
    const code = ConnectError.from(error).code;
    if (index === current && (code === Code.Unavailable || code === Code.DeadlineExceeded)) {
      current = (current + 1) % servers.length;
    }
  };
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
  /** Why the server refused this client (its credentials): no retry will change that. */
  let refusal: ConnectError | undefined;

  async function round(): Promise<"evicted" | "lost" | "refused"> {
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
    let cancelLease = () => {};
    let cancelBeat = () => {};
    let cancelBlind = () => {};
    const claimable = () => !ended.signal.aborted && clock.now() < leaseEnd - margin;
    const renew = (sentAt: number) => {
      if (ended.signal.aborted) return;
      leaseEnd = sentAt + ttlMs;
      confirmedAt = clock.now();
      cancelLease();
      cancelLease = clock.after(Math.max(0, leaseEnd - margin - clock.now()), () =>
        end(new Error("session not kept alive within its TTL")),
      );
    };
    const keepAlive = async (session: string, everyMs: number) => {
      const sentAt = clock.now();
      const { index, sessions } = server();
      try {
        // A server that does not answer within a keep-alive period is given up for the next.
        const timeoutMs = Math.max(1, Math.round(Math.min(leaseEnd - sentAt, everyMs)));
        await sessions.keepAlive({ sessionId: session }, { signal: ended.signal, timeoutMs });
        if (ended.signal.aborted) return;
        renew(sentAt);
        cancelBeat = clock.after(everyMs, () => keepAlive(session, everyMs));
      } catch (error) {
        if (ended.signal.aborted) return;
        if (ConnectError.from(error).code === Code.NotFound) return end(error);
        failed(index, error);
        options.onError?.(error);
        // Retry soon: the lease, not this loop, decides when to give up.
        cancelBeat = clock.after(Math.max(1, Math.round(margin / 2)), () =>
          keepAlive(session, everyMs),
        );
      }
    };

    let index = current;
    try {
      const sentAt = clock.now();
      const opening = server();
      index = opening.index;
      const opened = await opening.sessions.openSession(
        options.ttlMs === undefined ? {} : { ttl: durationFromMs(options.ttlMs) },
        { signal: ended.signal, timeoutMs: OPEN_TIMEOUT_MS },
      );
      sessionId = opened.sessionId;
      ttlMs = opened.ttl ? durationMs(opened.ttl) : 0;
      margin = options.marginMs ?? ttlMs / 10;
      renew(sentAt);
      const everyMs = options.keepAliveMs ?? ttlMs / 3;
      const session = sessionId;
      cancelBeat = clock.after(everyMs, () => keepAlive(session, everyMs));
      const call = { signal: ended.signal };
      if (options.create ?? true) {
        // Creating needs the admin role on a server with auth: a candidate's identity may
        // not, and campaigns in an election an admin created (Enter says not_found if none).
        await opening.elections.create({ id }, call).catch((error: unknown) => {
          if (ConnectError.from(error).code !== Code.PermissionDenied) throw error;
        });
      }
      await opening.elections.enter(
        { id, candidate: options.candidate },
        { ...call, headers: { [SESSION_HEADER]: sessionId } },
      );
      // A watch that fails (its server died, the server's watch slots are full, a proxy cut
      // the stream) is opened again, on the next server if this one cannot be reached, while
      // the session holds: giving the session up instead would withdraw the candidate and
      // enter it again, pushing the term up on every attempt. A leader that cannot see the
      // election keeps leading until the lease it held when the watch broke runs out;
      // without a watch this process never starts claiming.
      let seen = 0n;
      for (let pause = WATCH_RETRY_FIRST_MS; ; pause = Math.min(pause * 2, ttlMs / 2)) {
        const watching = server();
        index = watching.index;
        try {
          const changes = watching.history.watchElection(
            { name: options.election, afterVersion: seen },
            call,
          );
          for await (const message of changes) {
            pause = WATCH_RETRY_FIRST_MS;
            cancelBlind();
            seen = message.version;
            // A change replayed from history names its term and leader; a live one (and a
            // starting state) the whole state, queue included.
            const now = message.term ?? message.change;
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
              if (message.term && !message.term.candidates.includes(options.candidate)) {
                return "evicted";
              }
            }
          }
          throw new ConnectError("watch ended by the server", Code.Unavailable);
        } catch (error) {
          const code = ConnectError.from(error).code;
          if (ended.signal.aborted || code === Code.NotFound || refused(code)) throw error;
          failed(watching.index, error);
          if (leading) {
            cancelBlind();
            cancelBlind = clock.after(Math.max(0, leaseEnd - margin - clock.now()), depose);
          }
          options.onError?.(error);
          await sleep(clock, pause, ended.signal);
        }
      }
    } catch (error) {
      if (!ended.signal.aborted) {
        const connectError = ConnectError.from(error);
        if (refused(connectError.code)) {
          refusal = connectError;
          return "refused";
        }
        failed(index, error);
        options.onError?.(error);
      }
      return "lost";
    } finally {
      cancelLease();
      cancelBeat();
      cancelBlind();
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
    for (let tried = 0; tried < servers.length; tried++) {
      const { index, sessions } = server();
      try {
        await sessions.closeSession({ sessionId: session }, { timeoutMs: OPEN_TIMEOUT_MS });
        return;
      } catch (error) {
        if (ConnectError.from(error).code === Code.NotFound || stopping.signal.aborted) return;
        failed(index, error);
        options.onError?.(error);
      }
    }
    await sleep(clock, expiredBy - clock.now(), stopping.signal);
  }

  const done = (async () => {
    while (!stopping.signal.aborted) {
      const outcome = await round();
      if (outcome === "evicted") return;
      if (outcome === "refused" && refusal) throw refusal;
      await sleep(clock, options.retryMs ?? 500, stopping.signal);
    }
  })();
  // Whoever holds `done` hears a refusal; nobody is left with an unhandled one.
  done.catch(() => {});

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
      await done.catch(() => {});
    },
  };
}

/**
 * A refusal of the caller's credentials (a server with auth): retrying with the same ones
 * can only be refused again.
 */
function refused(code: Code): boolean {
  return code === Code.Unauthenticated || code === Code.PermissionDenied;
}

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const cancel = clock.after(ms, done);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      cancel();
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
