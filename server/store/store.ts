// The store seam: where elections live. Every implementation (memory, the embedded
// durable store, etcd) serialises the mutations of each election, persists a change
// before resolving, and publishes each committed state exactly once, in order.
import {
  type Decision,
  type Denied,
  type Election,
  type HistoryRecord,
  headcount,
  type Moved,
} from "../election/change.js";
import type { ElectionState } from "../election/rules.js";
import type { ElectionView } from "./elections.js";

export type CreateResult =
  | { readonly ok: true; readonly election: Election; readonly created: boolean }
  | { readonly ok: false; readonly limit: "elections"; readonly max: number };

export type UpdateResult =
  | { readonly ok: true; readonly election: Election; readonly changed: boolean }
  | {
      readonly ok: false;
      /** Per election (the rules' MAX_CANDIDATES) or on the whole server (the store's). */
      readonly limit: "candidates" | "candidatesTotal";
      readonly max: number;
    }
  | Moved
  | Denied;

/** A page of an election's history (API.md section 7). */
export interface HistoryQuery {
  /** Only changes with a version above this (oldest first) or below it (newest first). */
  readonly from?: number;
  readonly limit: number;
  readonly order: "oldest" | "newest";
}

export interface ListFilter {
  /** Only names starting with this. */
  readonly prefix?: string;
  /** Only elections carrying this tag. */
  readonly tag?: string;
}

export interface ListQuery extends ListFilter {
  /** Only names sorting strictly after this (paging cursor). */
  readonly after?: string;
  /** Most elections to return. */
  readonly limit: number;
}

/** A session as persisted (API.md section 5). */
export interface SessionRecord {
  /** Unguessable id the client sends back. */
  readonly id: string;
  /** Time to live between keep-alives, in milliseconds. */
  readonly ttlMs: number;
}

export type ChangeListener = (election: Election) => void;

export interface ElectionStore {
  /** Which implementation this is: shown by /healthz and logs. */
  readonly kind: string;
  /**
   * Creates the election if missing; an existing one is returned unchanged. `by`: the
   * identity that asked, for the history record.
   */
  create(name: string, tags: readonly string[], by?: string): Promise<CreateResult>;
  get(name: string): Promise<Election | undefined>;
  /**
   * Runs `decide` on the current election and commits its result, one call at a time per
   * election. Resolves after the change is durable; `undefined` when there is no such
   * election.
   */
  update(name: string, decide: (election: Election) => Decision): Promise<UpdateResult | undefined>;
  /**
   * Deletes the election and publishes its last state marked `deleted`. The store keeps
   * its term and version, so an election created again under that name continues from
   * them. Resolves with that last state, or `undefined` when there is no such election.
   */
  delete(name: string, by?: string): Promise<Election | undefined>;
  /**
   * The kept changes of an election (the last `historyPerElection` of them, committed
   * with the change itself), a page at a time; empty for a name never created.
   */
  history(name: string, query: HistoryQuery): Promise<HistoryRecord[]>;
  /** Elections in name order; costs the page, not the directory. */
  list(query: ListQuery): Promise<Election[]>;
  /**
   * The committed elections matching `filter` as they are at this call, read lazily in
   * name order at the reader's pace. Taken in the same turn as a `subscribe`, it holds
   * exactly the changes published before, and the subscriber hears exactly the later ones.
   */
  snapshot(filter: ListFilter): ElectionView;
  /** How many elections exist. */
  size(): number;
  /** Hears every committed creation and change, once each, in commit order. */
  subscribe(listener: ChangeListener): () => void;
  /** Whether the store can serve now; the reason when it cannot (shown by /healthz). */
  check?(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** A store on this machine (memory, durable): elections, and the records of its sessions. */
export type LocalStore = ElectionStore & SessionRecords;

/**
 * Where a store that keeps sessions with local timers (memory, durable) persists them.
 * Keep-alives are not persisted: after a restart every restored session gets one full TTL
 * of grace, so only opening and closing a session is written.
 */
export interface SessionRecords {
  putSession(session: SessionRecord): Promise<void>;
  deleteSession(id: string): Promise<void>;
  listSessions(): Promise<SessionRecord[]>;
}

/** Limits a store enforces across elections, besides the rules' per-election ones. */
export interface StoreLimits {
  readonly maxElections: number;
  /**
   * Most candidates (leaders and queued) in all elections together: what bounds the heap
   * the elections take (server/memory.ts). Unlimited when left out.
   */
  readonly maxCandidatesTotal?: number;
  /** Most changes kept per election in its history; the oldest go first. */
  readonly historyPerElection?: number;
}

/** HISTORY_PER_ELECTION's default. */
export const DEFAULT_HISTORY_PER_ELECTION = 1000;

/** A history record as stores keep it: JSON, terms in decimal, the version kept apart. */
export function encodeHistory(record: HistoryRecord): string {
  const { version: _kept, before, after, ...rest } = record;
  return JSON.stringify({
    ...rest,
    before: { term: before.term.toString(), leader: before.leader },
    after: { term: after.term.toString(), leader: after.leader },
  });
}

export function decodeHistory(version: number, text: string): HistoryRecord {
  const stored = JSON.parse(text) as Omit<HistoryRecord, "version" | "before" | "after"> & {
    before: { term: string; leader: string };
    after: { term: string; leader: string };
  };
  return {
    ...stored,
    version,
    before: { term: BigInt(stored.before.term), leader: stored.before.leader },
    after: { term: BigInt(stored.after.term), leader: stored.after.leader },
  };
}

/** A page of `records` (in version order) as `query` asks for it. */
export function historyPage(
  records: readonly HistoryRecord[],
  query: HistoryQuery,
): HistoryRecord[] {
  const { from, limit, order } = query;
  if (order === "oldest") {
    const start = from === undefined ? 0 : records.findIndex((r) => r.version > from);
    return start < 0 ? [] : records.slice(start, start + limit);
  }
  const below = from === undefined ? records : records.filter((r) => r.version < from);
  return below.slice(-limit).reverse();
}

/**
 * The refusal of a change that would take the server past `maxCandidatesTotal`, given how
 * many candidates all elections hold now. Only growth is refused: withdrawals always go
 * through, even on a server holding more than the limit (started again with a lower one).
 */
export function overTotal(
  limits: StoreLimits,
  total: number,
  before: ElectionState,
  after: ElectionState,
): UpdateResult | undefined {
  const max = limits.maxCandidatesTotal;
  if (max === undefined) return undefined;
  const added = headcount(after) - headcount(before);
  return added > 0 && total + added > max
    ? { ok: false, limit: "candidatesTotal", max }
    : undefined;
}

/**
 * A store that cannot start: damaged, unreadable, newer or locked data. The message names
 * the file and what to do; main.ts prints it and exits instead of starting empty.
 */
export class StoreStartError extends Error {}
