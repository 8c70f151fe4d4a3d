// In-memory store: for tests and demos (`--store memory`). Nothing survives a restart.
// JavaScript runs one mutation to completion at a time, so each update is atomic here.

import {
  commit,
  type Decision,
  deletedElection,
  type Election,
  type HistoryRecord,
  headcount,
  historyRecord,
  newElection,
  type Tombstone,
} from "../election/change.js";
import { ElectionIndex } from "./elections.js";
import {
  type ChangeListener,
  type CreateResult,
  DEFAULT_HISTORY_PER_ELECTION,
  type HistoryQuery,
  historyPage,
  type ListFilter,
  type ListQuery,
  type LocalStore,
  overTotal,
  type SessionRecord,
  type StoreLimits,
  type UpdateResult,
} from "./store.js";

export type MemoryStoreOptions = StoreLimits;

export function createMemoryStore(options: MemoryStoreOptions): LocalStore {
  const elections = new ElectionIndex();
  const tombstones = new Map<string, Tombstone>();
  const histories = new Map<string, HistoryRecord[]>();
  const kept = options.historyPerElection ?? DEFAULT_HISTORY_PER_ELECTION;
  const listeners = new Set<ChangeListener>();
  const sessions = new Map<string, SessionRecord>();
  /** Candidates in all elections together. */
  let candidates = 0;
  const publish = (election: Election) => {
    const record = kept > 0 ? historyRecord(election) : undefined;
    if (record) {
      // A deletion keeps only its own record: what was deleted stays visible, bounded.
      const records = election.deleted ? [] : (histories.get(election.name) ?? []);
      records.push(record);
      if (records.length > kept) records.splice(0, records.length - kept);
      histories.set(election.name, records);
    }
    for (const listener of listeners) listener(election);
  };

  return {
    kind: "memory",
    async create(name: string, tags: readonly string[], by?: string): Promise<CreateResult> {
      const existing = elections.get(name);
      if (existing) return { ok: true, election: existing, created: false };
      if (elections.size >= options.maxElections) {
        return { ok: false, limit: "elections", max: options.maxElections };
      }
      const election = newElection(name, tags, tombstones.get(name), Date.now(), by);
      tombstones.delete(name);
      elections.set(election);
      publish(election);
      return { ok: true, election, created: true };
    },
    async get(name: string) {
      return elections.get(name);
    },
    async update(
      name: string,
      decide: (e: Election) => Decision,
    ): Promise<UpdateResult | undefined> {
      const current = elections.get(name);
      if (!current) return undefined;
      const decision = decide(current);
      if (!decision.ok) return decision;
      if (!decision.changed) return { ok: true, election: current, changed: false };
      const refusal = overTotal(options, candidates, current.state, decision.state);
      if (refusal) return refusal;
      const next = commit(current, decision, Date.now());
      candidates += headcount(next.state) - headcount(current.state);
      elections.set(next);
      publish(next);
      return { ok: true, election: next, changed: true };
    },
    async delete(name: string, by?: string) {
      const current = elections.get(name);
      if (!current) return undefined;
      const last = deletedElection(current, Date.now(), by);
      candidates -= headcount(current.state);
      elections.delete(name);
      tombstones.set(name, { term: last.state.term, version: last.version });
      publish(last);
      return last;
    },
    async history(name: string, query: HistoryQuery) {
      return historyPage(histories.get(name) ?? [], query);
    },
    async list(query: ListQuery) {
      return elections.list(query);
    },
    snapshot: (filter: ListFilter) => elections.snapshot(filter),
    size: () => elections.size,
    subscribe(listener: ChangeListener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async putSession(session: SessionRecord) {
      sessions.set(session.id, session);
    },
    async deleteSession(id: string) {
      sessions.delete(id);
    },
    async listSessions() {
      return [...sessions.values()];
    },
    async close() {
      listeners.clear();
    },
  };
}
