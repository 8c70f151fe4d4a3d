// A data directory electd cannot trust stops startup with a message naming the file and
// what to do, and the file is left exactly as it was: never a silent reset. Also: a
// second server on the same DATA_DIR is refused while the first keeps serving.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, Http2SessionManager } from "@connectrpc/connect-node";
import Database from "better-sqlite3";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import {
  DATA_FILE,
  LOCK_FILE,
  NEW_DATA_FILE,
  openDurableStore,
} from "../../server/store/durable.js";
import { StoreStartError } from "../../server/store/store.js";
import { readableBuild } from "../support/bundle.js";
import { mount, umount } from "../support/mount.js";
import { root, runMain, type ServerProcess, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

function directory(): string {
  return tempDir("bad");
}

function startDurable(dataDir: string): Promise<ServerProcess> {
  return spawnServer(["--port", "0", "--store", "durable", "--data-dir", dataDir]);
}

/** SIGTERM, resolved with the exit code. */
function stop(server: ServerProcess): Promise<number | string> {
  server.child.kill("SIGTERM");
  return server.exited;
}

/**
 * Runs `sql` on the data file in WAL mode in another process, which is then killed by
 * SIGKILL right after committing: the change is only in the log.
 */
function crashAfter(file: string, sql: string): void {
  const crash = spawnSync(
    process.execPath,
    [
      "-e",
      `const db = new (require("better-sqlite3"))(${JSON.stringify(file)});
       db.pragma("journal_mode = WAL");
       db.prepare(${JSON.stringify(sql)}).run();
       process.kill(process.pid, "SIGKILL");`,
    ],
    { cwd: root },
  );
  assert.equal(crash.signal, "SIGKILL");
}

/** A data directory holding a real, cleanly closed store with some elections in it. */
async function populated(): Promise<string> {
  const dataDir = directory();
  const store = openDurableStore({ dataDir, maxElections: 10_000 });
  const tags = Array.from({ length: 8 }, (_, i) => `tag-${i}-${"x".repeat(40)}`);
  await Promise.all(Array.from({ length: 400 }, (_, i) => store.create(`election-${i}`, tags)));
  await store.close();
  return dataDir;
}

/** Made at the top level: removed when this file's tests end, not after the first test. */
const buildDir = tempDir("build");
let built: Promise<string> | undefined;
/** The server as built, in a directory any user may read; made once for this file. */
function readableBuilt(): Promise<string> {
  built ??= readableBuild(buildDir);
  return built;
}

/** Starts the real server on `dataDir`, expects a refusal, and that the file is untouched. */
async function expectRefusal(
  dataDir: string,
  pattern: RegExp,
  named = join(dataDir, DATA_FILE),
  as: { uid?: number; gid?: number } = {},
): Promise<string> {
  const file = join(dataDir, DATA_FILE);
  const log = `${file}-wal`;
  const before = readFileSync(file);
  const logBefore = existsSync(log) ? readFileSync(log) : undefined;
  // Another user runs a build any user may read: the checkout may be closed to them.
  const built = as.uid === undefined ? undefined : await readableBuilt();
  const { code, stderr, stdout } = await runMain(
    ["--store", "durable", "--data-dir", dataDir],
    as,
    built ? { built } : {},
  );
  assert.notEqual(code, 0, `electd started: ${stdout}`);
  assert.match(stderr, /^electd: /);
  assert.ok(stderr.includes(named), `message does not name ${named}: ${stderr}`);
  assert.match(stderr, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /, "a stack trace instead of a message");
  assert.ok(readFileSync(file).equals(before), "the data file was changed");
  if (logBefore) assert.ok(readFileSync(log).equals(logBefore), "the log was changed");
  return stderr;
}

describe("durable store refuses data it cannot trust", () => {
  it("refuses a data file that is not a SQLite database", async () => {
    const dataDir = directory();
    writeFileSync(join(dataDir, DATA_FILE), "these are not the elections you are looking for\n");
    await expectRefusal(dataDir, /not a SQLite database.*restore .* from a backup/);
  });

  it("refuses a truncated data file", async () => {
    const dataDir = await populated();
    const file = join(dataDir, DATA_FILE);
    truncateSync(file, Math.floor(readFileSync(file).length / 2));
    await expectRefusal(dataDir, /damaged or unreadable.*restore .* from a backup/);
  });

  it("refuses an empty data file instead of starting a new store on it", async () => {
    const dataDir = directory();
    writeFileSync(join(dataDir, DATA_FILE), "");
    await expectRefusal(dataDir, /damaged or unreadable \(it is empty.*restore .* from a backup/);
  });

  it("refuses a new data file cut short at any length", async () => {
    const made = directory();
    await openDurableStore({ dataDir: made, maxElections: 10 }).close();
    const bytes = readFileSync(join(made, DATA_FILE));
    const pageSize = bytes.readUInt16BE(16);
    const cuts = [0, 10, 100, pageSize - 1];
    for (let cut = pageSize; cut < bytes.length; cut += pageSize) cuts.push(cut);
    for (const cut of cuts) {
      const dataDir = directory();
      writeFileSync(join(dataDir, DATA_FILE), bytes.subarray(0, cut));
      assert.throws(
        () => openDurableStore({ dataDir, maxElections: 10 }),
        (error) => error instanceof StoreStartError && /damaged or unreadable/.test(error.message),
        `cut at ${cut} of ${bytes.length} bytes`,
      );
      assert.equal(readFileSync(join(dataDir, DATA_FILE)).length, cut);
    }
  });

  it("refuses a SQLite file without tables", async () => {
    const dataDir = directory();
    const db = new Database(join(dataDir, DATA_FILE));
    db.pragma("journal_mode = WAL");
    db.close();
    await expectRefusal(dataDir, /damaged or unreadable \(it holds no tables\)/);
  });

  it("refuses a log whose data file is missing", async () => {
    const dataDir = await populated();
    const file = join(dataDir, DATA_FILE);
    // A writer killed after committing: its last change is only in the log.
    crashAfter(file, "DELETE FROM elections");
    rmSync(file);
    const log = readFileSync(`${file}-wal`);
    const { code, stderr } = await runMain(["--store", "durable", "--data-dir", dataDir]);
    assert.notEqual(code, 0);
    assert.match(stderr, /electd\.db is damaged or unreadable \(it is missing, but its log/);
    assert.ok(!existsSync(file), "a new data file was made next to the log");
    assert.ok(readFileSync(`${file}-wal`).equals(log), "the log was changed");
  });

  it("writes a new data file complete, discarding what an interrupted creation left", async () => {
    const dataDir = directory();
    writeFileSync(join(dataDir, NEW_DATA_FILE), "half of a schema");
    const store = openDurableStore({ dataDir, maxElections: 10 });
    await store.create("e", []);
    await store.close();
    assert.ok(!existsSync(join(dataDir, NEW_DATA_FILE)));
    const db = new Database(join(dataDir, DATA_FILE), { readonly: true });
    try {
      assert.deepEqual(db.pragma("quick_check"), [{ quick_check: "ok" }]);
      assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
      assert.deepEqual(db.prepare("SELECT name FROM elections").all(), [{ name: "e" }]);
    } finally {
      db.close();
    }
  });

  it("refuses a data file whose pages were overwritten", async () => {
    const dataDir = await populated();
    const file = join(dataDir, DATA_FILE);
    const bytes = readFileSync(file);
    const pageSize = bytes.readUInt16BE(16);
    // Scribble over the third page onwards, leaving the header intact.
    for (let i = 2 * pageSize + 8; i < 6 * pageSize && i < bytes.length; i += 7) bytes[i] = 0xa5;
    writeFileSync(file, bytes);
    await expectRefusal(dataDir, /damaged or unreadable.*move .* aside/);
  });

  it("refuses a data file written by a newer schema version", async () => {
    const dataDir = await populated();
    const db = new Database(join(dataDir, DATA_FILE));
    db.prepare("UPDATE meta SET value = '2' WHERE key = 'schema_version'").run();
    db.close();
    await expectRefusal(dataDir, /schema version 2, newer than this electd.*newer electd/);
  });

  it("refuses a newer version found in the log after a crash, leaving file and log as they were", async () => {
    const dataDir = await populated();
    const file = join(dataDir, DATA_FILE);
    // A writer that dies by SIGKILL right after committing: the change is only in the log.
    crashAfter(file, "UPDATE meta SET value = '2' WHERE key = 'schema_version'");
    assert.ok(statSync(`${file}-wal`).size > 0, "the change is in the log");
    await expectRefusal(dataDir, /schema version 2, newer than this electd/);
    assert.ok(statSync(`${file}-wal`).size > 0, "the log is still there");
  });

  it("refuses a SQLite database that is not an electd data file", async () => {
    const dataDir = directory();
    const db = new Database(join(dataDir, DATA_FILE));
    db.exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)");
    db.close();
    await expectRefusal(dataDir, /not an electd data file/);
  });

  it("refuses a second server on the same data directory while the first keeps serving", async () => {
    const dataDir = directory();
    const first = await startDurable(dataDir);
    const sessions = new Http2SessionManager(first.url);
    try {
      const client = createClient(
        LeaderElection,
        createConnectTransport({ baseUrl: first.url, httpVersion: "2", sessionManager: sessions }),
      );
      await client.create({ id: { name: "e" } });
      await client.enter({ id: { name: "e" }, candidate: "a" });
      await expectRefusal(dataDir, /another electd is already using/, dataDir);
      const { term } = await client.getTerm({ id: { name: "e" } });
      assert.equal(term?.leader, "a");
    } finally {
      sessions.abort();
      assert.equal(await stop(first), 0);
    }
  });

  it("refuses a second store on the same data directory within one process", async () => {
    const dataDir = directory();
    const first = openDurableStore({ dataDir, maxElections: 10 });
    after(() => first.close());
    assert.throws(
      () => openDurableStore({ dataDir, maxElections: 10 }),
      (error) => error instanceof StoreStartError && /already using/.test(error.message),
    );
  });

  it("starts on an empty directory and on one made by a clean stop", async () => {
    const dataDir = directory();
    const first = await startDurable(join(dataDir, "nested", "data"));
    assert.equal(await stop(first), 0);
    const second = await startDurable(join(dataDir, "nested", "data"));
    assert.equal(await stop(second), 0);
  });
});

/**
 * Tests run as root, whom file modes do not stop: the server runs as `nobody` instead,
 * on files root owns, as an operator's electd would on files of another account.
 */
const NOBODY = { uid: 65534, gid: 65534 };

/** A populated data directory that `nobody` may enter, every file in it root's. */
async function rootsDirectory(): Promise<string> {
  const dataDir = await populated();
  // mkdtemp makes it 0700; its parent is the system's temporary directory, open to all.
  chmodSync(dataDir, 0o755);
  return dataDir;
}

function giveToNobody(...paths: string[]): void {
  for (const path of paths) chownSync(path, NOBODY.uid, NOBODY.gid);
}

/** A refusal that is about permissions: names the user, and never calls the data bad. */
async function expectPermissionRefusal(
  dataDir: string,
  named: string,
  pattern: RegExp,
  as: { uid?: number; gid?: number } = NOBODY,
): Promise<void> {
  const stderr = await expectRefusal(dataDir, pattern, named, as);
  assert.doesNotMatch(stderr, /damaged or unreadable|aside|restore|backup/);
}

describe("durable store reports permission problems as such", () => {
  it("a data directory the server's user may not write", async () => {
    const dataDir = await rootsDirectory();
    await expectPermissionRefusal(
      dataDir,
      dataDir,
      /permission denied: electd runs as user nobody \(uid 65534\).*owned by uid 0.*chown or chmod/,
    );
  });

  it("a data file the server's user may not write", async () => {
    const dataDir = await rootsDirectory();
    giveToNobody(dataDir, join(dataDir, LOCK_FILE));
    const file = join(dataDir, DATA_FILE);
    await expectPermissionRefusal(
      dataDir,
      file,
      /user nobody.*may not read and write \S*electd\.db /,
    );
  });

  it("a data file the server's user may not even read", async () => {
    const dataDir = await rootsDirectory();
    giveToNobody(dataDir, join(dataDir, LOCK_FILE));
    const file = join(dataDir, DATA_FILE);
    chmodSync(file, 0o600);
    await expectPermissionRefusal(dataDir, file, /user nobody.*mode 0600/);
  });

  it("a lock file owned by another user", async () => {
    const dataDir = await rootsDirectory();
    giveToNobody(dataDir, join(dataDir, DATA_FILE));
    const lock = join(dataDir, LOCK_FILE);
    await expectPermissionRefusal(
      dataDir,
      lock,
      /user nobody.*electd\.lock.*the lock file holds no data/,
    );
  });

  it("a data directory on a read-only file system", async () => {
    const source = await populated();
    const dataDir = join(directory(), "read-only");
    mkdirSync(dataDir);
    mount(["--bind", source, dataDir]);
    try {
      mount(["-o", "remount,bind,ro", dataDir]);
      await expectPermissionRefusal(
        dataDir,
        dataDir,
        /read-only file system.*mount it read-write/,
        {},
      );
    } finally {
      umount(dataDir);
    }
  });
});
