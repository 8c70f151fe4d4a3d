// A watch that resumes (API.md section 7): every change of an election after the version a
// client saw last, from the store's history and then live from the hub, each once and in
// version order, so a client that was away for a moment learns exactly what it missed.
// When those changes are no longer kept, it starts again from the current state, marked
// as a reset. Whatever feeds it (ElectionHistoryService.WatchElection and
// WatchElectionList, Server-Sent Events) only encodes what this yields.
import { Repeater } from "@repeaterjs/repeater";
import { type HistoryRecord, historyRecord } from "../election/change.js";
import { ElectdError } from "../errors.js";
import type { ElectionStore } from "../store/store.js";
import type { WatchedState, WatchHub } from "./hub.js";

export type Resumed =
  /** The current state to start from; `reset` when changes after the client's were lost. */
  | { readonly kind: "start"; readonly state: WatchedState; readonly reset: boolean }
  /** One change; `state` is the election as it made it, when the change is a live one. */
  | { readonly kind: "change"; readonly record: HistoryRecord; readonly state?: WatchedState };

/** One election of a watch of several, and the last version its client saw. */
export interface Cursor {
  readonly name: string;
  readonly after: number;
  /** Set when the election was refused before any watching (its name is not valid). */
  readonly refused?: ElectdError;
}

export type ResumedOf =
  | { readonly name: string; readonly step: Resumed }
  /** The election's watch ended: not found, deleted (after its deletion), or refused. */
  | { readonly name: string; readonly ended: ElectdError };

/** History records read per page while catching up. */
const PAGE = 100;

/**
 * The changes of `name` after version `after` (0: start from the current state), then
 * each later one. Ends when `signal` aborts or the hub closes; a deletion is the last
 * change, followed by not_found.
 */
export async function* resume(
  store: ElectionStore,
  hub: WatchHub,
  name: string,
  after: number,
  signal: AbortSignal,
): AsyncGenerator<Resumed> {
  let last = after;
  let first = true;
  try {
    for await (const state of hub.election(name, signal)) {
      if (last === 0 || state.version < last) {
        // A first look, or a client ahead of the election (deleted and created again).
        yield { kind: "start", state, reset: last !== 0 };
        last = state.version;
        first = false;
        continue;
      }
      if (state.version === last) {
        // Already up to date: the stream starts with the state the client has, so that
        // it knows the stream is live (a leader learns it still leads).
        if (first) yield { kind: "start", state, reset: false };
        first = false;
        continue;
      }
      first = false;
      // What the hub does not carry (a restored election's changes, states a slow reader
      // skipped) comes from history, all of it or none.
      const live = historyRecord(state);
      const missing = await between(store, name, last, live ? state.version - 1 : state.version);
      if (missing === undefined) {
        yield { kind: "start", state, reset: true };
        last = state.version;
        continue;
      }
      for (const [i, record] of missing.entries()) {
        const current = !live && i === missing.length - 1;
        yield current ? { kind: "change", record, state } : { kind: "change", record };
      }
      if (live) yield { kind: "change", record: live, state };
      last = state.version;
    }
  } catch (error) {
    // Deleted: the deletion (and anything before it not yet sent) is the last change.
    if (error instanceof ElectdError && error.kind === "not_found" && last > 0) {
      for (const record of (await between(store, name, last, Number.MAX_SAFE_INTEGER)) ?? []) {
        yield { kind: "change", record };
      }
    }
    throw error;
  }
}

/**
 * The kept changes after `from` up to `to` (inclusive) in version order, or undefined when
 * one of them is no longer kept.
 */
async function between(
  store: ElectionStore,
  name: string,
  from: number,
  to: number,
): Promise<HistoryRecord[] | undefined> {
  const records: HistoryRecord[] = [];
  let cursor = from;
  while (cursor < to) {
    const page = await store.history(name, { from: cursor, limit: PAGE, order: "oldest" });
    for (const record of page) {
      if (record.version > to) return records;
      if (record.version !== cursor + 1) return undefined;
      records.push(record);
      cursor = record.version;
    }
    if (page.length < PAGE) break;
  }
  return to === Number.MAX_SAFE_INTEGER || cursor === to ? records : undefined;
}

/**
 * `resume` for each cursor's election at once, as one sequence: each election's steps in
 * its own order, the elections' interleaved as they come. An election that is not found
 * (or deleted, or refused) ends on its own with `ended`; any other error ends them all,
 * and the client resumes each from the last version it saw. Each election is read only
 * as fast as the whole is (Repeater.merge waits for a value to be taken before pulling
 * that election's next), so a slow reader costs each election its bounded mailbox, no more.
 */
export async function* resumeEach(
  store: ElectionStore,
  hub: WatchHub,
  cursors: readonly Cursor[],
  signal: AbortSignal,
): AsyncGenerator<ResumedOf> {
  // Ended for one, ended for all: the others' watches are let go at once.
  const all = new AbortController();
  const stop = () => all.abort();
  signal.addEventListener("abort", stop, { once: true });
  try {
    yield* Repeater.merge(cursors.map((cursor) => resumeOne(store, hub, cursor, all.signal)));
  } finally {
    signal.removeEventListener("abort", stop);
    all.abort();
  }
}

async function* resumeOne(
  store: ElectionStore,
  hub: WatchHub,
  { name, after, refused }: Cursor,
  signal: AbortSignal,
): AsyncGenerator<ResumedOf> {
  if (refused) {
    yield { name, ended: refused };
    return;
  }
  try {
    for await (const step of resume(store, hub, name, after, signal)) yield { name, step };
  } catch (error) {
    if (!(error instanceof ElectdError && error.kind === "not_found")) throw error;
    yield { name, ended: error };
  }
}
