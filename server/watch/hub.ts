// Watch fan-out (API.md section 3). The hub hears every committed change from the store
// once and hands it to each watcher concerned. Each watcher owns a bounded mailbox, so a
// client that reads slowly costs bounded memory and never sees states out of order.
//
// A watch holds one of MAX_WATCHES slots from the moment it opens until its client goes
// away or the server stops, and the slot is given back the moment the request's signal
// aborts, whatever the stream is doing then. It must not wait for the watch's generator
// to run its `finally`: a generator suspended at `yield` while the transport waits for
// the peer to read (an HTTP/2 stream out of flow-control window whose client vanished)
// is never resumed, so a release placed there would never run.

import { type Election, noOwners } from "../election/change.js";
import { emptyElection } from "../election/rules.js";
import { ElectdError, electionNotFound, limitReached, shuttingDown } from "../errors.js";
import type { ElectionView } from "../store/elections.js";
import type { ElectionStore, ListFilter } from "../store/store.js";

export interface WatchLimits {
  /** Most concurrent watches on this server. */
  readonly maxWatches: number;
  /** States queued per election watcher before the newest starts replacing the last one. */
  readonly mailboxSize: number;
  /**
   * Elections with a change queued per directory watcher before the watcher is sent a
   * fresh snapshot instead of the changes it has not read.
   */
  readonly directoryBuffer: number;
}

/**
 * What a Watch sends of a state: the term, and for electd's own watches the bindings and
 * tags. A slow reader's queue holds these rather than whole elections; the owners map and
 * the tags are the election's own (shared, not copied), held for at most a mailbox's
 * worth of states.
 */
export type WatchedState = Pick<
  Election,
  "name" | "state" | "version" | "deleted" | "change" | "owners" | "tags"
>;

/**
 * A reader told of every state queued for it (and of the end), which it then polls: an
 * object rather than a callback, so that a reader that is itself one holds no closure.
 */
export interface QueueReader {
  queued(): void;
}

/** Lets one reader wait until a writer has something for it (or the box closed). */
class Doorbell {
  private wake: (() => void) | undefined;

  /** Resolves at the next ring. */
  wait(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  ring(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/**
 * An election watcher's queue of states not yet sent: up to `size` states in order, then
 * the newest replaces the last one queued. `reader` hears of every state queued and of
 * the close, for a reader that is told rather than waits; one that waits has a doorbell.
 */
class Mailbox {
  private readonly queue: WatchedState[] = [];
  private bell: Doorbell | undefined;
  private isClosed = false;

  constructor(
    private readonly size: number,
    private readonly reader: QueueReader | undefined,
  ) {}

  get length(): number {
    return this.queue.length;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  push(item: WatchedState): void {
    if (this.queue.length >= this.size) this.queue[this.queue.length - 1] = item;
    else this.queue.push(item);
    this.bell?.ring();
    this.reader?.queued();
  }

  close(): void {
    this.isClosed = true;
    this.queue.length = 0;
    this.bell?.ring();
    this.reader?.queued();
  }

  /** The next state, or undefined when none is queued or the box is closed. */
  poll(): WatchedState | undefined {
    return this.queue.shift();
  }

  /** Resolves once a state is queued or the box closed. */
  async wait(): Promise<void> {
    this.bell ??= new Doorbell();
    while (!this.isClosed && this.queue.length === 0) await this.bell.wait();
  }
}

/**
 * A watch slot (one of MAX_WATCHES), held from the moment a watch opens until it is
 * released, once: by its reader, by its request's signal aborting, or by the hub closing.
 * Releasing detaches the watch from the hub. The slot is itself the signal's listener, so
 * a watch holds no closure for it.
 */
abstract class WatchSlot {
  constructor(
    private readonly slots: Set<WatchSlot>,
    private readonly signal: AbortSignal | undefined,
  ) {
    slots.add(this);
    signal?.addEventListener("abort", this, { once: true });
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.release();
  }

  release(): void {
    if (!this.slots.delete(this)) return;
    this.signal?.removeEventListener("abort", this);
    this.detach();
  }

  protected abstract detach(): void;
}

/** A slot whose watch detaches by a function of its own. */
class DetachingSlot extends WatchSlot {
  constructor(
    slots: Set<WatchSlot>,
    signal: AbortSignal | undefined,
    private readonly onRelease: () => void,
  ) {
    super(slots, signal);
  }

  protected detach(): void {
    this.onRelease();
  }
}

/**
 * One open watch of an election, as its reader takes it: the election's state when the
 * watch opened, then every later committed state once, in order. poll() takes the next
 * without waiting; wait() (or the reader given to the hub) says when there is more. It is
 * its own watch slot: close() gives it back.
 */
export class ElectionFeed extends WatchSlot {
  private first: WatchedState | undefined;
  /** Version of the state last taken: older ones queued meanwhile are skipped. */
  private last = 0;

  constructor(
    slots: Set<WatchSlot>,
    signal: AbortSignal | undefined,
    private readonly byElection: Map<string, Set<Mailbox>>,
    private readonly name: string,
    private readonly box: Mailbox,
  ) {
    super(slots, signal);
  }

  /** The state the watch opened at: the first poll() takes it. */
  begin(first: WatchedState): void {
    this.first = first;
    this.last = first.version;
  }

  /** Whether the watch is over: released, the client gone or the hub closed. */
  get ended(): boolean {
    return this.box.closed;
  }

  /**
   * The next state to send, or undefined when none is waiting. Throws not_found once the
   * election is deleted, and the watch is over.
   */
  poll(): WatchedState | undefined {
    const first = this.first;
    if (first !== undefined) {
      this.first = undefined;
      return first;
    }
    for (;;) {
      const next = this.box.poll();
      if (next === undefined) return undefined;
      if (next.version <= this.last) continue;
      if (next.deleted) {
        this.close();
        throw new ElectdError("not_found", `election ${JSON.stringify(this.name)} was deleted`);
      }
      this.last = next.version;
      return next;
    }
  }

  /** Resolves once poll() has something, or the watch is over. */
  wait(): Promise<void> {
    return this.box.wait();
  }

  /** Gives the watch slot back (idempotent). */
  close(): void {
    this.release();
  }

  protected detach(): void {
    this.box.close();
    const watchers = this.byElection.get(this.name);
    watchers?.delete(this.box);
    if (watchers?.size === 0) this.byElection.delete(this.name);
  }
}

/**
 * A directory watcher's pending changes: the latest state of each election changed since
 * the watcher last read, at most `size` elections. Past that the box only remembers that
 * it overflowed, and the watcher starts again from a snapshot.
 */
class ChangeBox {
  private latest = new Map<string, Election>();
  private overflowed = false;
  private readonly bell = new Doorbell();
  private closed = false;

  constructor(private readonly size: number) {}

  push(item: Election): void {
    if (this.overflowed) return;
    this.latest.delete(item.name);
    this.latest.set(item.name, item);
    if (this.latest.size > this.size) {
      this.overflowed = true;
      this.latest = new Map();
    }
    this.bell.ring();
  }

  /** Whether the watch was released: nothing more is to be sent. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Forgets what is queued: the snapshot about to be taken reflects it. */
  clear(): void {
    this.latest = new Map();
    this.overflowed = false;
  }

  close(): void {
    this.closed = true;
    this.latest = new Map();
    this.bell.ring();
  }

  /** What arrived (oldest first), "overflow", or undefined once closed. */
  async takeAll(): Promise<Election[] | "overflow" | undefined> {
    while (!this.closed && !this.overflowed && this.latest.size === 0) await this.bell.wait();
    if (this.closed) return undefined;
    if (this.overflowed) return "overflow";
    const items = [...this.latest.values()];
    this.latest = new Map();
    return items;
  }
}

/** Which elections a directory watch follows. */
export interface DirectoryFilter extends ListFilter {
  /** Only the election with exactly this name. */
  readonly name?: string;
}

/** One message of a directory watch. */
export interface DirectoryBatch {
  /** Elections in their latest state: in name order during a snapshot. */
  readonly elections: readonly Election[];
  /** Names of elections deleted since the previous batch. */
  readonly deleted: readonly string[];
  /** First batch of a snapshot: forget everything sent before. */
  readonly reset: boolean;
  /** Last batch of a snapshot. */
  readonly snapshotComplete: boolean;
}

export function matches(filter: DirectoryFilter, election: Election): boolean {
  return (
    (filter.name === undefined || election.name === filter.name) &&
    (filter.prefix === undefined || election.name.startsWith(filter.prefix)) &&
    (filter.tag === undefined || election.tags.includes(filter.tag))
  );
}

interface DirectoryWatcher {
  readonly filter: DirectoryFilter;
  readonly box: ChangeBox;
}

/**
 * Takes turns at snapshot pages across every directory watcher: one page, then the event
 * loop, then the next watcher's page. Watchers that open at once on a large directory
 * (dashboards reconnecting after a restart) would otherwise each encode page after page
 * as fast as their transports take them, and a keep-alive arriving meanwhile would wait
 * behind all of those pages: long enough, with a thousand watchers, to expire the session
 * of a healthy leader. With turns, a request waits for one page at most.
 */
class Pacer {
  private readonly waiting: (() => void)[] = [];
  private scheduled = false;

  turn(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.waiting.shift()?.();
      this.schedule();
    });
  }
}

/**
 * Snapshot pages lately read, for the watchers that reach the same page of the same
 * snapshot after them. Only the SHARED_PAGES pages read last are kept, and none once a
 * change is published (no later snapshot can share them): what this holds is bounded by
 * SHARED_PAGES x MAX_PAGE_SIZE elections whatever the watchers do. Watchers that open at
 * once page in step (the Pacer's turns), so each page is shared while it is read. A Map
 * in insertion order is the whole cache: the oldest page is the one dropped.
 */
class SharedPages {
  private readonly pages = new Map<string, DirectoryBatch>();

  get(key: string): DirectoryBatch | undefined {
    return this.pages.get(key);
  }

  set(key: string, page: DirectoryBatch): void {
    this.pages.set(key, page);
    if (this.pages.size > SHARED_PAGES) {
      const oldest = this.pages.keys().next();
      if (!oldest.done) this.pages.delete(oldest.value);
    }
  }

  clear(): void {
    this.pages.clear();
  }
}

/** Snapshot pages kept for sharing between watchers (see SharedPages). */
export const SHARED_PAGES = 8;

/** What identifies one snapshot's pages: the changes published before it and its filter. */
function snapshotScope(generation: number, filter: DirectoryFilter, pageSize: number): string {
  return JSON.stringify([generation, pageSize, filter.prefix, filter.tag, filter.name]);
}

/**
 * One page of a snapshot: up to `pageSize` elections of `view` after `after`, read with one
 * more to tell whether this is the last page.
 */
function readPage(
  view: ElectionView,
  query: ListFilter,
  filter: DirectoryFilter,
  after: string | undefined,
  pageSize: number,
  reset: boolean,
): DirectoryBatch {
  const elections: Election[] = [];
  let more = false;
  for (const election of view.scan(after === undefined ? query : { ...query, after })) {
    if (filter.name !== undefined) {
      if (election.name !== filter.name) break;
      if (!matches(filter, election)) continue;
    }
    if (elections.length === pageSize) {
      more = true;
      break;
    }
    elections.push(election);
  }
  return { elections, deleted: [], reset, snapshotComplete: !more };
}

export class WatchHub {
  private readonly pacer = new Pacer();
  private readonly shared = new SharedPages();
  /** Changes published so far: snapshots taken at the same count hold the same elections. */
  private generation = 0;
  private readonly byElection = new Map<string, Set<Mailbox>>();
  private readonly directory = new Set<DirectoryWatcher>();
  /** The open watches' slots: the hub closing releases them all. */
  private readonly open = new Set<WatchSlot>();
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
    return this.open.size;
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
   * Ends when `signal` aborts (the client went away) or the hub closes (shutdown); fails
   * with not_found when the election is deleted.
   */
  async *election(name: string, signal: AbortSignal): AsyncGenerator<WatchedState> {
    const feed = await this.follow(name, signal);
    try {
      for (;;) {
        // Not held while waiting: the state sent would keep the names in it alive for as
        // long as the watch lasts, long after they left the election.
        const next = feed.poll();
        if (next !== undefined) yield next;
        else if (feed.ended) return;
        else await feed.wait();
      }
    } finally {
      feed.close();
    }
  }

  /**
   * Opens a watch of election `name` (what election() reads): takes a watch slot, given
   * back when `signal` aborts, the hub closes or the feed is closed (without a signal, the
   * reader must close it). `reader` is told whenever a state is queued or the watch ends,
   * for a reader that sends as told instead of waiting (nothing of it is then held while
   * the watch is idle). Fails with not_found for an election that does not exist.
   */
  async follow(
    name: string,
    signal: AbortSignal | undefined,
    reader?: QueueReader,
  ): Promise<ElectionFeed> {
    this.admit(signal);
    const box = new Mailbox(this.limits.mailboxSize, reader);
    const feed = new ElectionFeed(this.open, signal, this.byElection, name, box);
    let watchers = this.byElection.get(name);
    if (!watchers) {
      watchers = new Set();
      this.byElection.set(name, watchers);
    }
    watchers.add(box);
    try {
      // Subscribed before reading, so no change can fall between the read and the feed.
      const first = await this.store.get(name);
      if (!first) throw electionNotFound(name);
      feed.begin(first);
      return feed;
    } catch (error) {
      feed.close();
      throw error;
    }
  }

  /**
   * A snapshot of the elections matching `filter`, in name order and in batches of at most
   * `pageSize`, then every later creation, change or deletion of a matching election, in
   * batches of whatever arrived while the caller was busy (the latest state of each). The
   * snapshot is taken in the same turn as the subscription, so no change falls between
   * the two or is sent twice. A watcher that leaves more than WATCH_ELECTIONS_BUFFER
   * elections' changes unread is sent a fresh snapshot (marked reset) instead: the memory
   * a watcher holds is bounded by that, never by the size of the directory.
   */
  async *changes(
    filter: DirectoryFilter,
    signal: AbortSignal,
    pageSize: number,
  ): AsyncGenerator<DirectoryBatch> {
    this.admit(signal);
    const watcher: DirectoryWatcher = { filter, box: new ChangeBox(this.limits.directoryBuffer) };
    const slot = new DetachingSlot(this.open, signal, () => {
      watcher.box.close();
      this.directory.delete(watcher);
    });
    const release = () => slot.release();
    this.directory.add(watcher);
    // What was sent is not held while waiting for more: a state kept here would keep its
    // election's old queue and bindings alive until the next change. The paging runs in
    // generators of its own, which let go of everything once they finish.
    try {
      for (;;) {
        watcher.box.clear();
        // The snapshot is taken here, in the same turn as the box was cleared. Every page
        // waits for its turn, the first too: a thousand watchers opening at once would
        // otherwise each send a first page before the server serves anything else.
        for (const page of this.snapshot(filter, pageSize, watcher.box)) {
          await this.pacer.turn();
          if (watcher.box.isClosed) return;
          yield page;
        }
        for (;;) {
          let batch: Election[] | "overflow" | undefined = await watcher.box.takeAll();
          if (batch === undefined) return;
          if (batch === "overflow") break;
          const pages = changePages(batch, pageSize);
          batch = undefined;
          yield* pages;
        }
      }
    } finally {
      release();
    }
  }

  /** Ends every open watch cleanly (server shutdown). */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    for (const slot of [...this.open]) slot.release();
  }

  /**
   * Pages of the snapshot. Stops as soon as `box` is closed: a transport whose client has
   * gone may keep taking messages (a write into a reset HTTP/2 stream can report success),
   * and encoding the rest of a large directory for nobody would cost the CPU and memory of
   * a whole snapshot per vanished client.
   *
   * Watchers whose snapshots were taken with the same filter and page size while no change
   * came between see the same pages: each is read by the first of them to reach it and
   * handed to the others as the same object, which the rpc layer encodes once.
   */
  private *snapshot(
    filter: DirectoryFilter,
    pageSize: number,
    box: ChangeBox,
  ): Generator<DirectoryBatch> {
    const query = filter.name === undefined ? filter : { ...filter, prefix: filter.name };
    // The view keeps every election as it was when taken: it is let go of before the last
    // page waits for a reader, so a reader that stops there does not hold the directory.
    let view: ElectionView | undefined = this.store.snapshot(filter);
    const scope = snapshotScope(this.generation, filter, pageSize);
    /** Name of the last election sent: the next page starts after it. */
    let after: string | undefined;
    for (let index = 0; view !== undefined; index++) {
      if (box.isClosed) return;
      const key = `${index}\0${scope}`;
      let page = this.shared.get(key);
      if (page === undefined) {
        page = readPage(view, query, filter, after, pageSize, index === 0);
        this.shared.set(key, page);
      }
      after = page.elections.at(-1)?.name;
      if (page.snapshotComplete) view = undefined;
      yield page;
    }
  }

  /** Whether a watch may take a slot now; throws why not. */
  private admit(signal: AbortSignal | undefined): void {
    if (this.closed) throw shuttingDown();
    if (signal?.aborted) throw new ElectdError("unavailable", "the client went away");
    if (this.open.size >= this.limits.maxWatches) {
      throw limitReached(`${this.limits.maxWatches} concurrent watches (MAX_WATCHES)`);
    }
  }

  private publish(election: Election): void {
    this.generation++;
    this.shared.clear();
    // A deleted election is only named to watchers: queued whole, its queue, tags and
    // bindings would outlive it for as long as a watcher does not read.
    const queued = election.deleted ? gone(election) : election;
    const watchers = this.byElection.get(election.name);
    if (watchers) {
      const { name, state, version, owners, tags } = queued;
      // The change's description is shared with the election, not copied.
      const { change } = election;
      const watched: WatchedState = election.deleted
        ? { name, state, version, owners, tags, deleted: true }
        : change === undefined
          ? { name, state, version, owners, tags }
          : { name, state, version, owners, tags, change };
      for (const box of watchers) box.push(watched);
    }
    for (const { filter, box } of this.directory) if (matches(filter, election)) box.push(queued);
  }
}

/**
 * Changes that arrived while a directory reader was busy, in pages of `pageSize`; deleted
 * elections are named on the first. A page is no longer held here once sent.
 */
function* changePages(batch: readonly Election[], pageSize: number): Generator<DirectoryBatch> {
  const deleted = batch.filter((e) => e.deleted).map((e) => e.name);
  const live = batch.filter((e) => !e.deleted);
  let first = true;
  do {
    yield {
      elections: live.splice(0, pageSize),
      deleted: first ? deleted : [],
      reset: false,
      snapshotComplete: false,
    };
    first = false;
  } while (live.length > 0);
}

/** A deleted election's last state with nothing but its name, term and version. */
function gone(election: Election): Election {
  return {
    name: election.name,
    tags: [],
    state: { ...emptyElection, term: election.state.term },
    owners: noOwners,
    version: election.version,
    deleted: true,
  };
}
