// Another process's write lock on a durable store's data file, as a sqlite3 shell left in
// the middle of a transaction holds it: the server cannot commit until it is released.
import { join } from "node:path";
import Database from "better-sqlite3";
import { DATA_FILE } from "../../server/store/durable.js";

/** Takes the write lock of the data file in `dataDir`; returns what releases it. */
export function lockDataFile(dataDir: string): () => void {
  const outside = new Database(join(dataDir, DATA_FILE));
  outside.exec("BEGIN IMMEDIATE");
  return () => {
    outside.exec("ROLLBACK");
    outside.close();
  };
}
