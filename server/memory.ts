// The heap electd needs at worst for its configured limits: every election, tag, candidate,
// session and watch the limits admit, each at its measured cost. Startup logs the total
// and warns when it is more than the heap V8 will grow to, naming the settings that cost
// most, so an operator learns at startup, not from a crash, and a server that filled up
// can always start again on the same heap. README ("Memory") shows the arithmetic for the
// defaults.

/**
 * Heap bytes per unit, names excluded (they are added at MAX_NAME_BYTES each, see
 * `nameBytes`), measured by bench/memory.ts (`npm run bench:memory`) on Node 20 x64,
 * the larger of the memory and the durable store's figure. Re-measure after changing how
 * elections, sessions or watches are held.
 */
export const heapCosts = {
  /** An election with no tags and no candidates: its state, its index entry. */
  election: 140,
  /** A tag on an election (two elections sharing each tag is the dearest case). */
  tag: 200,
  /**
   * A candidate bound to a session, its own (dearer than one without: 30): its queue
   * slot, its binding, the session registry's index.
   */
  candidate: 480,
  /** An open session (registry, timer, store record), and its id remembered after it ends. */
  session: 700,
  /**
   * An open Watch or WatchElections with nothing queued: the stream (gRPC over HTTP/2,
   * server side) and the hub's watcher.
   */
  watch: 42_000,
  /** A state queued for a Watch whose client reads slowly, besides its queue's slots. */
  version: 230,
  /** Each candidate slot of such a state (its names are the election's). */
  versionSlot: 8,
  /** An election with a change a WatchElections client has not read yet. */
  pendingElection: 50,
  /** One change in an election's history, where the store keeps it in the heap (memory). */
  historyRecord: 550,
} as const;

export type HeapCosts = { readonly [K in keyof typeof heapCosts]: number };

/**
 * Heap bytes of one name of up to `maxBytes` bytes of UTF-8, at worst. A V8 string has a
 * 16-byte header, rounds up to 8, and holds every character in one byte while all are
 * Latin-1, else every one in two: the dearest name is ASCII but for one character outside
 * Latin-1 (two bytes of UTF-8), nearly twice its UTF-8 size (528 bytes for 256).
 */
export function nameBytes(maxBytes: number): number {
  const chars = Math.max(maxBytes, 2 * (maxBytes - 1));
  return 16 + Math.ceil(chars / 8) * 8;
}

export interface MemoryLimits {
  readonly maxNameBytes: number;
  readonly maxTags: number;
  readonly maxElections: number;
  readonly maxCandidates: number;
  readonly maxCandidatesTotal: number;
  readonly maxSessions: number;
  readonly maxWatches: number;
  readonly watchBuffer: number;
  readonly watchElectionsBuffer: number;
  /**
   * History records per election the store keeps in the heap: HISTORY_PER_ELECTION for
   * the memory store, 0 for the stores that keep history on disk or in etcd.
   */
  readonly historyInHeap?: number;
  readonly summaryCacheBytes: number;
}

/** One line of the worst case: what `units` of one kind cost together. */
export interface WorstCasePart {
  readonly what: string;
  /** The settings that bound it, the ones to lower. */
  readonly settings: readonly string[];
  readonly units: number;
  /** Bytes per unit, names included. */
  readonly each: number;
  readonly bytes: number;
}

export interface WorstCase {
  readonly parts: readonly WorstCasePart[];
  readonly total: number;
}

/**
 * Everything the limits admit at once. A watch is counted as the dearer of its two
 * kinds: a Watch whose client stopped reading, holding WATCH_BUFFER states of the largest
 * election queued and one more being sent, or a WatchElections holding
 * WATCH_ELECTIONS_BUFFER unread elections.
 */
export function worstCase(limits: MemoryLimits, costs: HeapCosts = heapCosts): WorstCase {
  const name = nameBytes(limits.maxNameBytes);
  const largest = Math.min(limits.maxCandidates, limits.maxCandidatesTotal);
  const queued = (limits.watchBuffer + 1) * (costs.version + costs.versionSlot * largest);
  const pending = limits.watchElectionsBuffer * costs.pendingElection;
  const watchSettings =
    queued >= pending
      ? ["MAX_WATCHES", "WATCH_BUFFER", "MAX_CANDIDATES"]
      : ["MAX_WATCHES", "WATCH_ELECTIONS_BUFFER"];
  const part = (
    what: string,
    settings: readonly string[],
    units: number,
    each: number,
  ): WorstCasePart => ({ what, settings, units, each, bytes: units * each });
  const parts = [
    part("elections", ["MAX_ELECTIONS"], limits.maxElections, costs.election + name),
    part(
      "tags",
      ["MAX_TAGS", "MAX_ELECTIONS"],
      limits.maxElections * limits.maxTags,
      costs.tag + name,
    ),
    part("candidates", ["MAX_CANDIDATES_TOTAL"], limits.maxCandidatesTotal, costs.candidate + name),
    part("sessions", ["MAX_SESSIONS"], limits.maxSessions, costs.session),
    part("watches", watchSettings, limits.maxWatches, costs.watch + Math.max(queued, pending)),
    part(
      "history",
      ["HISTORY_PER_ELECTION", "MAX_ELECTIONS"],
      limits.maxElections * (limits.historyInHeap ?? 0),
      costs.historyRecord,
    ),
    // Its bytes, and as much again for the states they were encoded from once those are
    // replaced: a summary holds every name of its state at least once.
    part("summaries", ["SUMMARY_CACHE_BYTES"], 1, 2 * limits.summaryCacheBytes),
  ];
  return { parts, total: parts.reduce((sum, p) => sum + p.bytes, 0) };
}

/** Bytes in MiB with one decimal, for logs and the benchmark. */
export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** What startup says about the heap the limits may need. */
export interface HeapBudget {
  /** Whether the worst case fits in `heapLimit`. */
  readonly fits: boolean;
  readonly worstCase: number;
  readonly heapLimit: number;
  readonly message: string;
}

/**
 * The worst case of `limits` against the heap V8 will grow to (`heap_size_limit`). When
 * it does not fit, the message names the settings to lower, dearest first: the server
 * still starts (limits may be raised on purpose, on a machine known to be big enough).
 */
export function heapBudget(limits: MemoryLimits, heapLimit: number): HeapBudget {
  const worst = worstCase(limits);
  const share = `${mib(worst.total)} of heap at worst, ${Math.round((100 * worst.total) / heapLimit)}% of this process's heap limit of ${mib(heapLimit)}`;
  if (worst.total <= heapLimit) {
    return {
      fits: true,
      worstCase: worst.total,
      heapLimit,
      message: `the configured limits admit ${share}`,
    };
  }
  const dearest = [...worst.parts]
    .sort((a, b) => b.bytes - a.bytes)
    .map((p) => `${p.settings.join(" or ")} (${p.what}: ${mib(p.bytes)})`);
  return {
    fits: false,
    worstCase: worst.total,
    heapLimit,
    message:
      `the configured limits admit ${share}: filled up, this server would run out of memory. ` +
      `Lower ${dearest.join("; ")}; or give Node a larger heap (NODE_OPTIONS=--max-old-space-size=<MiB>)`,
  };
}
