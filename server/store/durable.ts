// The durable embedded store (API.md section 6): elections and sessions in one SQLite file
// under DATA_DIR, through better-sqlite3. A mutation is acknowledged only after the
// transaction holding it has been committed and fsynced, so `kill -9` at any moment loses
// nothing that a client saw. docs/durability.md explains the design.
//
// Shape: the current elections live in memory (as in the memory store) and `decide` runs
// on them; JavaScript runs each call to completion, so mutations of one election are
// serialised for free. Every change made in one event-loop turn is staged into one batch,
// and the batch is written in one transaction when the turn ends (group commit): with more
// concurrent clients each fsync carries more changes. Only after the commit are the new
// states published to watchers, in commit order, and the callers' promises resolved.
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import Database from "better-sqlite3";
import {
  commit,
  type Decision,
  deletedElection,
  type Election,
  headcount,
  historyRecord,
  newElection,
  noOwners,
  type Tombstone,
} from "../election/change.js";
import { shuttingDown, unavailable } from "../errors.js";
import { ElectionIndex } from "./elections.js";
import {
  type ChangeListener,
  type CreateResult,
  DEFAULT_HISTORY_PER_ELECTION,
  decodeHistory,
  encodeHistory,
  type HistoryQuery,
  type ListFilter,
  type ListQuery,
  type LocalStore,
  overTotal,
  type SessionRecord,
  type StoreLimits,
  StoreStartError,
  type UpdateResult,
} from "./store.js";

export interface DurableStoreOptions extends StoreLimits {
  /** Directory holding the data file and the lock file; created if missing. */
  readonly dataDir: string;
  /**
   * How long a commit waits while something else writes the data file (default 50 ms).
   * electd never does (one server per directory); only an outside tool such as the
   * sqlite3 shell can. The wait blocks the event loop, so it must stay short: after it the
   * commit fails as unavailable ("the data file is locked by another process; retry").
   */
  readonly busyTimeoutMs?: number;
  /**
   * Hears every commit that failed, with what its callers are not told (they get only the
   * cause, never the server's paths): the file and SQLite's code and message. For the log.
   */
  readonly onCommitError?: (failure: CommitFailure) => void;
}

export interface CommitFailure {
  /** One line for the log: the file, SQLite's code and message, how many changes. */
  readonly message: string;
  readonly file: string;
  readonly code: string | undefined;
  readonly error: unknown;
}

/** The schema this code writes. Bump it with a migration when the tables change. */
export const SCHEMA_VERSION = 1;
export const DATA_FILE = "electd.db";
export const LOCK_FILE = "electd.lock";
/** Where a new data file is written before it is renamed to DATA_FILE. */
export const NEW_DATA_FILE = "electd.db.new";

const SQLITE_HEADER = Buffer.from("SQLite format 3\0", "latin1");
const MAX_TERM = 2n ** 64n - 1n;

const SCHEMA = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE elections (
    name TEXT PRIMARY KEY,
    tags TEXT NOT NULL,        -- JSON array of strings
    term TEXT NOT NULL,        -- uint64 in decimal: SQLite integers stop at 2^63-1
    leader TEXT NOT NULL,
    candidates TEXT NOT NULL,  -- JSON array of strings, queue order
    owners TEXT NOT NULL,      -- JSON object: candidate -> session id
    version INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE sessions (id TEXT PRIMARY KEY, ttl_ms INTEGER NOT NULL) STRICT;
`;

/**
 * Deleted elections' last term and version, so a name created again never reuses a term.
 * Added after schema version 1 without a version bump: it is created where missing, and an
 * electd that does not know it ignores it.
 */
const TOMBSTONES = `
  CREATE TABLE IF NOT EXISTS tombstones (
    name TEXT PRIMARY KEY,
    term TEXT NOT NULL,
    version INTEGER NOT NULL
  ) STRICT;
`;

/**
 * Each election's last HISTORY_PER_ELECTION changes (API.md section 7), written in the
 * transaction of the change itself. Added like the tombstones: created where missing.
 */
const HISTORY = `
  CREATE TABLE IF NOT EXISTS history (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    record TEXT NOT NULL,      -- JSON: cause, candidates, at, term and leader before and after
    PRIMARY KEY (name, version)
  ) STRICT, WITHOUT ROWID;
`;

/** Changes made in one event-loop turn, written in one transaction. */
interface Batch {
  /** Latest state of each election changed in this batch: one row write each. */
  readonly elections: Map<string, Election>;
  /** Elections deleted in this batch (and not created again in it), with their tombstones. */
  readonly deleted: Map<string, Tombstone>;
  /** Names created again in this batch from a tombstone: the tombstone goes. */
  readonly revived: Set<string>;
  /** Sessions to write (record) or delete (null), last one wins. */
  readonly sessions: Map<string, SessionRecord | null>;
  /** Every new state in the order it was decided: what watchers hear after the commit. */
  readonly events: Election[];
  readonly done: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

interface ElectionRow {
  name: string;
  tags: string;
  term: string;
  leader: string;
  candidates: string;
  owners: string;
  /** JSON object: candidate -> identity that entered it; null (or absent) when none. */
  entrants?: string | null;
  version: number;
}

/**
 * Opens DATA_DIR, refusing (StoreStartError) a directory another server holds, a damaged
 * or foreign data file, or one written by a newer electd. Never resets data.
 */
export function openDurableStore(options: DurableStoreOptions): LocalStore {
  const dataDir = resolve(options.dataDir);
  const file = join(dataDir, DATA_FILE);
  try {
    const created = mkdirSync(dataDir, { recursive: true });
    // A new directory survives power loss only once the entry in its parent is fsynced.
    for (let dir = dataDir; created !== undefined; dir = dirname(dir)) {
      fsyncPath(dirname(dir));
      if (dir === created) break;
    }
  } catch (error) {
    throw new StoreStartError(
      `electd runs as ${currentUser()} and cannot create the data directory ${dataDir}: ${message(error)}; create it for that user, or set --data-dir / DATA_DIR`,
    );
  }
  const denied = accessProblem(dataDir);
  if (denied) throw denied;
  const lock = lockDataDir(dataDir);
  let found: Contents;
  let db: Database.Database;
  try {
    found = inspectDataFile(file, dataDir);
    db = openDataFile(file, options.busyTimeoutMs ?? 50);
  } catch (error) {
    lock.close();
    throw startFailure(file, dataDir, error);
  }

  /** What clients may see: only committed states (see `get`). */
  const committed = found.elections;
  /**
   * States staged in the open batch and not committed yet (null: deleted). Together with
   * `committed` this is what `decide` runs on.
   */
  let staged = new Map<string, Election | null>();
  const current = (name: string): Election | undefined => {
    const state = staged.get(name);
    return state === null ? undefined : (state ?? committed.get(name));
  };
  /** How many elections exist counting the staged creations and deletions. */
  let stagedSize = committed.size;
  /** Candidates in all committed elections, and counting the staged changes. */
  let committedCandidates = 0;
  for (const election of committed.values()) committedCandidates += headcount(election.state);
  let stagedCandidates = committedCandidates;
  const sessions = found.sessions;
  const listeners = new Set<ChangeListener>();
  let open: Batch | undefined;
  let closed = false;

  const upsertElection = db.prepare(`
    INSERT INTO elections (name, tags, term, leader, candidates, owners, entrants, version)
    VALUES (@name, @tags, @term, @leader, @candidates, @owners, @entrants, @version)
    ON CONFLICT (name) DO UPDATE SET tags = excluded.tags, term = excluded.term,
      leader = excluded.leader, candidates = excluded.candidates, owners = excluded.owners,
      entrants = excluded.entrants, version = excluded.version`);
  const upsertSession = db.prepare(
    "INSERT INTO sessions (id, ttl_ms) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET ttl_ms = excluded.ttl_ms",
  );
  const deleteSessionRow = db.prepare("DELETE FROM sessions WHERE id = ?");
  const deleteElectionRow = db.prepare("DELETE FROM elections WHERE name = ?");
  const upsertTombstone = db.prepare(`
    INSERT INTO tombstones (name, term, version) VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET term = excluded.term, version = excluded.version`);
  const deleteTombstone = db.prepare("DELETE FROM tombstones WHERE name = ?");
  const readTombstone = db.prepare("SELECT term, version FROM tombstones WHERE name = ?");
  const kept = options.historyPerElection ?? DEFAULT_HISTORY_PER_ELECTION;
  const insertHistory = db.prepare(
    "INSERT OR REPLACE INTO history (name, version, record) VALUES (?, ?, ?)",
  );
  const pruneHistory = db.prepare("DELETE FROM history WHERE name = ? AND version <= ?");
  const oldestFirst = db.prepare(
    "SELECT version, record FROM history WHERE name = ? AND version > ? ORDER BY version ASC LIMIT ?",
  );
  const newestFirst = db.prepare(
    "SELECT version, record FROM history WHERE name = ? AND version < ? ORDER BY version DESC LIMIT ?",
  );
  const write = db.transaction((batch: Batch) => {
    for (const [name, tombstone] of batch.deleted) {
      deleteElectionRow.run(name);
      upsertTombstone.run(name, tombstone.term.toString(), tombstone.version);
    }
    for (const election of batch.elections.values()) upsertElection.run(toRow(election));
    for (const name of batch.revived) deleteTombstone.run(name);
    for (const [id, session] of batch.sessions) {
      if (session === null) deleteSessionRow.run(id);
      else upsertSession.run(id, session.ttlMs);
    }
    // Every change of the batch, in order; a deletion keeps only its own record.
    for (const election of kept > 0 ? batch.events : []) {
      const record = historyRecord(election);
      if (!record) continue;
      pruneHistory.run(
        election.name,
        election.deleted ? record.version - 1 : record.version - kept,
      );
      insertHistory.run(election.name, record.version, encodeHistory(record));
    }
  });

  function stage(): Batch {
    if (closed) throw shuttingDown();
    if (open) return open;
    let resolveBatch = () => {};
    let rejectBatch: (error: unknown) => void = () => {};
    const done = new Promise<void>((res, rej) => {
      resolveBatch = res;
      rejectBatch = rej;
    });
    // Nobody may be left with an unhandled rejection if every caller already went away.
    done.catch(() => {});
    const batch: Batch = {
      elections: new Map(),
      deleted: new Map(),
      revived: new Set(),
      sessions: new Map(),
      events: [],
      done,
      resolve: resolveBatch,
      reject: rejectBatch,
    };
    open = batch;
    // setImmediate runs after the I/O callbacks of this turn, so every request already
    // read from the sockets joins this commit.
    setImmediate(flush);
    return batch;
  }

  function stageElection(election: Election, revived = false): Promise<void> {
    const batch = stage();
    const before = current(election.name);
    if (before === undefined) stagedSize++;
    stagedCandidates += headcount(election.state) - (before ? headcount(before.state) : 0);
    staged.set(election.name, election);
    batch.elections.set(election.name, election);
    batch.deleted.delete(election.name);
    if (revived) batch.revived.add(election.name);
    batch.events.push(election);
    return batch.done;
  }

  function stageDeletion(last: Election): Promise<void> {
    const batch = stage();
    stagedSize--;
    stagedCandidates -= headcount(last.state);
    staged.set(last.name, null);
    batch.elections.delete(last.name);
    batch.revived.delete(last.name);
    batch.deleted.set(last.name, { term: last.state.term, version: last.version });
    batch.events.push(last);
    return batch.done;
  }

  /** The tombstone a deleted election left, staged or committed. */
  function tombstoneOf(name: string): Tombstone | undefined {
    const pending = open?.deleted.get(name);
    if (pending) return pending;
    const row = readTombstone.get(name) as { term: string; version: number } | undefined;
    return row && { term: BigInt(row.term), version: row.version };
  }

  function flush(): void {
    const batch = open;
    if (!batch) return;
    open = undefined;
    try {
      // Synchronous: the event loop waits for the fsync, so no state can be staged on
      // top of a batch whose fate is still unknown.
      write(batch);
    } catch (error) {
      // Nothing of this batch is on disk: forget it, so later calls decide on what is.
      staged = new Map();
      stagedSize = committed.size;
      stagedCandidates = committedCandidates;
      batch.reject(unavailable(`the change could not be saved: ${commitCause(error)}`));
      const code = errorCode(error);
      const changes = batch.events.length + batch.sessions.size + batch.deleted.size;
      options.onCommitError?.({
        message: `could not save ${changes} change(s) to ${file}: ${code ?? "error"}: ${message(error)}`,
        file,
        code,
        error,
      });
      return;
    }
    staged = new Map();
    for (const election of batch.events) {
      const before = committed.get(election.name);
      committedCandidates -= before ? headcount(before.state) : 0;
      if (election.deleted) committed.delete(election.name);
      else {
        committed.set(election);
        committedCandidates += headcount(election.state);
      }
      for (const listener of listeners) listener(election);
    }
    batch.resolve();
  }

  /**
   * A call that changes nothing still answers with the state it saw. When that state is
   * staged but not yet committed, the answer waits for the commit: otherwise a crash
   * could take back a term the client was already shown.
   */
  async function settled(name: string): Promise<void> {
    if (open && staged.has(name)) await open.done;
  }

  return {
    kind: "durable",
    async create(name: string, tags: readonly string[], by?: string): Promise<CreateResult> {
      const existing = current(name);
      if (existing) {
        await settled(name);
        return { ok: true, election: existing, created: false };
      }
      if (stagedSize >= options.maxElections) {
        return { ok: false, limit: "elections", max: options.maxElections };
      }
      const tombstone = tombstoneOf(name);
      const election = newElection(name, tags, tombstone, Date.now(), by);
      await stageElection(election, tombstone !== undefined);
      return { ok: true, election, created: true };
    },
    // Reads answer from the committed view rather than waiting for the open batch: a state
    // that is not on disk yet must never be shown (a crash would make its term go
    // backwards), and a committed one is always at least as new as anything acknowledged,
    // since acknowledgements wait for the commit too.
    async get(name: string) {
      return committed.get(name);
    },
    async update(
      name: string,
      decide: (e: Election) => Decision,
    ): Promise<UpdateResult | undefined> {
      const before = current(name);
      if (!before) return undefined;
      const decision = decide(before);
      if (!decision.ok) return decision;
      if (!decision.changed) {
        await settled(name);
        return { ok: true, election: before, changed: false };
      }
      const refusal = overTotal(options, stagedCandidates, before.state, decision.state);
      if (refusal) return refusal;
      const next = commit(before, decision, Date.now());
      await stageElection(next);
      return { ok: true, election: next, changed: true };
    },
    async delete(name: string, by?: string) {
      const before = current(name);
      if (!before) return undefined;
      const last = deletedElection(before, Date.now(), by);
      await stageDeletion(last);
      return last;
    },
    // Committed rows only: the open batch's are not on disk yet.
    async history(name: string, query: HistoryQuery) {
      const rows = (
        query.order === "oldest"
          ? oldestFirst.all(name, query.from ?? 0, query.limit)
          : newestFirst.all(name, query.from ?? Number.MAX_SAFE_INTEGER, query.limit)
      ) as { version: number; record: string }[];
      return rows.map((row) => decodeHistory(row.version, row.record));
    },
    async list(query: ListQuery) {
      return committed.list(query);
    },
    snapshot: (filter: ListFilter) => committed.snapshot(filter),
    size: () => committed.size,
    subscribe(listener: ChangeListener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async putSession(session: SessionRecord) {
      const batch = stage();
      batch.sessions.set(session.id, session);
      await batch.done;
      sessions.set(session.id, session);
    },
    async deleteSession(id: string) {
      const batch = stage();
      batch.sessions.set(id, null);
      await batch.done;
      sessions.delete(id);
    },
    async listSessions() {
      return [...sessions.values()];
    },
    async close() {
      if (closed) return;
      flush();
      closed = true;
      listeners.clear();
      db.close();
      lock.close();
    },
  };
}

/**
 * One server per DATA_DIR: an exclusive lock on a separate empty SQLite file, held for the
 * process lifetime. The kernel drops it when the process dies, even by kill -9, so a crash
 * never leaves a stale lock. Keeping the lock off the data file lets `sqlite3 .backup`
 * read the data file while the server runs.
 */
function lockDataDir(dataDir: string): Database.Database {
  const path = join(dataDir, LOCK_FILE);
  let lock: Database.Database | undefined;
  try {
    lock = new Database(path, { timeout: 0 });
    lock.pragma("locking_mode = EXCLUSIVE");
    // No journal file next to it: this database never holds anything.
    lock.pragma("journal_mode = MEMORY");
    // Never committed: the open transaction is what holds the lock. Nothing is written.
    lock.exec("BEGIN EXCLUSIVE");
    return lock;
  } catch (error) {
    lock?.close();
    if (errorCode(error) === "SQLITE_BUSY") {
      throw new StoreStartError(
        `another electd is already using the data directory ${dataDir} (${path} is locked): stop it, or give this server its own --data-dir / DATA_DIR`,
      );
    }
    throw (
      accessProblem(dataDir) ??
      new StoreStartError(
        `cannot lock the data directory with ${path}: ${message(error)} (the lock file holds no data and may be deleted while electd is stopped)`,
      )
    );
  }
}

/**
 * A file that is not SQLite at all is refused before SQLite opens it. So is an empty or
 * cut-short one: electd writes a new data file complete before it takes this name.
 */
function refuseForeignFile(file: string, dataDir: string): void {
  const size = statSync(file).size;
  if (size === 0) throw damaged(file, dataDir, "it is empty (0 bytes)");
  const head = Buffer.alloc(SQLITE_HEADER.length);
  const fd = openSync(file, "r");
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!head.equals(SQLITE_HEADER)) throw damaged(file, dataDir, "it is not a SQLite database");
}

/** What a data file holds, by name and by id. */
interface Contents {
  readonly elections: ElectionIndex;
  readonly sessions: Map<string, SessionRecord>;
}

/**
 * Checks and reads the data file through a read-only connection. Read-only matters: a
 * read-write connection folds the write-ahead log into the file when it closes, so even a
 * refusal would change a damaged file and its log. This one leaves both as they were.
 * A missing file is a new store: it is created here, complete, and found empty.
 */
function inspectDataFile(file: string, dataDir: string): Contents {
  if (!existsSync(file)) {
    // Without its data file a log is a fragment of something lost: SQLite would apply it
    // to the new file.
    const log = `${file}-wal`;
    if (existsSync(log) && statSync(log).size > 0) {
      throw damaged(file, dataDir, `it is missing, but its log ${log} is there`);
    }
    createDataFile(dataDir);
    return { elections: new ElectionIndex(), sessions: new Map() };
  }
  refuseForeignFile(file, dataDir);
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const check = db.pragma("quick_check") as { quick_check: string }[];
    const problems = check.map((r) => r.quick_check).filter((r) => r !== "ok");
    if (problems.length > 0) {
      throw damaged(file, dataDir, `integrity check failed: ${problems.slice(0, 3).join("; ")}`);
    }
    const tables = new Set(
      (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as {
          name: string;
        }[]
      ).map((t) => t.name),
    );
    if (tables.size === 0) throw damaged(file, dataDir, "it holds no tables");
    if (!tables.has("meta")) {
      throw new StoreStartError(
        `${file} is a SQLite database but not an electd data file (it has no meta table): point --data-dir / DATA_DIR at another directory, or move ${dataDir} aside`,
      );
    }
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
      | { value: string }
      | undefined;
    const version = Number(row?.value);
    if (!row || !/^\d+$/.test(row.value) || version < 1) {
      throw damaged(file, dataDir, "its schema_version is missing or unreadable");
    }
    if (version > SCHEMA_VERSION) {
      throw new StoreStartError(
        `${file} has schema version ${version}, newer than this electd understands (${SCHEMA_VERSION}): run a newer electd on it, or restore a backup made by this version`,
      );
    }
    for (const table of ["elections", "sessions"]) {
      if (!tables.has(table)) throw damaged(file, dataDir, `its ${table} table is missing`);
    }
    // Sessions first: a loaded binding then shares the sessions table's copy of its id.
    const sessions = new Map<string, SessionRecord>();
    const sessionRows = db.prepare("SELECT id, ttl_ms FROM sessions").iterate();
    for (const row of sessionRows as Iterable<{ id: string; ttl_ms: number }>) {
      sessions.set(row.id, { id: row.id, ttlMs: row.ttl_ms });
    }
    const ids = new Map([...sessions.keys()].map((id) => [id, id]));
    // Row by row into the index: loading must not need more heap than running did, and a
    // list of every row read (each holding its queue and bindings as JSON text) next to
    // the elections built from them would need more than twice as much.
    const elections = new ElectionIndex();
    for (const row of db.prepare("SELECT * FROM elections").iterate() as Iterable<ElectionRow>) {
      try {
        elections.set(fromRow(row, ids));
      } catch (error) {
        throw damaged(file, dataDir, `election "${row.name}": ${message(error)}`);
      }
    }
    return { elections, sessions };
  } finally {
    db.close();
  }
}

/**
 * Writes a new data file under another name, fsyncs it and renames it into place, then
 * fsyncs the directory: electd.db never exists empty or half made, so one that is was
 * damaged after electd wrote it, and is refused rather than taken for a new store.
 */
function createDataFile(dataDir: string): void {
  const temp = join(dataDir, NEW_DATA_FILE);
  // A leftover of a crash during creation never holds more than the schema.
  rmSync(temp, { force: true });
  rmSync(`${temp}-journal`, { force: true });
  // The default rollback journal: each commit lands in the file itself, so the file alone
  // is complete once closed. openDataFile switches the renamed file to WAL.
  const db = new Database(temp);
  try {
    db.pragma("synchronous = FULL");
    db.pragma("fullfsync = ON");
    db.transaction(() => {
      db.exec(SCHEMA);
      db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(
        String(SCHEMA_VERSION),
      );
    })();
  } finally {
    db.close();
  }
  fsyncPath(temp);
  renameSync(temp, join(dataDir, DATA_FILE));
  fsyncPath(dataDir);
}

function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The read-write connection, after inspection, with the settings durability relies on. */
function openDataFile(file: string, timeout: number): Database.Database {
  const db = new Database(file, { timeout, fileMustExist: true });
  try {
    // WAL: a commit is one sequential append plus one fsync, and readers (such as an
    // online backup) never block the writer. FULL: the WAL is fsynced at every commit,
    // so a commit survives power loss, not only a process crash.
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    // macOS fsync does not flush the drive's cache; F_FULLFSYNC does. No-op elsewhere.
    db.pragma("fullfsync = ON");
    db.pragma("checkpoint_fullfsync = ON");
    // The log is reused after each checkpoint; this only trims it after it grew large,
    // for example while a long backup kept the checkpoint from finishing.
    db.pragma("journal_size_limit = 67108864");
    db.exec(TOMBSTONES);
    db.exec(HISTORY);
    // Who entered each candidate: a column added after schema version 1 without a version
    // bump, where missing. An electd that does not know it leaves it alone.
    const columns = db.prepare("PRAGMA table_info(elections)").all() as { name: string }[];
    if (!columns.some((c) => c.name === "entrants")) {
      db.exec("ALTER TABLE elections ADD COLUMN entrants TEXT");
    }
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

function toRow(e: Election): ElectionRow {
  return {
    name: e.name,
    tags: JSON.stringify(e.tags),
    term: e.state.term.toString(),
    leader: e.state.leader,
    candidates: JSON.stringify(e.state.candidates),
    // An object built by fromEntries holds `__proto__` as its own key, which JSON keeps.
    owners: JSON.stringify(Object.fromEntries(e.owners)),
    entrants: e.entrants === undefined ? null : JSON.stringify(Object.fromEntries(e.entrants)),
    version: e.version,
  };
}

/**
 * Reads a row back, trusting nothing: a row that does not parse stops startup. Bindings
 * are keyed by the queue's own strings and name sessions by `sessions`' copy of each id
 * (when it has one), so that a loaded election holds each name once, as a running one
 * does, rather than again in every binding.
 */
function fromRow(row: ElectionRow, sessions: ReadonlyMap<string, string>): Election {
  if (!/^\d+$/.test(row.term) || BigInt(row.term) > MAX_TERM) {
    throw new Error(`term "${row.term}" is not a uint64`);
  }
  const tags = strings(JSON.parse(row.tags), "tags");
  const candidates = strings(JSON.parse(row.candidates), "candidates");
  const owners: unknown = JSON.parse(row.owners);
  if (typeof owners !== "object" || owners === null || Array.isArray(owners)) {
    throw new Error("owners is not an object");
  }
  // JSON.parse defines every key as the object's own, `__proto__` included.
  const bound = owners as Record<string, unknown>;
  strings(Object.values(bound), "owners");
  if (!Number.isSafeInteger(row.version) || row.version < 1) {
    throw new Error(`version ${row.version} is not a positive integer`);
  }
  const held = new Map<string, string>();
  for (const name of [row.leader, ...candidates]) {
    if (name === "" || !Object.hasOwn(bound, name)) continue;
    const session = bound[name] as string;
    held.set(name, sessions.get(session) ?? session);
  }
  const entrants = new Map<string, string>();
  if (typeof row.entrants === "string") {
    const recorded: unknown = JSON.parse(row.entrants);
    if (typeof recorded !== "object" || recorded === null || Array.isArray(recorded)) {
      throw new Error("entrants is not an object");
    }
    const by = recorded as Record<string, unknown>;
    strings(Object.values(by), "entrants");
    for (const name of [row.leader, ...candidates]) {
      if (name !== "" && Object.hasOwn(by, name)) entrants.set(name, by[name] as string);
    }
  }
  return {
    name: row.name,
    tags,
    state: { term: BigInt(row.term), leader: row.leader, candidates },
    owners: held.size === 0 ? noOwners : held,
    ...(entrants.size === 0 ? {} : { entrants }),
    version: row.version,
  };
}

function strings(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new Error(`${field} is not a list of strings`);
  }
  return value;
}

/** Why a commit failed, as its callers are told: without the server's paths. */
function commitCause(error: unknown): string {
  const code = errorCode(error) ?? "";
  if (code === "SQLITE_FULL") return "the disk is full";
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return "the data file is locked by another process; retry";
  }
  if (code.startsWith("SQLITE_READONLY") || code === "SQLITE_PERM") {
    return "the server may not write its data file";
  }
  if (code.startsWith("SQLITE_IOERR")) return "the disk reported an I/O error";
  if (code.startsWith("SQLITE_CORRUPT")) return "the data file is damaged";
  return "the data file could not be written";
}

/** Why startup failed, told as what the operator has to do about it. */
function startFailure(file: string, dataDir: string, error: unknown): StoreStartError {
  if (error instanceof StoreStartError) return error;
  const code = errorCode(error) ?? "";
  if (PERMISSION_ERRORS.has(code)) {
    return noAccess((error as NodeJS.ErrnoException).path ?? file, dataDir, error);
  }
  if (
    code.startsWith("SQLITE_READONLY") ||
    code.startsWith("SQLITE_CANTOPEN") ||
    code === "SQLITE_PERM"
  ) {
    // SQLite does not say which file it could not open or write; the file system does.
    const found = accessProblem(dataDir);
    if (found) return found;
    if (!code.startsWith("SQLITE_CANTOPEN")) return noAccess(file, dataDir, error);
  }
  if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
    return new StoreStartError(
      `${file} is locked by another process (such as a sqlite3 shell with a transaction open): end that transaction or process, then start electd again`,
    );
  }
  return damaged(file, dataDir, error);
}

const PERMISSION_ERRORS = new Set(["EACCES", "EPERM", "EROFS"]);

/**
 * The first file in DATA_DIR this process may not read and write, as a refusal. Checked
 * before SQLite opens anything: SQLite quietly opens a file it may not write read-only
 * and fails later with "attempt to write a readonly database" or "unable to open database
 * file", which reads like damage and would send the operator to move good data aside.
 * access(2) rather than a trial open: closing any descriptor of a file drops the locks
 * this process holds on it through another.
 */
function accessProblem(dataDir: string): StoreStartError | undefined {
  const files = [LOCK_FILE, DATA_FILE, `${DATA_FILE}-wal`, `${DATA_FILE}-shm`];
  for (const path of [dataDir, ...files.map((f) => join(dataDir, f))]) {
    const mode =
      path === dataDir
        ? constants.R_OK | constants.W_OK | constants.X_OK
        : constants.R_OK | constants.W_OK;
    try {
      accessSync(path, mode);
    } catch (error) {
      if (PERMISSION_ERRORS.has(errorCode(error) ?? "")) return noAccess(path, dataDir, error);
    }
  }
  return undefined;
}

/** A permission problem: the data is fine, the fix is ownership, modes or the mount. */
function noAccess(path: string, dataDir: string, cause: unknown): StoreStartError {
  if (errorCode(cause) === "EROFS") {
    return new StoreStartError(
      `${path} is on a read-only file system, and electd must write to ${dataDir}: mount it read-write (the data itself is not damaged)`,
    );
  }
  let owner = "";
  try {
    const stat = statSync(path);
    owner = `; it is owned by uid ${stat.uid}, group ${stat.gid}, mode ${(stat.mode & 0o7777).toString(8).padStart(4, "0")}`;
  } catch {
    // Not even visible: the message still names the path and the user.
  }
  const lockNote =
    path === join(dataDir, LOCK_FILE)
      ? " (the lock file holds no data: it may also be deleted while electd is stopped)"
      : "";
  return new StoreStartError(
    `permission denied: electd runs as ${currentUser()} and may not read and write ${path} (${message(cause)}${owner}): give that user read and write access to ${dataDir} and everything in it (chown or chmod), or run electd as the user that owns them${lockNote}; the data itself is not damaged`,
  );
}

function currentUser(): string {
  const uid = process.getuid?.();
  const id = uid === undefined ? "" : ` (uid ${uid})`;
  try {
    return `user ${userInfo().username}${id}`;
  } catch {
    return `uid ${uid}`; // no entry in the user database
  }
}

function damaged(file: string, dataDir: string, cause: unknown): StoreStartError {
  return new StoreStartError(
    `${file} is damaged or unreadable (${message(cause)}); electd will not start on it: restore ${DATA_FILE} from a backup, or move ${dataDir} aside to start with no elections`,
  );
}

/** SQLite's code (SQLITE_...) or the system's (EACCES, ...). */
function errorCode(error: unknown): string | undefined {
  if (error instanceof Database.SqliteError) return error.code;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
