// A fresh temporary directory per test, removed when the test file ends.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

export function tempDir(prefix: string): string {
  const path = mkdtempSync(join(tmpdir(), `electd-${prefix}-`));
  after(() => rmSync(path, { recursive: true, force: true }));
  return path;
}
