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
  /**
   * The identity that entered each candidate, when it was not anonymous (candidate ->
   * identity; names that leave drop out): what lets a candidate-role caller withdraw only
   * its own candidates. Absent when there are none.
   */
  readonly entrants?: ReadonlyMap<string, string>;
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
  /**
   * The identity that made it ("anonymous" without auth); for a session's end, the one
   * that entered the candidates it released. Absent in records written before electd kept
   * it: unknown.
   */
  readonly by?: string;
}

/**
 * Who is making a change, as the rules need to know it: the identity, and whether it may
 * act on candidates others entered (the admin role on the election).
 */
export interface Actor {
  readonly name: string;
  readonly admin: boolean;
}

/** The identity of changes made without auth. */
export const ANONYMOUS = "anonymous";

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
      readonly what?: {
        readonly cause: Cause;
        readonly candidates: readonly string[];
        readonly by?: string;
      };
      /** The identity that entered the candidate this decision adds, when not anonymous. */
      readonly enteredBy?: readonly [candidate: string, identity: string];
    }
  | { readonly ok: false; readonly limit: "candidates"; readonly max: number }
  | Moved
  | Denied;

/**
 * The refusal of a change to a candidate another identity entered, by a caller that may
 * only touch its own (the candidate role). Nothing changes.
 */
export interface Denied {
  readonly ok: false;
  readonly denied: { readonly candidate: string; readonly entrant: string | undefined };
}

/** Whether `actor` may change `candidate` of `election`: its own, or any as admin. */
function mayTouch(election: Election, actor: Actor | undefined, candidate: string): boolean {
  return actor === undefined || actor.admin || election.entrants?.get(candidate) === actor.name;
}

function denied(election: Election, candidate: string): Denied {
  return { ok: false, denied: { candidate, entrant: election.entrants?.get(candidate) } };
}

/** Whether `candidate` is in the election (leader or queued). */
function holdsCandidate(election: Election, candidate: string): boolean {
  const { leader, candidates } = election.state;
  return leader === candidate || candidates.includes(candidate);
}

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
  actor?: Actor,
): Decision {
  // Entering adds the caller's own candidate; anything else on a name already there is
  // acting on whoever entered it.
  if (
    kind !== "enter" &&
    holdsCandidate(election, candidate) &&
    !mayTouch(election, actor, candidate)
  ) {
    return denied(election, candidate);
  }
  const outcome = apply(election.state, { kind, candidate }, limits);
  if (!outcome.ok || !outcome.changed) return outcome;
  const what = { cause: kind, candidates: [candidate], ...by(actor) };
  const entered =
    kind === "enter" && actor !== undefined && actor.name !== ANONYMOUS
      ? { enteredBy: [candidate, actor.name] as const }
      : {};
  if (session === undefined || kind !== "enter") return { ...outcome, what, ...entered };
  return { ...outcome, what, bind: [candidate, session], ...entered };
}

function by(actor: Actor | undefined): { by?: string } {
  return actor === undefined ? {} : { by: actor.name };
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
  actor?: Actor,
): Decision {
  if (expectedTerm !== undefined && election.state.term !== expectedTerm) {
    const { term, leader } = election.state;
    return { ok: false, moved: { name: election.name, term, leader } };
  }
  return decideCandidate(election, kind, candidate, limits, undefined, actor);
}

/**
 * Withdraws, as one change, every candidate `session` owns in `election`: what Close with
 * a session does (no cause: the client asked; `actor` the caller, who must have entered
 * them unless admin) and what a session's end does (`cause`: the change is recorded as
 * made by the identity that entered the candidates). Releasing a session that owns nothing
 * there changes nothing, so doing it twice, or on several servers at once, is safe.
 */
export function decideRelease(
  election: Election,
  session: string | undefined,
  limits: RuleLimits,
  cause?: ChangeCause,
  actor?: Actor,
): Decision {
  const candidates = session === undefined ? [] : ownedBy(election.owners, session);
  const other = candidates.find((candidate) => !mayTouch(election, actor, candidate));
  if (other !== undefined) return denied(election, other);
  const outcome = apply(election.state, { kind: "release", candidates }, limits);
  if (!outcome.ok || !outcome.changed) return outcome;
  const what = {
    cause: cause ?? ("close" as const),
    candidates,
    by: actor?.name ?? enteredBy(election, candidates),
  };
  return cause === undefined ? { ...outcome, what } : { ...outcome, what, cause };
}

/**
 * Who entered `candidates` (a session's, so one identity as a rule): their names joined,
 * or "anonymous" when none was entered with an identity.
 */
function enteredBy(election: Election, candidates: readonly string[]): string {
  const names = new Set<string>();
  for (const candidate of candidates) {
    names.add(election.entrants?.get(candidate) ?? ANONYMOUS);
  }
  return [...names].join(", ");
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
  by?: string,
): Election {
  const state = tombstone ? { ...emptyElection, term: tombstone.term } : emptyElection;
  return {
    name,
    tags: [...tags],
    state,
    owners: noOwners,
    version: (tombstone?.version ?? 0) + 1,
    change: {
      cause: "create",
      candidates: [],
      at,
      before: { term: state.term, leader: "" },
      ...(by === undefined ? {} : { by }),
    },
  };
}

/** The last state of a deleted election, as its watchers are told. */
export function deletedElection(election: Election, at: number, by?: string): Election {
  const { cause: _previous, entrants: _entrants, ...rest } = election;
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
      ...(by === undefined ? {} : { by }),
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
  const { cause: _previous, entrants: _entrants, ...rest } = election;
  const { term, leader } = election.state;
  const entrants = entrantsAfter(election.entrants, decision.state, decision.enteredBy);
  const by = decision.what?.by;
  return {
    ...rest,
    state: decision.state,
    owners: ownersAfter(election.owners, decision.state, decision.bind),
    ...(entrants === undefined ? {} : { entrants }),
    version: election.version + 1,
    ...(decision.cause === undefined ? {} : { cause: decision.cause }),
    change: {
      cause: decision.what?.cause ?? decision.cause ?? "close",
      candidates: decision.what?.candidates ?? [],
      at,
      before: { term, leader },
      ...(by === undefined ? {} : { by }),
    },
  };
}

/** The entrants of the names `state` still holds, plus `add`; undefined when none. */
function entrantsAfter(
  entrants: ReadonlyMap<string, string> | undefined,
  state: ElectionState,
  add: readonly [candidate: string, identity: string] | undefined,
): ReadonlyMap<string, string> | undefined {
  if (entrants === undefined && add === undefined) return undefined;
  const next = ownersAfter(entrants ?? noOwners, state, add);
  return next.size === 0 ? undefined : next;
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
