// The etcd store (`--store etcd`): elections live in an etcd cluster shared by every electd
// server, so losing one server or one etcd member loses nothing. Keys under the prefix:
//
//   e/<name>          an election (JSON: tags, term, leader, queue, owners, version, cause)
//   t/<name>          what a deleted election leaves behind (term, version)
//   h/<name>\0<version> one change of the election's history, written with the change
//   s/<session>       a session, attached to its etcd lease (JSON: ttlMs, closing)
//   b/<session>/<name> "this session owns candidates in this election", on the same lease,
//                     so when the lease expires etcd deletes it and every server's watch
//                     learns which elections to release (server/session/leases.ts)
//   x/<session>       "this session has not been closed", written with the session but on
//                     no lease: CloseSession deletes it as it marks the session closing, so
//                     when a session key goes and this is still there the session expired,
//                     and the one server whose transaction deletes it counts the expiry
//   m/elections, m/sessions  written with each creation (of an election, of a session) so
//                     that two servers counting at once cannot both pass a limit
//
// Every mutation reads the election, lets the pure rules decide, and commits with a
// transaction that compares the key's mod_revision (and, for a binding, the session's), so
// conflicting calls on two servers serialise; a conflict reads again and decides again.
// Changes to different elections made at the same moment share one transaction
// (group-commit.ts).
// A call is answered only after etcd acknowledged the commit and this server's own watch
// has delivered it, so its watchers and listings already show it. Each server keeps a
// mirror of the elections and sessions, filled by one watch on the prefix started at the
// revision of the state it first read: no change is lost or repeated, and every server
// publishes changes in etcd's commit order.
import { readFileSync } from "node:fs";
import {
  ConsecutiveBreaker,
  circuitBreaker,
  ExponentialBackoff,
  handleWhen,
  type IBackoff,
} from "cockatiel";
import {
  Etcd3,
  type IKeyValue,
  type IOptions,
  type IResponseOp,
  isRecoverableError,
  type Watcher,
} from "etcd3";
import {
  type Change,
  commit,
  type Decision,
  deletedElection,
  type Election,
  type HistoryRecord,
  headcount,
  historyRecord,
  newElection,
  noOwners,
  type Tombstone,
} from "../election/change.js";
import { ElectdError, unavailable } from "../errors.js";
import { ElectionIndex } from "./elections.js";
import { GroupCommit } from "./group-commit.js";
import {
  type ChangeListener,
  type CreateResult,
  DEFAULT_HISTORY_PER_ELECTION,
  decodeHistory,
  type ElectionStore,
  encodeHistory,
  type HistoryQuery,
  type ListFilter,
  type ListQuery,
  overTotal,
  type StoreLimits,
  StoreStartError,
  type UpdateResult,
} from "./store.js";

export interface EtcdOptions {
  readonly endpoints: readonly string[];
  /** Every key electd writes starts with this. */
  readonly prefix: string;
  /** PEM files: the CA that signed etcd's certificate, and a client certificate and key. */
  readonly cacert?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  /** Longest wait for one etcd call; then the caller gets `unavailable`. */
  readonly timeoutMs: number;
  /** Most operations in one transaction of changes committed together (default 128). */
  readonly maxTxnOps?: number | undefined;
}

export interface EtcdStoreOptions extends StoreLimits {
  readonly etcd: EtcdOptions;
  readonly maxSessions: number;
  /** Hears a watch that etcd cancelled (the store reads everything again and goes on). */
  readonly onWatchError?: (error: Error) => void;
}

/** A session as kept in etcd. */
export interface EtcdSession {
  readonly id: string;
  readonly ttlMs: number;
  /** Its lease, as etcd numbers leases (an int64 in decimal). */
  readonly lease: string;
  /** Set once CloseSession started: nothing may bind to it or keep it alive any more. */
  readonly closing: boolean;
  /** The session key's mod_revision: a binding commits only if it is unchanged. */
  readonly revision: string;
}

/** Heard for every session or binding etcd deleted (a lease expired or was revoked). */
export type SessionGoneListener = (event: {
  readonly session: string;
  /** The election whose binding went, or undefined for the session key itself. */
  readonly election?: string;
}) => void;

/** How many times a mutation reads and decides again after losing a race. */
const MAX_CONFLICTS = 100;

/** etcd's default --max-txn-ops. */
const DEFAULT_MAX_TXN_OPS = 128;

/**
 * Group-commit transactions of one server in flight at once: a second one is sent while the
 * first waits for etcd's fsync, and what arrives meanwhile goes in the next.
 */
const COMMITS_IN_FLIGHT = 2;

/** Keys read per page when the mirror is filled at start. */
const PAGE = 1000;

/** An election as read, with the revision it was last changed at. */
interface Current {
  readonly election: Election;
  readonly revision: string;
}

interface Stored {
  tags: string[];
  term: string;
  leader: string;
  candidates: string[];
  owners: [string, string][];
  /** Who entered each candidate (Election.entrants); absent when no one is recorded. */
  entrants?: [string, string][];
  version: number;
  cause?: Election["cause"];
  /** The change that made this version, as its history record has it (encodeHistory). */
  change?: string;
}

export class EtcdStore implements ElectionStore {
  readonly kind = "etcd";
  readonly client: Etcd3;
  readonly keys: Keys;
  private readonly mirror = new ElectionIndex();
  /** The mod_revision of each election in the mirror. */
  private readonly revisions = new Map<string, string>();
  private readonly sessions = new Map<string, EtcdSession>();
  private readonly listeners = new Set<ChangeListener>();
  private readonly goneListeners = new Set<SessionGoneListener>();
  /** Most history records kept per election. */
  private readonly kept: number;
  /** The last history record heard for each name in the current watch response. */
  private readonly heard = new Map<string, HistoryRecord>();
  /**
   * Candidates in the mirror's elections, plus those this server is adding right now:
   * what MAX_CANDIDATES_TOTAL bounds, since every server holds the whole mirror.
   */
  private candidates = 0;
  private adding = 0;
  /** Highest revision the watch has delivered. */
  private revision = 0n;
  private readonly waiting: { revision: bigint; resolve: () => void }[] = [];
  private watcher: Watcher | undefined;
  private closed = false;
  /** The changes' transactions, several at a time when they arrive together. */
  private readonly commits: GroupCommit;

  private constructor(private readonly options: EtcdStoreOptions) {
    this.keys = new Keys(options.etcd.prefix);
    this.kept = options.historyPerElection ?? DEFAULT_HISTORY_PER_ELECTION;
    this.client = new Etcd3(clientOptions(options.etcd));
    this.commits = new GroupCommit({
      txn: (request) => this.call(() => this.client.kv.txn(request)),
      maxOps: options.etcd.maxTxnOps ?? DEFAULT_MAX_TXN_OPS,
      maxInFlight: COMMITS_IN_FLIGHT,
      timeoutMs: options.etcd.timeoutMs,
      late: () => unavailable(`etcd did not answer within ${options.etcd.timeoutMs} ms`),
    });
  }

  /** Connects, reads every election and session, and starts the watch after them. */
  static async open(options: EtcdStoreOptions): Promise<EtcdStore> {
    const store = new EtcdStore(options);
    try {
      await store.load();
    } catch (error) {
      store.client.close();
      throw new StoreStartError(
        `cannot read from etcd at ${options.etcd.endpoints.join(",")}: ${(error as Error).message}`,
      );
    }
    return store;
  }

  // ---- ElectionStore ----

  async create(name: string, tags: readonly string[], by?: string): Promise<CreateResult> {
    const key = this.keys.election(name);
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const read = await this.call(() =>
        this.client.kv.txn({
          success: [
            { request_range: { key } },
            { request_range: { key: this.keys.tombstone(name) } },
            { request_range: { key: this.keys.meta("elections") } },
            { request_range: { ...this.keys.range("e/"), count_only: true } },
          ],
        }),
      );
      const [existing, tombstone, meta, count] = read.responses.map((r) => r.response_range);
      const found = existing?.kvs[0];
      if (found) return { ok: true, election: decode(name, found), created: false };
      if (Number(count?.count ?? 0) >= this.options.maxElections) {
        return { ok: false, limit: "elections", max: this.options.maxElections };
      }
      const stone = tombstone?.kvs[0];
      const election = newElection(
        name,
        tags,
        stone ? decodeTombstone(stone) : undefined,
        Date.now(),
        by,
      );
      const result = await this.call(() =>
        this.client.kv.txn({
          compare: [
            { key, target: "Create", result: "Equal", create_revision: 0 },
            compareMod(this.keys.meta("elections"), meta?.kvs[0]),
          ],
          success: [
            { request_put: { key, value: encode(election) } },
            ...this.putHistory(election),
            { request_delete_range: { key: this.keys.tombstone(name) } },
            { request_put: { key: this.keys.meta("elections"), value: Buffer.alloc(0) } },
          ],
        }),
      );
      if (result.succeeded) {
        await this.delivered(BigInt(result.header.revision));
        return { ok: true, election: this.mirror.get(name) ?? election, created: true };
      }
    }
    throw conflicted();
  }

  async get(name: string): Promise<Election | undefined> {
    const read = await this.call(() => this.client.kv.range({ key: this.keys.election(name) }));
    const kv = read.kvs[0];
    return kv ? decode(name, kv) : undefined;
  }

  async update(
    name: string,
    decide: (election: Election) => Decision,
  ): Promise<UpdateResult | undefined> {
    const key = this.keys.election(name);
    // First decided on the mirror's copy: one round trip when it is current (the usual
    // case), and the transaction's compare catches it when it is not.
    let read = this.known(name);
    /** Sessions to read from etcd, not the mirror: a compare on them failed. */
    const stale = new Set<string>();
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      read ??= await this.fetch(name);
      if (!read) return undefined;
      const current = read.election;
      const decision = decide(current);
      if (!decision.ok || !decision.changed) {
        // Nothing to write, but decided on the latest state? A compare says.
        const check = await this.call(() =>
          this.client.kv.txn({
            compare: [compareMod(key, read?.revision)],
            failure: [{ request_range: { key } }],
          }),
        );
        if (check.succeeded) {
          return decision.ok ? { ok: true, election: current, changed: false } : decision;
        }
        read = this.fromFailure(name, check);
        if (!read) return undefined;
        continue;
      }
      const next = commit(current, decision, Date.now());
      const compare = [compareMod(key, read.revision)];
      const success: Parameters<Etcd3["kv"]["txn"]>[0]["success"] = [
        { request_put: { key, value: encode(next) } },
        ...this.putHistory(next),
      ];
      if (this.kept > 0) {
        // The oldest records beyond the kept number go in the same transaction.
        success.push({
          request_delete_range: {
            key: this.keys.historyRange(name).key,
            range_end: this.keys.history(name, Math.max(1, next.version - this.kept + 1)),
          },
        });
      }
      // The bindings follow the owners: one key per (session, election) on its lease.
      const before = new Set(current.owners.values());
      const after = new Set(next.owners.values());
      for (const session of before) {
        if (!after.has(session)) {
          success.push({ request_delete_range: { key: this.keys.binding(session, name) } });
        }
      }
      for (const session of after) {
        if (before.has(session)) continue;
        const record = stale.has(session)
          ? await this.readSession(session)
          : await this.session(session);
        if (!record || record.closing) throw sessionGone(session);
        compare.push({
          key: this.keys.session(session),
          target: "Mod",
          result: "Equal",
          mod_revision: record.revision,
        });
        success.push({
          request_put: {
            key: this.keys.binding(session, name),
            value: Buffer.alloc(0),
            lease: record.lease,
          },
        });
      }
      // Checked and counted in one turn, after the last await: two calls on this server
      // cannot both take the last place.
      const refusal = overTotal(
        this.options,
        this.candidates + this.adding,
        current.state,
        decision.state,
      );
      if (refusal) return refusal;
      const added = Math.max(0, headcount(next.state) - headcount(current.state));
      this.adding += added;
      let result: Awaited<ReturnType<Etcd3["kv"]["txn"]>>;
      try {
        result = await this.call(() =>
          this.commits.submit({ name, compare, success, failure: [{ request_range: { key } }] }),
        );
        if (result.succeeded) await this.delivered(BigInt(result.header.revision));
      } finally {
        this.adding -= added;
      }
      if (result.succeeded) return { ok: true, election: next, changed: true };
      // Lost a race: the election or the session changed. A session that ended meanwhile
      // is found gone on the next attempt.
      for (const session of after) if (!before.has(session)) stale.add(session);
      read = this.fromFailure(name, result);
      if (!read) return undefined;
    }
    throw conflicted();
  }

  /** The mirror's copy of an election and the revision it was read at, if it has one. */
  private known(name: string): Current | undefined {
    const election = this.mirror.get(name);
    const revision = this.revisions.get(name);
    return election && revision !== undefined ? { election, revision } : undefined;
  }

  private async fetch(name: string): Promise<Current | undefined> {
    const read = await this.call(() => this.client.kv.range({ key: this.keys.election(name) }));
    const kv = read.kvs[0];
    return kv ? { election: decode(name, kv), revision: kv.mod_revision } : undefined;
  }

  /** The election as a failed transaction's read found it. */
  private fromFailure(name: string, result: { responses: IResponseOp[] }): Current | undefined {
    const kv = result.responses[0]?.response_range?.kvs[0];
    return kv ? { election: decode(name, kv), revision: kv.mod_revision } : undefined;
  }

  async delete(name: string, by?: string): Promise<Election | undefined> {
    const key = this.keys.election(name);
    for (let attempt = 0; attempt < MAX_CONFLICTS; attempt++) {
      const read = await this.call(() => this.client.kv.range({ key }));
      const kv = read.kvs[0];
      if (!kv) return undefined;
      const last = deletedElection(decode(name, kv), Date.now(), by);
      const stone: Tombstone = { term: last.state.term, version: last.version };
      // A deletion keeps only its own record: what was deleted stays visible, bounded.
      const success: Parameters<Etcd3["kv"]["txn"]>[0]["success"] = [
        // etcd refuses a put inside a range the same transaction deletes: up to it.
        {
          request_delete_range: {
            key: this.keys.historyRange(name).key,
            range_end: this.keys.history(name, last.version),
          },
        },
        ...this.putHistory(last),
        { request_delete_range: { key } },
        { request_put: { key: this.keys.tombstone(name), value: encodeTombstone(stone) } },
      ];
      for (const session of new Set(decode(name, kv).owners.values())) {
        success.push({ request_delete_range: { key: this.keys.binding(session, name) } });
      }
      const result = await this.call(() =>
        this.client.kv.txn({ compare: [compareMod(key, kv)], success }),
      );
      if (result.succeeded) {
        await this.delivered(BigInt(result.header.revision));
        return last;
      }
    }
    throw conflicted();
  }

  async history(name: string, query: HistoryQuery) {
    const range = this.keys.historyRange(name);
    const read = await this.call(() =>
      this.client.kv.range(
        query.order === "oldest"
          ? {
              key: this.keys.history(name, (query.from ?? 0) + 1),
              range_end: range.range_end,
              limit: query.limit,
            }
          : {
              key: range.key,
              range_end:
                query.from === undefined ? range.range_end : this.keys.history(name, query.from),
              limit: query.limit,
              sort_order: "Descend",
              sort_target: "Key",
            },
      ),
    );
    return read.kvs.flatMap((kv) => {
      const key = this.keys.parse(kv.key);
      return key?.kind === "history" ? [decodeHistory(key.version, kv.value.toString())] : [];
    });
  }

  /** The put of an election's history record, for the transaction of its change (if kept). */
  private putHistory(election: Election) {
    const record = historyRecord(election);
    if (!record || this.kept === 0) return [];
    return [
      {
        request_put: {
          key: this.keys.history(election.name, record.version),
          value: Buffer.from(encodeHistory(record)),
        },
      },
    ];
  }

  async list(query: ListQuery): Promise<Election[]> {
    return this.mirror.list(query);
  }

  snapshot(filter: ListFilter) {
    return this.mirror.snapshot(filter);
  }

  size(): number {
    return this.mirror.size;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether etcd answers now; the reason when it does not. */
  async check(): Promise<string | undefined> {
    try {
      await this.call(() => this.client.kv.range({ key: this.keys.meta("elections") }));
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.goneListeners.clear();
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
    await this.watcher?.cancel().catch(() => {});
    this.client.close();
  }

  // ---- What the lease-based sessions need ----

  /** Sessions every server knows of (the mirror). */
  get sessionCount(): number {
    return this.sessions.size;
  }

  /** A session as etcd has it: from the mirror, or read when this server has not seen it yet. */
  async session(id: string): Promise<EtcdSession | undefined> {
    return this.sessions.get(id) ?? this.readSession(id);
  }

  private async readSession(id: string): Promise<EtcdSession | undefined> {
    const read = await this.call(() => this.client.kv.range({ key: this.keys.session(id) }));
    const kv = read.kvs[0];
    return kv ? decodeSession(id, kv) : undefined;
  }

  /** The mirror's copy of an election, without asking etcd. */
  knownElection(name: string): Election | undefined {
    return this.mirror.get(name);
  }

  /** The mirror's session, without asking etcd. */
  knownSession(id: string): EtcdSession | undefined {
    return this.sessions.get(id);
  }

  /** Hears every session and binding etcd deletes, in commit order. */
  onSessionGone(listener: SessionGoneListener): () => void {
    this.goneListeners.add(listener);
    return () => this.goneListeners.delete(listener);
  }

  /**
   * Counts a session's expiry on this server only if it is the first to ask: deletes the
   * session's x/ key provided its s/ key is gone (the lease expired). Every server hears a
   * session go; exactly one of them gets true, and none does for a closed session (its
   * x/ key went when it was marked closing).
   */
  async claimExpiry(id: string): Promise<boolean> {
    const result = await this.call(() =>
      this.client.kv.txn({
        compare: [
          { key: this.keys.session(id), target: "Version", result: "Equal", version: 0 },
          { key: this.keys.expiry(id), target: "Version", result: "Greater", version: 0 },
        ],
        success: [{ request_delete_range: { key: this.keys.expiry(id) } }],
      }),
    );
    return result.succeeded;
  }

  /** Sessions whose x/ key is left: open ones, and those that expired with no server watching. */
  async unclaimedExpiries(): Promise<string[]> {
    const ids: string[] = [];
    const range = this.keys.range("x/");
    let from = range.key;
    for (;;) {
      const page = await this.call(() =>
        this.client.kv.range({
          key: from,
          range_end: range.range_end,
          keys_only: true,
          limit: PAGE,
        }),
      );
      for (const kv of page.kvs) {
        const key = this.keys.parse(kv.key);
        if (key?.kind === "expiry") ids.push(key.id);
      }
      const last = page.kvs.at(-1);
      if (!page.more || !last) return ids;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  /** Every election in the mirror: what a server checks for orphaned bindings at start. */
  elections(): IterableIterator<Election> {
    return this.mirror.values();
  }

  /** Runs one etcd call with the configured deadline; etcd's failures become `unavailable`. */
  async call<T>(run: () => Promise<T>): Promise<T> {
    if (this.closed) throw unavailable("the server is shutting down");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(unavailable(`etcd did not answer within ${this.options.etcd.timeoutMs} ms`)),
        this.options.etcd.timeoutMs,
      );
    });
    try {
      return await Promise.race([run(), timeout]);
    } catch (error) {
      if (error instanceof ElectdError) throw error;
      throw unavailable(`etcd is unavailable: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Resolves once the watch has delivered `revision`, or the store closed, or the deadline
   * passed: the change is committed either way, and a watch that is reconnecting must not
   * hold the answer longer than any other etcd call would.
   */
  delivered(revision: bigint): Promise<void> {
    if (this.revision >= revision || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.options.etcd.timeoutMs);
      this.waiting.push({
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  // ---- The mirror ----

  private async load(): Promise<void> {
    const state = await this.read();
    for (const { election, revision } of state.elections) this.keep(election, revision);
    for (const session of state.sessions) this.sessions.set(session.id, session);
    this.revision = state.revision;
    this.watch();
  }

  /** Every election and session, read at one revision (the pages add up to one state). */
  private async read(): Promise<{
    revision: bigint;
    elections: Current[];
    sessions: EtcdSession[];
  }> {
    const elections: Current[] = [];
    const sessions: EtcdSession[] = [];
    let revision: string | undefined;
    for (const part of ["e/", "s/"] as const) {
      let from = this.keys.range(part).key;
      for (;;) {
        const read = await this.call(() =>
          this.client.kv.range({
            key: from,
            range_end: this.keys.range(part).range_end,
            limit: PAGE,
            ...(revision === undefined ? {} : { revision }),
          }),
        );
        revision ??= read.header.revision;
        for (const kv of read.kvs) {
          const key = this.keys.parse(kv.key);
          if (key?.kind === "election") {
            elections.push({ election: decode(key.name, kv), revision: kv.mod_revision });
          } else if (key?.kind === "session") sessions.push(decodeSession(key.id, kv));
        }
        const last = read.kvs.at(-1);
        if (!read.more || !last) break;
        from = Buffer.concat([last.key, Buffer.from([0])]);
      }
    }
    return { revision: BigInt(revision ?? "0"), elections, sessions };
  }

  private watch(): void {
    this.client
      .watch()
      .prefix(this.options.etcd.prefix)
      .startRevision(String(this.revision + 1n))
      .create()
      .then((watcher) => {
        if (this.closed) {
          watcher.cancel().catch(() => {});
          return;
        }
        this.watcher = watcher;
        watcher.on("data", (response) => {
          for (const event of response.events) {
            if (event.type === "Put") this.put(event.kv);
            else this.remove(event.kv);
          }
          this.heard.clear();
          this.advance(BigInt(response.header.revision));
        });
        // etcd3 resumes a watch from its last revision after a disconnection by itself;
        // etcd cancels one whose revision was compacted away meanwhile.
        watcher.on("error", (error: Error) => {
          this.options.onWatchError?.(error);
          if (this.watcher === watcher) this.resync();
        });
      })
      .catch(() => {
        // etcd3 retries the watch itself; a failure to create it means the store is closing.
      });
  }

  /**
   * After a watch was cancelled (its revision compacted): reads everything again, tells
   * listeners what changed in between as if they had heard it, and watches from there.
   * Retried with backoff until etcd answers.
   */
  private resync(delayMs = 100): void {
    const watcher = this.watcher;
    this.watcher = undefined;
    watcher?.cancel().catch(() => {});
    if (this.closed) return;
    this.read().then(
      (state) => {
        if (this.closed) return;
        const names = new Set<string>();
        for (const { election, revision } of state.elections) {
          names.add(election.name);
          const before = this.mirror.get(election.name);
          this.keep(election, revision);
          if (before?.version !== election.version) this.publish(election);
        }
        for (const before of [...this.mirror.values()]) {
          if (names.has(before.name)) continue;
          this.forget(before);
          this.publish(deletedElection(before, Date.now()));
        }
        const live = new Map(state.sessions.map((session) => [session.id, session]));
        for (const id of [...this.sessions.keys()]) {
          if (!live.has(id)) this.remove(this.keys.session(id));
        }
        for (const [id, session] of live) this.sessions.set(id, session);
        // Bindings deleted in between cannot be read any more: an owner whose session is
        // gone is one.
        for (const election of this.mirror.values()) {
          for (const session of new Set(election.owners.values())) {
            if (live.has(session)) continue;
            for (const listener of this.goneListeners) {
              listener({ session, election: election.name });
            }
          }
        }
        this.revision = state.revision;
        this.advance(state.revision);
        this.watch();
      },
      () => {
        setTimeout(() => this.resync(Math.min(delayMs * 2, 5000)), delayMs).unref();
      },
    );
  }

  private put(kv: IKeyValue): void {
    const key = this.keys.parse(kv.key);
    if (key?.kind === "election") {
      const election = decode(key.name, kv);
      this.keep(election, kv.mod_revision);
      this.publish(election);
    } else if (key?.kind === "session") {
      this.sessions.set(key.id, decodeSession(key.id, kv));
    } else if (key?.kind === "history") {
      this.heard.set(key.name, decodeHistory(key.version, kv.value.toString()));
    }
  }

  private remove(raw: Buffer | IKeyValue): void {
    const key = this.keys.parse(Buffer.isBuffer(raw) ? raw : raw.key);
    if (key?.kind === "election") {
      const before = this.mirror.get(key.name);
      if (!before) return;
      this.forget(before);
      // The deleting transaction wrote the deletion's record just before: its time.
      const at = this.heard.get(key.name)?.at ?? Date.now();
      this.publish(deletedElection(before, at));
    } else if (key?.kind === "session") {
      this.sessions.delete(key.id);
      for (const listener of this.goneListeners) listener({ session: key.id });
    } else if (key?.kind === "binding") {
      for (const listener of this.goneListeners) {
        listener({ session: key.session, election: key.name });
      }
    }
  }

  /** Puts an election in the mirror, keeping the candidates count. */
  private keep(election: Election, revision: string): void {
    const before = this.mirror.get(election.name);
    this.candidates += headcount(election.state) - (before ? headcount(before.state) : 0);
    this.mirror.set(election);
    this.revisions.set(election.name, revision);
  }

  private forget(election: Election): void {
    this.candidates -= headcount(election.state);
    this.mirror.delete(election.name);
    this.revisions.delete(election.name);
  }

  private publish(election: Election): void {
    for (const listener of this.listeners) listener(election);
  }

  private advance(revision: bigint): void {
    if (revision > this.revision) this.revision = revision;
    if (this.waiting.length === 0) return;
    const still = this.waiting.filter((waiter) => {
      if (waiter.revision > this.revision) return true;
      waiter.resolve();
      return false;
    });
    this.waiting.splice(0, this.waiting.length, ...still);
  }
}

/** The key layout under the prefix. */
export class Keys {
  constructor(readonly prefix: string) {}

  election(name: string): Buffer {
    return Buffer.from(`${this.prefix}e/${name}`);
  }
  tombstone(name: string): Buffer {
    return Buffer.from(`${this.prefix}t/${name}`);
  }
  session(id: string): Buffer {
    return Buffer.from(`${this.prefix}s/${id}`);
  }
  expiry(session: string): Buffer {
    return Buffer.from(`${this.prefix}x/${session}`);
  }
  binding(session: string, name: string): Buffer {
    return Buffer.from(`${this.prefix}b/${session}/${name}`);
  }
  /** One history record; versions zero-padded so that key order is version order. */
  history(name: string, version: number): Buffer {
    return Buffer.from(`${this.prefix}h/${name}\u0000${String(version).padStart(16, "0")}`);
  }
  /** Every history record of `name` (names hold no NUL, so no other name's fall inside). */
  historyRange(name: string): { key: Buffer; range_end: Buffer } {
    return {
      key: Buffer.from(`${this.prefix}h/${name}\u0000`),
      range_end: Buffer.from(`${this.prefix}h/${name}\u0001`),
    };
  }
  meta(what: "elections" | "sessions"): Buffer {
    return Buffer.from(`${this.prefix}m/${what}`);
  }
  /** Every key starting with `part` under the prefix, as a range. */
  range(part: string): { key: Buffer; range_end: Buffer } {
    const key = Buffer.from(`${this.prefix}${part}`);
    const end = Buffer.from(key);
    // The prefix's successor: its last byte plus one (every part ends in "/").
    end[end.length - 1] = (end[end.length - 1] as number) + 1;
    return { key, range_end: end };
  }

  parse(
    raw: Buffer,
  ):
    | { kind: "election"; name: string }
    | { kind: "session"; id: string }
    | { kind: "binding"; session: string; name: string }
    | { kind: "expiry"; id: string }
    | { kind: "history"; name: string; version: number }
    | undefined {
    const key = raw.toString();
    if (!key.startsWith(this.prefix)) return undefined;
    const rest = key.slice(this.prefix.length);
    const body = rest.slice(2);
    switch (rest.slice(0, 2)) {
      case "e/":
        return { kind: "election", name: body };
      case "s/":
        return { kind: "session", id: body };
      case "x/":
        return { kind: "expiry", id: body };
      case "h/": {
        const nul = body.lastIndexOf("\u0000");
        if (nul < 0) return undefined;
        return { kind: "history", name: body.slice(0, nul), version: Number(body.slice(nul + 1)) };
      }
      case "b/": {
        // Session ids are base64url: the first "/" ends the id, the rest is the name.
        const slash = body.indexOf("/");
        if (slash < 0) return undefined;
        return { kind: "binding", session: body.slice(0, slash), name: body.slice(slash + 1) };
      }
      default:
        return undefined;
    }
  }
}

function clientOptions(etcd: EtcdOptions): IOptions {
  const tls = etcd.cacert || etcd.cert;
  return {
    hosts: [...etcd.endpoints],
    ...(tls
      ? {
          credentials: {
            rootCertificate: etcd.cacert ? readFileSync(etcd.cacert) : Buffer.alloc(0),
            ...(etcd.cert && etcd.key
              ? { certChain: readFileSync(etcd.cert), privateKey: readFileSync(etcd.key) }
              : {}),
          },
        }
      : {}),
    ...(etcd.username !== undefined && etcd.password !== undefined
      ? { auth: { username: etcd.username, password: etcd.password } }
      : {}),
    // Streams (watch, keep-alive) live as long as the server; unary calls get the deadline.
    defaultCallOptions: (context) =>
      context.isStream ? {} : { deadline: Date.now() + etcd.timeoutMs },
    // etcd3's defaults wait up to 30 s before a broken watch tries again and shut a failed
    // member out for 5 s: electd must serve again within about a second of etcd's return.
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: 1000,
          breaker: new ConsecutiveBreaker(3),
        }),
      watchBackoff: new ExponentialBackoff({
        initialDelay: 100,
        maxDelay: 1000,
        // etcd3 types this as the backoff itself, yet calls next() on it: the factory.
      }) as unknown as IBackoff<unknown>,
    },
  };
}

/** Holds when `key` was last changed at `revision` (0 or undefined: it does not exist). */
function compareMod(key: Buffer, revision: IKeyValue | string | undefined) {
  return {
    key,
    target: "Mod" as const,
    result: "Equal" as const,
    mod_revision: (typeof revision === "string" ? revision : revision?.mod_revision) ?? 0,
  };
}

function encode(election: Election): Buffer {
  const record = historyRecord(election);
  const stored: Stored = {
    tags: [...election.tags],
    term: election.state.term.toString(),
    leader: election.state.leader,
    candidates: [...election.state.candidates],
    owners: [...election.owners],
    ...(election.entrants === undefined ? {} : { entrants: [...election.entrants] }),
    version: election.version,
    ...(election.cause === undefined ? {} : { cause: election.cause }),
    ...(record === undefined ? {} : { change: encodeHistory(record) }),
  };
  return Buffer.from(JSON.stringify(stored));
}

function decode(name: string, kv: IKeyValue): Election {
  const stored = JSON.parse(kv.value.toString()) as Stored;
  return {
    name,
    tags: stored.tags,
    state: { term: BigInt(stored.term), leader: stored.leader, candidates: stored.candidates },
    owners: stored.owners.length === 0 ? noOwners : new Map(stored.owners),
    ...(stored.entrants === undefined || stored.entrants.length === 0
      ? {}
      : { entrants: new Map(stored.entrants) }),
    version: stored.version,
    ...(stored.cause === undefined ? {} : { cause: stored.cause }),
    ...(stored.change === undefined
      ? {}
      : { change: changeOf(decodeHistory(stored.version, stored.change)) }),
  };
}

/** The change part of a history record. */
function changeOf(record: HistoryRecord): Change {
  const { cause, candidates, at, before, by } = record;
  return { cause, candidates, at, before, ...(by === undefined ? {} : { by }) };
}

function encodeTombstone(stone: Tombstone): Buffer {
  return Buffer.from(JSON.stringify({ term: stone.term.toString(), version: stone.version }));
}

function decodeTombstone(kv: IKeyValue): Tombstone {
  const stored = JSON.parse(kv.value.toString()) as { term: string; version: number };
  return { term: BigInt(stored.term), version: stored.version };
}

export function encodeSession(session: { ttlMs: number; closing?: boolean }): Buffer {
  return Buffer.from(JSON.stringify({ ttlMs: session.ttlMs, closing: session.closing === true }));
}

function decodeSession(id: string, kv: IKeyValue): EtcdSession {
  const stored = JSON.parse(kv.value.toString()) as { ttlMs: number; closing: boolean };
  return {
    id,
    ttlMs: stored.ttlMs,
    closing: stored.closing,
    lease: kv.lease,
    revision: kv.mod_revision,
  };
}

export function sessionGone(id: string): ElectdError {
  return new ElectdError(
    "not_found",
    `session ${JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}...` : id)} not found (it is unknown or was closed or expired)`,
  );
}

function conflicted(): ElectdError {
  return unavailable("too many concurrent changes to this election; retry");
}
