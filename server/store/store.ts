// The store seam: where elections live. Every implementation (memory, the embedded
// durable store, etcd) serialises the mutations of each election, persists a change
// before resolving, and publishes each committed state exactly once, in order.
import { type ElectionState, emptyElection } from "../election/rules.js";

export interface Election {
  readonly name: string;
  readonly tags: readonly string[];
  readonly state: ElectionState;
  /**
   * Session that entered each session-bound candidate (candidate -> session id).
   * Names that leave the election drop out of it.
   */
  readonly owners: Readonly<Record<string, string>>;
  /** 1 at creation, +1 with every committed change: orders what watchers see. */
  readonly version: number;
  /**
   * Why the last committed change happened, when it was not a client's call for it: what
   * watchers are told so a failover can be told apart from an Anoint. Never persisted (a
   * restored election has none).
   */
  readonly cause?: ChangeCause;
}

/** A change the server made on its own: a session's candidates withdrawn. */
export type ChangeCause = "session-expired" | "session-closed";

/** What a mutation decides, computed from the current election by a pure function. */
export type Decision =
  | {
      readonly ok: true;
      readonly state: ElectionState;
      readonly changed: boolean;
      /** Bindings to add, for candidates this decision adds (candidate -> session id). */
      readonly bind?: Readonly<Record<string, string>>;
      /** Set when the server, not a call, makes this change. */
      readonly cause?: ChangeCause;
    }
  | { readonly ok: false; readonly limit: "candidates"; readonly max: number };

export type CreateResult =
  | { readonly ok: true; readonly election: Election; readonly created: boolean }
  | { readonly ok: false; readonly limit: "elections"; readonly max: number };

export type UpdateResult =
  | { readonly ok: true; readonly election: Election; readonly changed: boolean }
  | { readonly ok: false; readonly limit: "candidates"; readonly max: number };

export interface ListQuery {
  /** Only names starting with this. */
  readonly prefix?: string;
  /** Only names sorting strictly after this (paging cursor). */
  readonly after?: string;
  /** Only elections carrying this tag. */
  readonly tag?: string;
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
  /** Elections in name order. */
  list(query: ListQuery): Promise<Election[]>;
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

/** A new election: term 0, no leader, no queue. */
export function newElection(name: string, tags: readonly string[]): Election {
  return { name, tags: [...tags], state: emptyElection, owners: {}, version: 1 };
}

/** Applies a committed decision to an election: the one place owners are kept consistent. */
export function commit(election: Election, decision: Decision & { ok: true }): Election {
  const { state } = decision;
  const owners: Record<string, string> = {};
  const held = new Set([state.leader, ...state.candidates]);
  for (const [name, session] of Object.entries({ ...election.owners, ...decision.bind })) {
    if (held.has(name)) owners[name] = session;
  }
  // The cause belongs to this change only: the previous one's is dropped.
  const { cause: _previous, ...rest } = election;
  return {
    ...rest,
    state,
    owners,
    version: election.version + 1,
    ...(decision.cause === undefined ? {} : { cause: decision.cause }),
  };
}

/**
 * A store that cannot start: damaged, unreadable, newer or locked data. The message names
 * the file and what to do; main.ts prints it and exits instead of starting empty.
 */
export class StoreStartError extends Error {}

/** The candidates `session` entered that are still in the election. */
export function ownedBy(owners: Readonly<Record<string, string>>, session: string): string[] {
  return Object.entries(owners)
    .filter(([, owner]) => owner === session)
    .map(([candidate]) => candidate);
}
