// The session registry (API.md section 5): which sessions are alive, when each expires, and
// in which elections each one owns candidates. When a session is closed or expires, the
// candidates it entered are withdrawn in every election by the rules' `release`, one
// atomic change per election, so the next candidate leads with term+1 and watchers see it.
//
// Expiry costs nothing while sessions are idle: each session has one Node timer that a
// keep-alive restarts with `refresh()`. Node keeps timers of equal duration in one list
// ordered by start time behind a single libuv timer, so refreshing is O(1) (unlink,
// append) and 100,000 idle sessions with the same TTL wake the process only when the
// first of them expires (bench/sessions.ts measures this). Node starts a timer from the
// event loop's cached clock, which lags real time while the loop is busy, so a timer may
// fire a little before the TTL has passed since the keep-alive was handled: the deadline,
// read from the real clock, is the truth, and an early timer is followed by a short one.
//
// A session that ends must release its candidates eventually, always: a dead leader must
// never stay in place because one write failed (disk full, data file locked). An ended
// session is kept as "ending" (GetSession reports it expiring or closing) until every
// release and the deletion of its record have committed; failed attempts are retried with
// backoff, and a CloseSession of an ending session tries again at once and reports how
// that went. Recently ended ids are remembered so a retried CloseSession succeeds.
import { randomBytes } from "node:crypto";
import { type Clock, systemClock, type Timer } from "../clock.js";
import type { SessionSettings } from "../config.js";
import { type ChangeCause, decideRelease, type Election } from "../election/change.js";
import type { RuleLimits } from "../election/rules.js";
import { ElectdError, limitReached, shuttingDown } from "../errors.js";
import type { LocalStore } from "../store/store.js";
import type { EndCause, Sessions, SessionView } from "./sessions.js";

/** 144 random bits: 24 base64url characters, none of them padding. */
const ID_BYTES = 18;

/** Elections read per page when the index is rebuilt at start. */
const PAGE = 1000;

/** Backoff between attempts to release an ended session: doubles from the first to the last. */
export const RELEASE_RETRY_FIRST_MS = 50;
export const RELEASE_RETRY_MAX_MS = 1000;

/** A session that has ended and whose candidates are not all withdrawn yet. */
interface Ending {
  readonly id: string;
  readonly ttlMs: number;
  readonly cause: EndCause;
  /** The attempt in flight, if any. */
  attempt: Promise<void> | undefined;
  /** The next attempt, when one failed. */
  retry: Timer | undefined;
  delayMs: number;
}

interface Session {
  readonly id: string;
  readonly ttlMs: number;
  /** The clock's time at which the session expires unless kept alive. */
  deadline: number;
  timer: Timer;
  /** Whether `timer` is a short one-off after an early firing, not the TTL timer. */
  short: boolean;
}

export interface SessionRegistryOptions {
  readonly store: LocalStore;
  readonly settings: SessionSettings;
  readonly limits: RuleLimits;
  /** Hears failures of work no request waits for (withdrawals after expiry). */
  readonly onError?: (error: unknown) => void;
  /** Time and timers; the system's unless a test moves time by hand. */
  readonly clock?: Clock;
}

/** Sessions kept by this server with local timers, persisted in its store. */
export class SessionRegistry implements Sessions {
  private readonly live = new Map<string, Session>();
  /** session -> elections where it owns candidates. */
  private readonly electionsOf = new Map<string, Set<string>>();
  /** election -> sessions owning candidates there (what `electionsOf` was built from). */
  private readonly ownersIn = new Map<string, Set<string>>();
  /** Releases in flight, keyed by election and session, so each runs once at a time. */
  private readonly releasing = new Map<string, Promise<void>>();
  /** Sessions that ended and whose release has not fully committed yet. */
  private readonly ending = new Map<string, Ending>();
  /** Ids of sessions whose release committed, oldest first, at most MAX_SESSIONS. */
  private readonly ended = new Set<string>();
  private opening = 0;
  private closed = false;
  private unsubscribe: (() => void) | undefined;
  private readonly store: LocalStore;
  private readonly settings: SessionSettings;
  private readonly limits: RuleLimits;
  private readonly onError: (error: unknown) => void;
  private readonly clock: Clock;
  // One function shared by every timer (the id rides as the timer's argument), so an idle
  // session costs its record and its timer, no closure.
  private readonly expire = (id: string) => {
    const session = this.live.get(id);
    if (!session) return;
    const early = session.deadline - this.clock.now();
    if (early > 0) {
      session.timer = this.clock.timer(Math.ceil(early), this.expire, id);
      session.short = true;
      return;
    }
    this.end(session, "session-expired").catch(() => {
      // Reported by the attempt itself, and retried until it commits.
    });
  };

  private readonly retry = (ending: Ending) => {
    this.attempt(ending).catch(() => {
      // Reported by the attempt itself, and retried until it commits.
    });
  };

  constructor(options: SessionRegistryOptions) {
    this.store = options.store;
    this.settings = options.settings;
    this.limits = options.limits;
    this.onError = options.onError ?? (() => {});
    this.clock = options.clock ?? systemClock;
  }

  get size(): number {
    return this.live.size;
  }

  get endingSize(): number {
    return this.ending.size;
  }

  /**
   * Restores persisted sessions, each with one full TTL of grace (keep-alives are not
   * persisted), and indexes which elections hold their candidates. Candidates owned by a
   * session that no longer exists (closed just before a crash) are withdrawn now.
   */
  async start(): Promise<void> {
    for (const record of await this.store.listSessions()) this.schedule(record.id, record.ttlMs);
    // Changes heard while paging are newer than what a page read: those names are skipped.
    let heard: Set<string> | undefined = new Set();
    this.unsubscribe = this.store.subscribe((election) => {
      heard?.add(election.name);
      this.track(election);
    });
    let after: string | undefined;
    for (;;) {
      const page = await this.store.list({
        limit: PAGE,
        ...(after === undefined ? {} : { after }),
      });
      for (const election of page) if (!heard.has(election.name)) this.track(election);
      const last = page.at(-1);
      if (page.length < PAGE || last === undefined) break;
      after = last.name;
    }
    heard = undefined;
  }

  async open(ttlMs: number): Promise<SessionView> {
    this.refuseIfClosed();
    if (this.live.size + this.ending.size + this.opening >= this.settings.maxSessions) {
      throw limitReached(`${this.settings.maxSessions} sessions (MAX_SESSIONS)`);
    }
    const id = randomBytes(ID_BYTES).toString("base64url");
    this.opening++;
    try {
      await this.store.putSession({ id, ttlMs });
    } finally {
      this.opening--;
    }
    this.refuseIfClosed();
    this.schedule(id, ttlMs);
    return { id, ttlMs, remainingMs: ttlMs, state: "active" };
  }

  async keepAlive(id: string): Promise<number> {
    const session = this.find(id);
    if (session.short) {
      this.clock.cancel(session.timer);
      session.timer = this.clock.timer(session.ttlMs, this.expire, id);
      session.short = false;
    } else {
      session.timer.refresh();
    }
    session.deadline = this.clock.now() + session.ttlMs;
    return session.ttlMs;
  }

  async get(id: string): Promise<SessionView> {
    const view = this.peek(id);
    if (!view) throw notFound(id);
    return view;
  }

  peek(id: string): SessionView | undefined {
    const session = this.live.get(id);
    if (session) {
      const remainingMs = Math.max(0, Math.round(session.deadline - this.clock.now()));
      return { id, ttlMs: session.ttlMs, remainingMs, state: "active" };
    }
    const ending = this.ending.get(id);
    if (!ending) return undefined;
    const state = ending.cause === "session-closed" ? "closing" : "expiring";
    return { id, ttlMs: ending.ttlMs, remainingMs: 0, state };
  }

  async close(id: string): Promise<void> {
    this.refuseIfClosed();
    const session = this.live.get(id);
    if (session) return this.end(session, "session-closed");
    const ending = this.ending.get(id);
    if (ending) return this.attempt(ending);
    if (this.ended.has(id)) return;
    throw notFound(id);
  }

  async bound(id: string): Promise<string> {
    // The registry's own string, not the caller's: every binding of a session then shares
    // one copy of its id.
    return this.find(id).id;
  }

  /** Sessions get their grace after a restart, so stopping expires nothing. */
  async stop(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    for (const session of this.live.values()) this.clock.cancel(session.timer);
    this.live.clear();
    for (const ending of this.ending.values()) this.clock.cancel(ending.retry);
    await Promise.allSettled([...this.releasing.values()]);
  }

  private schedule(id: string, ttlMs: number): void {
    // Timers never keep the process alive: shutdown stops them anyway.
    const timer = this.clock.timer(ttlMs, this.expire, id);
    this.live.set(id, { id, ttlMs, deadline: this.clock.now() + ttlMs, timer, short: false });
  }

  private find(id: string): Session {
    const session = this.live.get(id);
    if (!session) throw notFound(id);
    return session;
  }

  private refuseIfClosed(): void {
    if (this.closed) throw shuttingDown();
  }

  /**
   * Ends a session: it stops being alive first, so no Enter can bind to it any more (one
   * that already passed the check is caught by `track`), then its candidates are withdrawn
   * in every election and its record deleted, retried until that commits. Resolves or
   * fails with the first attempt.
   */
  private end(session: Session, cause: ChangeCause): Promise<void> {
    this.clock.cancel(session.timer);
    if (this.live.get(session.id) !== session) return Promise.resolve();
    this.live.delete(session.id);
    return this.attempt(this.startEnding(session.id, session.ttlMs, cause));
  }

  private startEnding(id: string, ttlMs: number, cause: EndCause): Ending {
    const ending: Ending = {
      id,
      ttlMs,
      cause,
      attempt: undefined,
      retry: undefined,
      delayMs: RELEASE_RETRY_FIRST_MS,
    };
    this.ending.set(id, ending);
    return ending;
  }

  /**
   * One attempt at releasing an ended session everywhere and deleting its record, or the
   * one already in flight. On failure the next attempt is scheduled with backoff.
   */
  private attempt(ending: Ending): Promise<void> {
    if (ending.attempt) return ending.attempt;
    this.clock.cancel(ending.retry);
    ending.retry = undefined;
    const run = async () => {
      // A release commits through `track`, which takes the election off the session's
      // index; an Enter that slipped in meanwhile adds one: loop until none is left.
      for (;;) {
        const names = this.electionsOf.get(ending.id);
        if (!names?.size) {
          await this.store.deleteSession(ending.id);
          if (!this.electionsOf.get(ending.id)?.size) return;
          continue;
        }
        const results = await Promise.allSettled(
          [...names].map((name) => this.release(name, ending.id, ending.cause)),
        );
        const failed = results.find((r) => r.status === "rejected");
        if (failed) throw failed.reason;
        // Committed, so `track` has taken these off the index; one a release found nothing
        // to withdraw in was stale: take it off too, or this loop would never end.
        for (const name of names) this.forget(ending.id, name);
      }
    };
    const attempt = run().then(
      () => {
        ending.attempt = undefined;
        if (this.ending.get(ending.id) !== ending) return;
        this.ending.delete(ending.id);
        this.remember(ending.id);
      },
      (error: unknown) => {
        ending.attempt = undefined;
        if (!this.closed && this.ending.get(ending.id) === ending) {
          this.onError(error);
          ending.retry = this.clock.timer(ending.delayMs, this.retry, ending);
          ending.delayMs = Math.min(ending.delayMs * 2, RELEASE_RETRY_MAX_MS);
        }
        throw error;
      },
    );
    ending.attempt = attempt;
    return attempt;
  }

  /** Remembers an id whose release committed, so closing it again succeeds. */
  private remember(id: string): void {
    this.ended.add(id);
    if (this.ended.size > this.settings.maxSessions) {
      const oldest = this.ended.values().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }

  /** Withdraws, as one change, every candidate `session` owns in election `name`. */
  private release(name: string, session: string, cause?: ChangeCause): Promise<void> {
    const key = `${name}\u0000${session}`;
    const running = this.releasing.get(key);
    if (running) return running;
    const done = this.store
      .update(name, (election) => decideRelease(election, session, this.limits, cause))
      .then(() => undefined)
      .finally(() => this.releasing.delete(key));
    this.releasing.set(key, done);
    return done;
  }

  /**
   * Keeps the index in step with a committed election, and withdraws candidates whose
   * session is gone: an Enter that checked its session just before the session ended.
   */
  private track(election: Election): void {
    const now = new Set(election.owners.values());
    const before = this.ownersIn.get(election.name);
    if (before) {
      for (const session of before) if (!now.has(session)) this.unindex(session, election.name);
    }
    for (const session of now) {
      if (!before?.has(session)) {
        let names = this.electionsOf.get(session);
        if (!names) {
          names = new Set();
          this.electionsOf.set(session, names);
        }
        names.add(election.name);
      }
      if (!this.live.has(session) && !this.closed) {
        // Its session has ended: release it with the session's other elections, retried
        // until it commits. A session found orphaned (closed just before a crash) is
        // released with no cause: whether it expired or was closed is no longer known.
        const ending = this.ending.get(session) ?? this.startEnding(session, 0, undefined);
        this.attempt(ending).catch(() => {});
      }
    }
    if (now.size === 0) this.ownersIn.delete(election.name);
    else this.ownersIn.set(election.name, now);
  }

  /** Takes `name` off `session`'s index both ways, so a later commit can add it again. */
  private forget(session: string, name: string): void {
    this.unindex(session, name);
    const sessions = this.ownersIn.get(name);
    sessions?.delete(session);
    if (sessions?.size === 0) this.ownersIn.delete(name);
  }

  private unindex(session: string, name: string): void {
    const names = this.electionsOf.get(session);
    names?.delete(name);
    if (names?.size === 0) this.electionsOf.delete(session);
  }
}

function notFound(id: string): ElectdError {
  return new ElectdError(
    "not_found",
    `session ${quote(id)} not found (it is unknown or was closed or expired)`,
  );
}

/** A client-supplied id for an error message: quoted, and short whatever was sent. */
function quote(id: string): string {
  return JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}...` : id);
}
