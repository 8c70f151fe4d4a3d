// File systems for fault tests: a tiny tmpfs to fill, a read-only bind mount. Needs root
// (CAP_SYS_ADMIN), as the test suite runs.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";

export function mount(args: readonly string[]): void {
  const result = spawnSync("mount", args, { encoding: "utf8" });
  assert.equal(result.status, 0, `mount ${args.join(" ")}: ${result.stderr}`);
}

export function umount(path: string): void {
  const result = spawnSync("umount", [path], { encoding: "utf8" });
  assert.equal(result.status, 0, `umount ${path}: ${result.stderr}`);
}
