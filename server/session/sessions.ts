// The sessions seam (API.md section 5), as stores are for elections: which sessions are
// alive, and the release of a session's candidates in every election when it ends. One
// implementation keeps sessions with local timers next to the memory or embedded store
// (registry.ts); one keeps them as etcd leases, shared by every server of a cluster.
import type { ChangeCause } from "../election/change.js";

export type SessionState = "active" | "expiring" | "closing";

export interface SessionView {
  readonly id: string;
  readonly ttlMs: number;
  /** Time left before expiry, in milliseconds; never negative, 0 once ended. */
  readonly remainingMs: number;
  readonly state: SessionState;
}

/** Why a session ended; undefined when that is no longer known (found orphaned at start). */
export type EndCause = ChangeCause | undefined;

export interface Sessions {
  /** Sessions open right now (on this server's knowledge). */
  readonly size: number;
  /** Sessions that ended and whose candidates are still being withdrawn. */
  readonly endingSize: number;
  /** Restores what the store kept, and releases candidates whose session is gone. */
  start(): Promise<void>;
  /** Opens a session; the id is returned only once the session is persisted. */
  open(ttlMs: number): Promise<SessionView>;
  /** Restarts the session's TTL; resolves with the TTL. An ended session cannot be revived. */
  keepAlive(id: string): Promise<number>;
  /** The session's TTL, time left and state; not_found when unknown, or ended and released. */
  get(id: string): Promise<SessionView>;
  /**
   * What this server knows of the session without asking anyone, for readers that join
   * sessions with elections' owners (a listing can show a candidate's remaining TTL
   * without handing session ids, which are bearer secrets, to the browser).
   */
  peek(id: string): SessionView | undefined;
  /**
   * Closes the session; resolves once its candidates are withdrawn everywhere. Closing a
   * session that is already ending tries its release again now; closing one whose release
   * committed succeeds. Fails (unavailable) when the release cannot commit now: it is
   * retried in the background all the same.
   */
  close(id: string): Promise<void>;
  /**
   * The id to bind an Enter or Close to: the session's own string when it is alive, a
   * not_found error when it is unknown, closed or expired, so nothing is entered for it.
   */
  bound(id: string): Promise<string>;
  /** Stops timers without expiring anything and waits for releases under way. */
  stop(): Promise<void>;
}
