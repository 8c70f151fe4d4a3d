// The list page's copy of the directory, as plain data: every election the page's
// WatchElections stream has sent, kept in name order, and the names the filter box lets
// through. No DOM here: the page draws only the few rows that are on screen, so a
// hundred thousand elections cost memory and a little arithmetic, never layout.
//
// Changes are applied as they arrive (`apply`), cheaply; the work that grows with the
// number of elections (keeping the order, filtering) waits for `settle`, which the page
// calls once per frame, so a burst of changes costs one pass, not one per change.
import type { Election, WatchElectionsResponse } from "../../gen/electd/v1/directory_pb.js";

/** What a row shows of one election, and the text the filter box searches. */
export interface Entry {
  readonly name: string;
  readonly tags: readonly string[];
  readonly term: bigint;
  readonly leader: string;
  readonly waiting: number;
  /** The election's change number; 0 from a server that does not send one. */
  readonly version: bigint;
  /** Lowercase name, tags and leader, one per line: what the filter matches. */
  readonly search: string;
}

function entryOf(election: Election): Entry {
  const leader = election.term?.leader ?? "";
  return {
    name: election.name,
    tags: election.tags,
    term: election.term?.term ?? 0n,
    leader,
    waiting: election.term?.candidates.length ?? 0,
    version: election.version,
    search: [election.name, ...election.tags, leader].join("\n").toLowerCase(),
  };
}

/** Index of the first name not before `name` in a sorted array. */
function position(sorted: readonly string[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Two sorted arrays as one, in one pass. */
function merge(a: readonly string[], b: readonly string[]): string[] {
  const out = new Array<string>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) {
    out[k++] = (a[i] as string) < (b[j] as string) ? (a[i++] as string) : (b[j++] as string);
  }
  while (i < a.length) out[k++] = a[i++] as string;
  while (j < b.length) out[k++] = b[j++] as string;
  return out;
}

/** Below this many changes, sorted arrays are patched in place; above, rebuilt in one pass. */
const PATCH_LIMIT = 64;

export class ElectionIndex {
  private readonly entries = new Map<string, Entry>();
  /** Every name in `entries` except those in `added`, plus those in `removed`; sorted. */
  private sorted: string[] = [];
  private readonly added = new Set<string>();
  private readonly removed = new Set<string>();
  /** Names changed, added or removed since the last `settle`. */
  private readonly touched = new Set<string>();
  private query = "";
  /** Names that match a non-empty query, sorted; rebuilt when the query changes. */
  private matching: string[] = [];
  /** Names received since the snapshot began; undefined between snapshots. */
  private snapshot: Set<string> | undefined;
  private complete = false;

  /** Number of elections held. */
  get size(): number {
    return this.entries.size;
  }

  /** True once a whole snapshot has arrived: until then `size` is only a start. */
  get loaded(): boolean {
    return this.complete;
  }

  /** The names to show, in order; valid after `settle`. */
  get view(): readonly string[] {
    return this.query === "" ? this.sorted : this.matching;
  }

  get filtered(): boolean {
    return this.query !== "";
  }

  get(name: string): Entry | undefined {
    return this.entries.get(name);
  }

  /**
   * The stream is starting over (a reconnect, or the server's `reset`): what follows up to
   * the next snapshot_complete is the whole set. What is held stays shown meanwhile, and
   * whatever the new snapshot lacks goes when it completes, so a reconnect does not blank
   * the page.
   */
  restart(): void {
    this.snapshot = new Set();
  }

  /**
   * The first page of a ListElections, to show while the stream's snapshot is still on its
   * way. Taken only while nothing else is held: the snapshot that follows replaces it, and
   * drops whatever of it has gone since.
   */
  preview(elections: readonly Election[]): void {
    if (this.entries.size > 0 || this.complete) return;
    for (const election of elections) {
      this.entries.set(election.name, entryOf(election));
      this.touched.add(election.name);
      this.added.add(election.name);
    }
  }

  /** One WatchElections response. */
  apply(response: WatchElectionsResponse): void {
    if (response.reset) this.restart();
    for (const election of response.elections) {
      this.snapshot?.add(election.name);
      const before = this.entries.get(election.name);
      // The same version is the same state: a reconnect's snapshot redraws nothing.
      if (before && election.version !== 0n && before.version === election.version) continue;
      this.entries.set(election.name, entryOf(election));
      this.touched.add(election.name);
      if (!before && !this.removed.delete(election.name)) this.added.add(election.name);
    }
    for (const name of response.deleted) this.remove(name);
    if (response.snapshotComplete && this.snapshot) {
      const kept = this.snapshot;
      this.snapshot = undefined;
      this.complete = true;
      for (const name of this.entries.keys()) if (!kept.has(name)) this.remove(name);
    }
  }

  private remove(name: string): void {
    if (!this.entries.delete(name)) return;
    this.touched.add(name);
    if (!this.added.delete(name)) this.removed.add(name);
  }

  /** Lowercase, trimmed text to match; "" shows everything. */
  setQuery(query: string): void {
    this.settle();
    if (query === this.query) return;
    // Typing one more letter only narrows: search what matched, not everything.
    const from = this.query !== "" && query.includes(this.query) ? this.matching : this.sorted;
    this.query = query;
    this.matching = query === "" ? [] : from.filter((name) => this.matches(name));
  }

  private matches(name: string): boolean {
    const entry = this.entries.get(name);
    return entry?.search.includes(this.query) === true;
  }

  /**
   * Brings `view` up to date with every change applied since the last call; false when
   * there was none.
   */
  settle(): boolean {
    if (this.touched.size === 0) return false;
    if (this.removed.size > 0) {
      if (this.removed.size <= PATCH_LIMIT) {
        for (const name of this.removed) this.sorted.splice(position(this.sorted, name), 1);
      } else {
        this.sorted = this.sorted.filter((name) => !this.removed.has(name));
      }
      this.removed.clear();
    }
    if (this.added.size > 0) {
      const fresh = [...this.added].sort();
      if (fresh.length <= PATCH_LIMIT) {
        for (const name of fresh) this.sorted.splice(position(this.sorted, name), 0, name);
      } else {
        this.sorted = merge(this.sorted, fresh);
      }
      this.added.clear();
    }
    if (this.query !== "") {
      if (this.touched.size <= PATCH_LIMIT) {
        for (const name of this.touched) {
          const at = position(this.matching, name);
          const listed = this.matching[at] === name;
          const wanted = this.matches(name);
          if (listed && !wanted) this.matching.splice(at, 1);
          else if (!listed && wanted) this.matching.splice(at, 0, name);
        }
      } else {
        this.matching = this.sorted.filter((name) => this.matches(name));
      }
    }
    this.touched.clear();
    return true;
  }
}
