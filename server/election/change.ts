// An election as the server keeps it — the rules' state plus its tags, the sessions that
// own its candidates and its change version — and the pure functions that decide and apply
// one change to it. Binding a candidate to the session that entered it and releasing a
// session's candidates live here, next to the rules, so every store and every session
// backend (local timers, etcd leases) does them the same way. No I/O, no clock.
import {
  apply,
  type CandidateOperation,
  type ElectionState,
  emptyElection,
  type RuleLimits,
} from "./rules.js";

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
  /** What the change that made this version was: what the election's history keeps. */
  readonly change?: Change;
}

/** What made a change: a call (by its rpc), or the server (a session's end, a deletion). */
export type Cause = CandidateOperation | "create" | "close" | ChangeCause;

export interface Change {
  readonly cause: Cause;
  /** The candidates the change was about: the one named by a call, or those released. */
  readonly candidates: readonly string[];
  /** When it was committed: milliseconds since the Unix epoch. */
  readonly at: number;
  /** Term and leader before the change. */
  readonly before: { readonly term: bigint; readonly leader: string };
}

/** One entry of an election's history (API.md section 7): a committed change. */
export interface HistoryRecord extends Change {
  readonly version: number;
  /** Term and leader after the change. */
  readonly after: { readonly term: bigint; readonly leader: string };
}

/** The history record of the change that made `election`, if it carries one. */
export function historyRecord(
  election: Pick<Election, "change" | "state" | "version">,
): HistoryRecord | undefined {
  const { change } = election;
  if (!change) return undefined;
  const { term, leader } = election.state;
  return { ...change, version: election.version, after: { term, leader } };
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
      /** What the change is, for its history record. */
      readonly what?: { readonly cause: Cause; readonly candidates: readonly string[] };
    }
  | { readonly ok: false; readonly limit: "candidates"; readonly max: number }
  | Moved;

/**
 * The refusal of a conditional call: the election is no longer at the term the caller
 * expected. Carries what the caller should see instead.
 */
export interface Moved {
  readonly ok: false;
  readonly moved: { readonly name: string; readonly term: bigint; readonly leader: string };
}

/** What a deleted election leaves behind, so that its name never reuses a term. */
export interface Tombstone {
  readonly term: bigint;
  readonly version: number;
}

/**
 * A candidate rpc (Enter, Withdraw, Anoint, ...) on `election`. An Enter made with a
 * session that adds the candidate binds it to that session, so the session's end
 * withdraws it.
 */
export function decideCandidate(
  election: Election,
  kind: CandidateOperation,
  candidate: string,
  limits: RuleLimits,
  session?: string,
): Decision {
  const outcome = apply(election.state, { kind, candidate }, limits);
  if (!outcome.ok || !outcome.changed) return outcome;
  const what = { cause: kind, candidates: [candidate] };
  if (session === undefined || kind !== "enter") return { ...outcome, what };
  return { ...outcome, what, bind: [candidate, session] };
}

/**
 * A candidate rpc made on condition that the election is still at `expectedTerm` (when
 * given): an operator acting on what a screen showed. Refused, changing nothing, when the
 * election moved on.
 */
export function decideConditional(
  election: Election,
  kind: CandidateOperation,
  candidate: string,
  limits: RuleLimits,
  expectedTerm: bigint | undefined,
): Decision {
  if (expectedTerm !== undefined && election.state.term !== expectedTerm) {
    const { term, leader } = election.state;
    return { ok: false, moved: { name: election.name, term, leader } };
  }
  return decideCandidate(election, kind, candidate, limits);
}

/**
 * Withdraws, as one change, every candidate `session` owns in `election`: what Close with
 * a session does (no cause: the client asked) and what a session's end does (`cause`).
 * Releasing a session that owns nothing there changes nothing, so doing it twice, or on
 * several servers at once, is safe.
 */
export function decideRelease(
  election: Election,
  session: string | undefined,
  limits: RuleLimits,
  cause?: ChangeCause,
): Decision {
  const candidates = session === undefined ? [] : ownedBy(election.owners, session);
  const outcome = apply(election.state, { kind: "release", candidates }, limits);
  if (!outcome.ok || !outcome.changed) return outcome;
  const what = { cause: cause ?? ("close" as const), candidates };
  return cause === undefined ? { ...outcome, what } : { ...outcome, what, cause };
}

/** The candidates `session` entered that are still in the election. */
export function ownedBy(owners: ReadonlyMap<string, string>, session: string): string[] {
  const owned: string[] = [];
  for (const [candidate, owner] of owners) if (owner === session) owned.push(candidate);
  return owned;
}

/** How many candidates an election holds: its leader and its queue. */
export function headcount(state: ElectionState): number {
  return (state.leader === "" ? 0 : 1) + state.candidates.length;
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
  tombstone: Tombstone | undefined,
  at: number,
): Election {
  const state = tombstone ? { ...emptyElection, term: tombstone.term } : emptyElection;
  return {
    name,
    tags: [...tags],
    state,
    owners: noOwners,
    version: (tombstone?.version ?? 0) + 1,
    change: { cause: "create", candidates: [], at, before: { term: state.term, leader: "" } },
  };
}

/** The last state of a deleted election, as its watchers are told. */
export function deletedElection(election: Election, at: number): Election {
  const { cause: _previous, ...rest } = election;
  const { term, leader, candidates } = election.state;
  return {
    ...rest,
    owners: noOwners,
    version: election.version + 1,
    cause: "election-deleted",
    deleted: true,
    change: {
      cause: "election-deleted",
      candidates: leader === "" ? [...candidates] : [leader, ...candidates],
      at,
      before: { term, leader },
    },
  };
}

/**
 * Applies a committed decision to an election, at time `at`: the one place owners are kept
 * consistent and a change is described for history.
 */
export function commit(
  election: Election,
  decision: Decision & { ok: true },
  at: number,
): Election {
  // The cause belongs to this change only: the previous one's is dropped.
  const { cause: _previous, ...rest } = election;
  const { term, leader } = election.state;
  return {
    ...rest,
    state: decision.state,
    owners: ownersAfter(election.owners, decision.state, decision.bind),
    version: election.version + 1,
    ...(decision.cause === undefined ? {} : { cause: decision.cause }),
    change: {
      cause: decision.what?.cause ?? decision.cause ?? "close",
      candidates: decision.what?.candidates ?? [],
      at,
      before: { term, leader },
    },
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
