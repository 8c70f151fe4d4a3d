// Limits per identity (README, "Authentication and roles"), beside the server's totals:
// one client cannot take every session or watch slot from the others. Only with auth on:
// without it every caller is the one anonymous identity, and the totals alone apply.
import { ANONYMOUS } from "../election/change.js";
import { limitReached } from "../errors.js";
import type { SessionView } from "../session/sessions.js";

/** The release of a slot that was not counted. */
function unlimited(): void {}

/** Concurrent watches per identity: a slot is taken when a stream opens. */
export class WatchQuota {
  private readonly held = new Map<string, number>();

  constructor(private readonly max: number) {}

  /**
   * Takes a slot for `identity`, given back once, when `signal` aborts or `release` is
   * called, whichever is first (as the hub does: a stream suspended on a vanished peer
   * never runs its `finally`). Throws (limit) when the identity holds `max` already.
   */
  acquire(identity: string, signal: AbortSignal | undefined): () => void {
    if (identity === ANONYMOUS) return unlimited;
    const count = this.held.get(identity) ?? 0;
    if (count >= this.max) {
      throw limitReached(
        `${this.max} concurrent watches of identity ${JSON.stringify(identity)} (MAX_WATCHES_PER_IDENTITY)`,
      );
    }
    this.held.set(identity, count + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      signal?.removeEventListener("abort", release);
      const left = (this.held.get(identity) ?? 1) - 1;
      if (left === 0) this.held.delete(identity);
      else this.held.set(identity, left);
    };
    if (signal?.aborted) release();
    else signal?.addEventListener("abort", release);
    return release;
  }
}

/**
 * Open sessions per identity. The sessions each identity opened here are remembered by id;
 * those that ended (and were released) are dropped when the identity is at its limit, so
 * an expiry needs no hook. Sessions restored after a restart count toward MAX_SESSIONS
 * only: who opened them is not kept.
 */
export class SessionQuota {
  private readonly opened = new Map<string, Set<string>>();

  constructor(
    private readonly max: number,
    private readonly peek: (id: string) => SessionView | undefined,
  ) {}

  /** Throws (limit) when `identity` holds `max` sessions that have not ended. */
  check(identity: string): void {
    if (identity === ANONYMOUS) return;
    const ids = this.opened.get(identity);
    if (ids === undefined || ids.size < this.max) return;
    for (const id of ids) if (this.peek(id) === undefined) ids.delete(id);
    if (ids.size >= this.max) {
      throw limitReached(
        `${this.max} open sessions of identity ${JSON.stringify(identity)} (MAX_SESSIONS_PER_IDENTITY)`,
      );
    }
  }

  /** Counts session `id`, just opened by `identity`. */
  record(identity: string, id: string): void {
    if (identity === ANONYMOUS) return;
    const ids = this.opened.get(identity) ?? new Set<string>();
    ids.add(id);
    this.opened.set(identity, ids);
  }
}
