// The store seam: where elections live. Every implementation (memory, the embedded
// durable store, etcd) serialises the mutations of each election, persists a change
// before resolving, and publishes each committed state exactly once, in order.
import { type ElectionState, emptyElection } from "../election/rules.js";
import type { ElectionView } from "./elections.js";

export interface Election {
  readonly name: string;
  readonly tags: readonly string[];
  readonly state: ElectionState;
  /**
   * Session that entered each session-bound candidate (candidate -> session id).
   * Names that leave the election drop out of it. A Map: candidate names are data, and
   * `__proto__` is just another name.
   */
  readonly owners: ReadonlyMap<string, string>;
  /** 1 at creation, +1 with every committed change: orders what watchers see. */
  readonly version: number;
  /**
   * Why the last committed change happened, when it was not a client's call for it: what
   * watchers are told so a failover can be told apart from an Anoint. Never persisted (a
   * restored election has none).
   */
  readonly cause?: ChangeCause;
  /**
   * Set on the last state an election is published with, when it is deleted: its version
   * is one more than the state before, its owners are empty, and the store no longer has
   * it.
   */
  readonly deleted?: true;
}

/** Why the server changed an election, when no client's call for that election did. */
export type ChangeCause = "session-expired" | "session-closed" | "election-deleted";

/** What a mutation decides, computed from the current election by a pure function. */
export type Decision =
  | {
      readonly ok: true;
      readonly state: ElectionState;
      readonly changed: boolean;
      /** A binding to add, for the candidate this decision adds: [candidate, session id]. */
      readonly bind?: readonly [candidate: string, session: string];
      /** Set when the server, not a call, makes this change. */
      readonly cause?: ChangeCause;
    }
  | { readonly ok: false; readonly limit: "candidates"; readonly max: number };

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
    };

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
  /** Creates the election if missing; an existing one is returned unchanged. */
  create(name: string, tags: readonly string[]): Promise<CreateResult>;
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
  delete(name: string): Promise<Election | undefined>;
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
  /**
   * Sessions. Keep-alives are not persisted: after a restart every restored session gets
   * one full TTL of grace, so only opening and closing a session is written.
   */
  putSession(session: SessionRecord): Promise<void>;
  deleteSession(id: string): Promise<void>;
  listSessions(): Promise<SessionRecord[]>;
  close(): Promise<void>;
}

/** What a deleted election leaves behind, so that its name never reuses a term. */
export interface Tombstone {
  readonly term: bigint;
  readonly version: number;
}

/** Limits a store enforces across elections, besides the rules' per-election ones. */
export interface StoreLimits {
  readonly maxElections: number;
  /**
   * Most candidates (leaders and queued) in all elections together: what bounds the heap
   * the elections take (server/memory.ts). Unlimited when left out.
   */
  readonly maxCandidatesTotal?: number;
}

/** How many candidates an election holds: its leader and its queue. */
export function headcount(state: ElectionState): number {
  return (state.leader === "" ? 0 : 1) + state.candidates.length;
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
 * The owners of every election without session-bound candidates: one shared empty map
 * rather than one each. Never mutated: every change builds its own map.
 */
export const noOwners: ReadonlyMap<string, string> = new Map();

/**
 * A new election: no leader, no queue, term 0 and version 1, or, for a name that was
 * deleted, the deleted election's term and the version after its deletion.
 */
export function newElection(
  name: string,
  tags: readonly string[],
  tombstone?: Tombstone,
): Election {
  const state = tombstone ? { ...emptyElection, term: tombstone.term } : emptyElection;
  return {
    name,
    tags: [...tags],
    state,
    owners: noOwners,
    version: (tombstone?.version ?? 0) + 1,
  };
}

/** The last state of a deleted election, as its watchers are told. */
export function deletedElection(election: Election): Election {
  const { cause: _previous, ...rest } = election;
  return {
    ...rest,
    owners: noOwners,
    version: election.version + 1,
    cause: "election-deleted",
    deleted: true,
  };
}

/** Applies a committed decision to an election: the one place owners are kept consistent. */
export function commit(election: Election, decision: Decision & { ok: true }): Election {
  // The cause belongs to this change only: the previous one's is dropped.
  const { cause: _previous, ...rest } = election;
  return {
    ...rest,
    state: decision.state,
    owners: ownersAfter(election.owners, decision.state, decision.bind),
    version: election.version + 1,
    ...(decision.cause === undefined ? {} : { cause: decision.cause }),
  };
}

/**
 * The bindings of the names `state` still holds, plus `bind`. The map is shared with the
 * state before when no binding changes (most changes: reorders, unbound candidates), so
 * a state costs its queue, not a copy of every binding, also to a watcher that keeps it.
 */
function ownersAfter(
  owners: ReadonlyMap<string, string>,
  state: ElectionState,
  bind: readonly [candidate: string, session: string] | undefined,
): ReadonlyMap<string, string> {
  if (owners.size === 0 && bind === undefined) return owners;
  const held = new Set([state.leader, ...state.candidates]);
  if (bind === undefined && everyHeld(owners, held)) return owners;
  const next = new Map<string, string>();
  for (const [name, session] of bind ? [...owners, bind] : owners) {
    if (held.has(name)) next.set(name, session);
  }
  return next.size === 0 ? noOwners : next;
}

function everyHeld(owners: ReadonlyMap<string, string>, held: ReadonlySet<string>): boolean {
  for (const name of owners.keys()) if (!held.has(name)) return false;
  return true;
}

/**
 * A store that cannot start: damaged, unreadable, newer or locked data. The message names
 * the file and what to do; main.ts prints it and exits instead of starting empty.
 */
export class StoreStartError extends Error {}

/** The candidates `session` entered that are still in the election. */
export function ownedBy(owners: ReadonlyMap<string, string>, session: string): string[] {
  const owned: string[] = [];
  for (const [candidate, owner] of owners) if (owner === session) owned.push(candidate);
  return owned;
}
