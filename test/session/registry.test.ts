// The session registry against a real (memory) store: id entropy, the grace restored
// sessions get after a restart, and candidates whose session is gone being withdrawn
// (after a crash, or by an Enter racing the session's end).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SessionSettings } from "../../server/config.js";
import type { ElectionState } from "../../server/election/rules.js";
import { SessionRegistry } from "../../server/session/registry.js";
import { createMemoryStore } from "../../server/store/memory.js";
import type { LocalStore } from "../../server/store/store.js";

const settings: SessionSettings = {
  ttlMs: 1000,
  minTtlMs: 10,
  maxTtlMs: 60_000,
  maxSessions: 10_000,
};
const limits = { maxCandidates: 100 };

/** An election with `leader` bound to `session` (or to none) and `follower` queued. */
async function seed(store: LocalStore, name: string, session: string | undefined) {
  await store.create(name, []);
  const state: ElectionState = { term: 1n, leader: "leader", candidates: ["follower"] };
  await store.update(name, () => ({
    ok: true,
    state,
    changed: true,
    ...(session === undefined ? {} : { bind: ["leader", session] as const }),
  }));
}

async function until<T>(read: () => Promise<T>, test: (value: T) => boolean, timeoutMs = 3000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (test(value)) return value;
    if (performance.now() > deadline) throw new Error(`no such value within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe("session registry", () => {
  it("makes ids of 24 base64url characters carrying 144 uniformly random bits", async (t) => {
    const store = createMemoryStore({ maxElections: 10 });
    const registry = new SessionRegistry({ store, settings, limits });
    await registry.start();
    t.after(() => registry.stop());
    const samples = 4000;
    const ids = new Set<string>();
    const ones = new Array<number>(144).fill(0);
    for (let i = 0; i < samples; i++) {
      const { id } = await registry.open(60_000);
      assert.match(id, /^[A-Za-z0-9_-]{24}$/);
      ids.add(id);
      const bytes = Buffer.from(id, "base64url");
      assert.equal(bytes.length, 18);
      for (let bit = 0; bit < 144; bit++) {
        if (((bytes[bit >> 3] as number) >> (bit & 7)) & 1) ones[bit] = (ones[bit] ?? 0) + 1;
      }
    }
    assert.equal(ids.size, samples, "no id repeats");
    // Every bit position is set in about half the ids: 6 standard deviations either side.
    const sigma = Math.sqrt(samples) / 2;
    for (const [bit, count] of ones.entries()) {
      assert.ok(Math.abs(count - samples / 2) < 6 * sigma, `bit ${bit} set ${count} times`);
    }
  });

  it("gives every restored session one full TTL of grace, then withdraws its candidates", async (t) => {
    const store = createMemoryStore({ maxElections: 10 });
    await store.putSession({ id: "restored-session-id-0001", ttlMs: 400 });
    await seed(store, "e", "restored-session-id-0001");
    const registry = new SessionRegistry({ store, settings, limits });
    const started = performance.now();
    await registry.start();
    t.after(() => registry.stop());
    assert.equal(registry.peek("unknown"), undefined);
    assert.deepEqual(registry.peek("restored-session-id-0001")?.ttlMs, 400);
    const view = await registry.get("restored-session-id-0001");
    assert.equal(view.ttlMs, 400);
    assert.ok(view.remainingMs > 350, `remaining ${view.remainingMs} ms`);
    const after = await until(
      () => store.get("e"),
      (e) => e?.state.leader === "follower",
    );
    assert.ok(performance.now() - started >= 400);
    assert.equal(after?.state.term, 2n);
    assert.deepEqual(after?.owners, new Map());
    assert.deepEqual(await store.listSessions(), []);
  });

  it("withdraws at start the candidates of a session that no longer exists", async (t) => {
    const store = createMemoryStore({ maxElections: 10 });
    await seed(store, "orphaned", "closed-before-the-crash0");
    await seed(store, "sessionless", undefined);
    const registry = new SessionRegistry({ store, settings, limits });
    await registry.start();
    t.after(() => registry.stop());
    const after = await until(
      () => store.get("orphaned"),
      (e) => e?.state.leader === "follower",
    );
    assert.equal(after?.state.term, 2n);
    assert.equal((await store.get("sessionless"))?.state.leader, "leader");
  });

  it("withdraws a candidate bound to a session that ended while its Enter was under way", async (t) => {
    const store = createMemoryStore({ maxElections: 10 });
    const registry = new SessionRegistry({ store, settings, limits });
    await registry.start();
    t.after(() => registry.stop());
    const { id } = await registry.open(60_000);
    await registry.close(id);
    // The Enter checked the session before it closed and commits after.
    await seed(store, "late", id);
    const after = await until(
      () => store.get("late"),
      (e) => e?.state.leader === "follower",
    );
    assert.equal(after?.state.term, 2n);
  });

  it("handles 1,000 sessions expiring at the same moment within 1 s of their deadline", async (t) => {
    const store = createMemoryStore({ maxElections: 1000 });
    const registry = new SessionRegistry({ store, settings, limits });
    await registry.start();
    t.after(() => registry.stop());
    const handled: number[] = [];
    t.after(
      store.subscribe((e) => {
        if (e.state.leader === "follower" && e.state.term === 2n) handled.push(performance.now());
      }),
    );
    const opened = performance.now();
    for (let i = 0; i < 1000; i++) {
      const { id } = await registry.open(300);
      await seed(store, `mass-${i}`, id);
    }
    const lastDeadline = performance.now() + 300;
    assert.ok(lastDeadline - opened < 600, "all sessions were opened within 300 ms");
    while (handled.length < 1000 && performance.now() < lastDeadline + 2000) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(handled.length, 1000);
    const last = Math.max(...handled);
    t.diagnostic(
      `opened in ${(lastDeadline - 300 - opened).toFixed(0)} ms; all handled ` +
        `${(last - lastDeadline).toFixed(0)} ms after the last deadline, ` +
        `${(last - Math.min(...handled)).toFixed(0)} ms from first to last`,
    );
    assert.ok(last - lastDeadline <= 1000, `last handled ${last - lastDeadline} ms late`);
  });

  it("stops without expiring anything: sessions outlive a shutdown", async () => {
    const store = createMemoryStore({ maxElections: 10 });
    const registry = new SessionRegistry({ store, settings, limits });
    await registry.start();
    const { id } = await registry.open(50);
    await seed(store, "kept", id);
    await registry.stop();
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal((await store.get("kept"))?.state.leader, "leader");
    assert.deepEqual(await store.listSessions(), [{ id, ttlMs: 50 }]);
  });
});
