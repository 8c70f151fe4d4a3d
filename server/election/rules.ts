// The election rules of API.md section 2 as one pure function: apply(state, operation)
// returns the next state and whether anything changed. No I/O, no clock, no transport
// types: every store and every transport calls this and nothing else decides who leads.

/** The state of one election. `term` is the fencing token. */
export interface ElectionState {
  readonly term: bigint;
  readonly leader: string;
  /** Candidates waiting behind the leader, in order; never contains the leader. */
  readonly candidates: readonly string[];
}

export type CandidateOperation = "enter" | "withdraw" | "evict" | "anoint" | "promote" | "demote";

export type Operation =
  | { readonly kind: CandidateOperation; readonly candidate: string }
  /**
   * Close(id) with a session: withdraw every listed candidate that is present, as one
   * atomic change. The first remaining candidate (in leader-then-queue order) leads; the
   * term grows by one if that is a different name, so watchers never see a leader that
   * only existed halfway through the release.
   */
  | { readonly kind: "release"; readonly candidates: readonly string[] };

export interface RuleLimits {
  /** Most names (leader + queue) one election may hold. */
  readonly maxCandidates: number;
}

export type Outcome =
  | { readonly ok: true; readonly state: ElectionState; readonly changed: boolean }
  | { readonly ok: false; readonly limit: "candidates"; readonly max: number };

export const emptyElection: ElectionState = { term: 0n, leader: "", candidates: [] };

export function apply(state: ElectionState, op: Operation, limits: RuleLimits): Outcome {
  switch (op.kind) {
    case "enter":
      return enter(state, op.candidate, limits);
    case "withdraw":
    case "evict":
      return remove(state, [op.candidate]);
    case "release":
      return remove(state, op.candidates);
    case "anoint":
      return anoint(state, op.candidate);
    case "promote":
      return promote(state, op.candidate);
    case "demote":
      return demote(state, op.candidate);
  }
}

/** Whether `name` is the leader or queued. */
export function holds(state: ElectionState, name: string): boolean {
  return state.leader === name || state.candidates.includes(name);
}

function unchanged(state: ElectionState): Outcome {
  return { ok: true, state, changed: false };
}

function changed(state: ElectionState): Outcome {
  return { ok: true, state, changed: true };
}

function enter(state: ElectionState, c: string, limits: RuleLimits): Outcome {
  if (holds(state, c)) return unchanged(state);
  const size = (state.leader === "" ? 0 : 1) + state.candidates.length;
  if (size >= limits.maxCandidates) {
    return { ok: false, limit: "candidates", max: limits.maxCandidates };
  }
  if (state.leader === "") {
    return changed({ term: state.term + 1n, leader: c, candidates: state.candidates });
  }
  return changed({ ...state, candidates: [...state.candidates, c] });
}

function remove(state: ElectionState, names: readonly string[]): Outcome {
  const gone = new Set(names);
  const leaderGone = state.leader !== "" && gone.has(state.leader);
  const queue = state.candidates.filter((c) => !gone.has(c));
  if (!leaderGone && queue.length === state.candidates.length) return unchanged(state);
  if (!leaderGone) return changed({ ...state, candidates: queue });
  const [next, ...rest] = queue;
  if (next === undefined) return changed({ term: state.term, leader: "", candidates: [] });
  return changed({ term: state.term + 1n, leader: next, candidates: rest });
}

function anoint(state: ElectionState, c: string): Outcome {
  const at = state.candidates.indexOf(c);
  if (at < 0) return unchanged(state);
  return changed(takeLead(state, at));
}

function promote(state: ElectionState, c: string): Outcome {
  const at = state.candidates.indexOf(c);
  if (at < 0) return unchanged(state);
  if (at === 0) return changed(takeLead(state, 0));
  return changed({ ...state, candidates: swap(state.candidates, at - 1, at) });
}

function demote(state: ElectionState, c: string): Outcome {
  if (c !== "" && c === state.leader) {
    if (state.candidates.length === 0) return unchanged(state);
    return changed(takeLead(state, 0));
  }
  const at = state.candidates.indexOf(c);
  if (at < 0 || at === state.candidates.length - 1) return unchanged(state);
  return changed({ ...state, candidates: swap(state.candidates, at, at + 1) });
}

/** Queued candidate at `at` becomes leader (term+1); the old leader, if any, heads the queue. */
function takeLead(state: ElectionState, at: number): ElectionState {
  const next = state.candidates[at] as string;
  const rest = state.candidates.filter((_, i) => i !== at);
  const queue = state.leader === "" ? rest : [state.leader, ...rest];
  return { term: state.term + 1n, leader: next, candidates: queue };
}

function swap(list: readonly string[], i: number, j: number): string[] {
  const out = [...list];
  [out[i], out[j]] = [out[j] as string, out[i] as string];
  return out;
}
