// The store as every other part uses it, measured from outside: how long each commit
// takes and whether it failed; from the changes it publishes, the leader changes and why,
// and how many candidates all elections hold; and which sessions expired. No store is
// changed: this wraps the store seam (memory, durable or etcd alike) and forwards every
// other member, so a store's own methods (etcd's leases) still reach it.
import { type Cause, type Election, headcount } from "../election/change.js";
import type { SessionState } from "../session/sessions.js";
import type { ElectionStore, SessionRecords } from "../store/store.js";
import type { Metrics } from "./metrics.js";

export interface MeasuredStoreOptions {
  readonly metrics: Metrics;
  /** A session's state as the sessions know it (read before its record is deleted). */
  readonly sessionState: (id: string) => SessionState | undefined;
  /** Hears whether each commit succeeded. */
  readonly onCommit?: (ok: boolean) => void;
}

type Operation = "create" | "update" | "delete" | "put_session" | "delete_session";

/**
 * The `cause` label of a leader change: the RPC a call's change was made by (`enter` from
 * Enter, `close` from Close), or what the server did (`session-expired`, ...). Every change
 * carries its cause, whichever server made it; only a state with no change record (none
 * is published so) would be `unknown`.
 */
function causeLabel(cause: Cause | undefined): string {
  if (cause === undefined) return "unknown";
  if (cause.includes("-")) return cause;
  return `${cause.charAt(0).toUpperCase()}${cause.slice(1)}`;
}

/** Candidates in every election: a walk of an O(1) snapshot, once at startup. */
function candidatesIn(store: ElectionStore): number {
  let total = 0;
  for (const election of store.snapshot({}).scan({})) total += headcount(election.state);
  return total;
}

export function measuredStore<S extends ElectionStore & Partial<SessionRecords>>(
  store: S,
  options: MeasuredStoreOptions,
): S {
  const { metrics, sessionState, onCommit } = options;

  async function timed<T>(operation: Operation, commit: () => Promise<T>): Promise<T> {
    const end = metrics.commitDuration.startTimer({ operation });
    try {
      const result = await commit();
      onCommit?.(true);
      return result;
    } catch (error) {
      metrics.commitFailures.inc({ operation });
      onCommit?.(false);
      throw error;
    } finally {
      end();
    }
  }

  // Each election's last published state, to compare the next with: the store holds the
  // same objects, so this costs a map entry per election. It sees every change, whoever
  // made it: a call, a session's release, another server sharing the store.
  const last = new Map<string, Election>();
  for (const election of store.snapshot({}).scan({})) last.set(election.name, election);
  metrics.candidates.set(candidatesIn(store));
  store.subscribe((election) => {
    const before = last.get(election.name);
    if (election.deleted) last.delete(election.name);
    else last.set(election.name, election);
    const after = election.deleted ? "" : election.state.leader;
    if ((before?.state.leader ?? "") !== after) {
      metrics.leaderChanges.inc({ cause: causeLabel(election.change?.cause) });
    }
    const added =
      (election.deleted ? 0 : headcount(election.state)) - (before ? headcount(before.state) : 0);
    if (added !== 0) metrics.candidates.inc(added);
  });

  const overrides: Partial<ElectionStore & SessionRecords> = {
    create: (name, tags, by) => timed("create", () => store.create(name, tags, by)),
    update: (name, decide) => timed("update", () => store.update(name, decide)),
    delete: (name, by) => timed("delete", () => store.delete(name, by)),
  };
  const { putSession, deleteSession } = store;
  if (putSession && deleteSession) {
    overrides.putSession = (session) => timed("put_session", () => putSession.call(store, session));
    overrides.deleteSession = async (id) => {
      // Sessions kept with local timers delete an ended session's record once its
      // candidates are withdrawn; until then they report it as expiring or closing. (An
      // Enter racing with the expiry makes them delete once more: that one counts twice.)
      const expired = sessionState(id) === "expiring";
      await timed("delete_session", () => deleteSession.call(store, id));
      if (expired) metrics.sessionExpiries.inc();
    };
  }
  /** The store's own methods, bound to it once. */
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) {
        return overrides[property as keyof typeof overrides];
      }
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      let method = bound.get(property);
      if (method === undefined) {
        method = value.bind(target);
        bound.set(property, method);
      }
      return method;
    },
  });
}
