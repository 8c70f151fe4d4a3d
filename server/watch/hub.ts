// Watch fan-out (API.md section 3). The hub hears every committed change from the store
// once and hands it to each watcher of that election. Each watcher owns a bounded mailbox:
// when its client reads too slowly the newest state replaces the last one queued, so
// memory stays bounded and order is never broken.
import { electionNotFound, limitReached, shuttingDown } from "../errors.js";
import type { Election, ElectionStore } from "../store/store.js";

export interface WatchLimits {
  /** Most concurrent watches on this server. */
  readonly maxWatches: number;
  /** States queued per watcher before the newest starts replacing the last one queued. */
  readonly mailboxSize: number;
}

/**
 * A watcher's queue of states not yet sent. Election watches keep up to `size` states in
 * order and then let the newest replace the last one queued; list watches keep only the
 * latest state per election (`keyed`), so a slow reader never holds more than one state
 * per election.
 */
class Mailbox {
  private readonly queue: Election[] = [];
  private readonly latest = new Map<string, Election>();
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly keyed: boolean,
  ) {}

  /** States waiting to be sent. */
  get length(): number {
    return this.queue.length + this.latest.size;
  }

  push(item: Election): void {
    if (this.keyed) {
      this.latest.delete(item.name);
      this.latest.set(item.name, item);
    } else if (this.queue.length >= this.size) {
      this.queue[this.queue.length - 1] = item;
    } else {
      this.queue.push(item);
    }
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  close(): void {
    this.closed = true;
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** The next state, or undefined once closed. */
  async take(): Promise<Election | undefined> {
    if (!(await this.ready())) return undefined;
    if (!this.keyed) return this.queue.shift();
    const [name, item] = this.latest.entries().next().value as [string, Election];
    this.latest.delete(name);
    return item;
  }

  /** Every state queued (at least one), oldest first, or undefined once closed. */
  async takeAll(): Promise<Election[] | undefined> {
    if (!(await this.ready())) return undefined;
    const items = this.keyed ? [...this.latest.values()] : this.queue.splice(0);
    this.latest.clear();
    return items;
  }

  private async ready(): Promise<boolean> {
    while (!this.closed && this.queue.length === 0 && this.latest.size === 0) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
    return !this.closed;
  }
}

export type ChangeFilter = (election: Election) => boolean;

export class WatchHub {
  private readonly byElection = new Map<string, Set<Mailbox>>();
  private readonly everything = new Set<{ filter: ChangeFilter; box: Mailbox }>();
  private count = 0;
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: ElectionStore,
    private readonly limits: WatchLimits,
  ) {
    this.unsubscribe = store.subscribe((election) => this.publish(election));
  }

  /** Open watches right now. */
  get size(): number {
    return this.count;
  }

  /** States queued for election watchers and not yet sent: bounded by size x WATCH_BUFFER. */
  get pending(): number {
    let total = 0;
    for (const watchers of this.byElection.values())
      for (const box of watchers) total += box.length;
    return total;
  }

  /**
   * The election's current state, then every later committed state once, in order.
   * Ends when `signal` aborts (the client went away) or the hub closes (shutdown).
   */
  async *election(name: string, signal: AbortSignal): AsyncGenerator<Election> {
    const box = this.open(signal, false);
    let watchers = this.byElection.get(name);
    if (!watchers) {
      watchers = new Set();
      this.byElection.set(name, watchers);
    }
    watchers.add(box);
    try {
      // Subscribed before reading, so no change can fall between the read and the feed.
      const current = await this.store.get(name);
      if (!current) throw electionNotFound(name);
      let last = current.version;
      yield current;
      for (;;) {
        const next = await box.take();
        if (next === undefined) return;
        if (next.version <= last) continue;
        last = next.version;
        yield next;
      }
    } finally {
      watchers.delete(box);
      if (watchers.size === 0 && this.byElection.get(name) === watchers)
        this.byElection.delete(name);
      this.release(box);
    }
  }

  /**
   * The elections `snapshot` reads, as one batch, then every later committed creation or
   * change of an election that passes `filter`, in batches of whatever arrived while the
   * caller was busy: at most one state per election per batch, the latest. Changes the
   * snapshot already reflects (same or older version) are skipped. Subscribed before the
   * snapshot is read, so no change can fall between the two.
   */
  async *changes(
    filter: ChangeFilter,
    signal: AbortSignal,
    snapshot: () => Promise<readonly Election[]>,
  ): AsyncGenerator<readonly Election[]> {
    const box = this.open(signal, true);
    const entry = { filter, box };
    this.everything.add(entry);
    try {
      const first = await snapshot();
      const seen = new Map(first.map((e) => [e.name, e.version]));
      yield first;
      for (;;) {
        const batch = await box.takeAll();
        if (batch === undefined) return;
        const fresh = batch.filter((e) => (seen.get(e.name) ?? 0) < e.version);
        for (const e of fresh) seen.set(e.name, e.version);
        if (fresh.length > 0) yield fresh;
      }
    } finally {
      this.everything.delete(entry);
      this.release(box);
    }
  }

  /** Ends every open watch cleanly (server shutdown). */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const watchers of this.byElection.values()) for (const box of watchers) box.close();
    for (const { box } of this.everything) box.close();
  }

  private open(signal: AbortSignal, keyed: boolean): Mailbox {
    if (this.closed) throw shuttingDown();
    if (this.count >= this.limits.maxWatches) {
      throw limitReached(`${this.limits.maxWatches} concurrent watches (MAX_WATCHES)`);
    }
    this.count++;
    const box = new Mailbox(this.limits.mailboxSize, keyed);
    if (signal.aborted) box.close();
    else signal.addEventListener("abort", () => box.close(), { once: true });
    return box;
  }

  private release(box: Mailbox): void {
    box.close();
    this.count--;
  }

  private publish(election: Election): void {
    const watchers = this.byElection.get(election.name);
    if (watchers) for (const box of watchers) box.push(election);
    for (const { filter, box } of this.everything) if (filter(election)) box.push(election);
  }
}
