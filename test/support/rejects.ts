// Asserts that a call fails with a ConnectError of this code whose message matches.
import assert from "node:assert/strict";
import { type Code, ConnectError } from "@connectrpc/connect";

export async function rejects(call: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof ConnectError, `expected a ConnectError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.rawMessage, message);
    return true;
  });
}
