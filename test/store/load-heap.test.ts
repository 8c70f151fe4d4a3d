// A server that ran starts again with the same settings: loading a data file must not need
// much more heap than the same data took while running. Loading all rows at once, with
// bindings keeping their own copies of names and session ids, needed three times as much
// and a full server could not start again on the heap it had run on.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { DATA_FILE, openDurableStore } from "../../server/store/durable.js";
import { type ServerProcess, spawnServer } from "../support/process.js";
import { tempDir } from "../support/tempdir.js";

const ELECTIONS = 300;
const CANDIDATES = 1000;
/** About 110 MiB of elections in memory (bench/memory.ts), loaded on a 256 MiB heap. */
const HEAP_MB = 256;

/** A name of 256 bytes, the longest MAX_NAME_BYTES allows by default. */
const long = (text: string) => text.padEnd(256, "x");

/**
 * A data file as a server leaves it after running with ELECTIONS elections of CANDIDATES
 * candidates, every candidate bound to a session: written directly, which takes a moment,
 * where entering 300,000 candidates through a store would take minutes.
 */
async function fullDataFile(): Promise<string> {
  const dataDir = tempDir("load-heap");
  await openDurableStore({ dataDir, maxElections: 1 }).close();
  const db = new Database(join(dataDir, DATA_FILE));
  const sessions = Array.from({ length: CANDIDATES }, (_, j) =>
    Buffer.from(`session-${j}`.padEnd(18, "-")).toString("base64url"),
  );
  const election = db.prepare(
    "INSERT INTO elections (name, tags, term, leader, candidates, owners, version) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const session = db.prepare("INSERT INTO sessions (id, ttl_ms) VALUES (?, ?)");
  db.transaction(() => {
    for (const id of sessions) session.run(id, 60_000);
    for (let i = 0; i < ELECTIONS; i++) {
      const names = Array.from({ length: CANDIDATES }, (_, j) => long(`${i}-${j}-`));
      const owners = Object.fromEntries(names.map((name, j) => [name, sessions[j]]));
      const [leader, ...queue] = names;
      election.run(
        long(`election-${i}-`),
        JSON.stringify([long(`tag-${i}-`)]),
        "1",
        leader,
        JSON.stringify(queue),
        JSON.stringify(owners),
        CANDIDATES + 1,
      );
    }
  })();
  db.close();
  return dataDir;
}

describe("loading the durable store", () => {
  it(`loads ${ELECTIONS} elections of ${CANDIDATES} session-bound candidates on a ${HEAP_MB} MiB heap`, async () => {
    const dataDir = await fullDataFile();
    let server: ServerProcess | undefined;
    after(async () => {
      server?.child.kill("SIGKILL");
      await server?.exited;
    });
    server = await spawnServer(
      [
        "--port",
        "0",
        "--store",
        "durable",
        "--data-dir",
        dataDir,
        "--max-candidates-total",
        "300000",
      ],
      { NODE_OPTIONS: `--max-old-space-size=${HEAP_MB}` },
    );
    const name = long(`election-${ELECTIONS - 1}-`);
    const response = await fetch(
      `${server.url}/atomix.runtime.election.v1.LeaderElection/GetTerm`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: { name } }),
      },
    );
    const { term } = (await response.json()) as { term: { leader: string; candidates: string[] } };
    assert.equal(term.leader, long(`${ELECTIONS - 1}-0-`));
    assert.equal(term.candidates.length, CANDIDATES - 1);
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
  });
});
