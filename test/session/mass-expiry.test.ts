// 1,000 sessions, each leading its own election, all kept alive in one burst and then left
// to expire at the same moment: every one of them is handled (its leader withdrawn, the
// follower leading with term+1) within 1 s of its deadline.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { start } from "../../server/electd.js";
import { testConfig } from "../support/server.js";
import { pick } from "./protocols.js";

const SESSIONS = 1000;
const TTL_MS = 10_000;

/** Runs `work` over `items` with at most `width` calls in flight. */
async function spread<T, R>(items: readonly T[], width: number, work: (item: T) => Promise<R>) {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: width }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i] as T);
    }
  });
  await Promise.all(lanes);
  return out;
}

for (const protocol of pick("gRPC over", "Connect JSON")) {
  describe(`mass expiry over ${protocol.name}`, () => {
    it(`handles ${SESSIONS} sessions expiring at the same moment within 1 s`, async (t) => {
      const electd = await start(
        testConfig(["--session-ttl-min", "100ms", "--max-sessions", String(SESSIONS)]),
      );
      t.after(() => electd.stop(500));
      const opened = protocol.open(electd.url);
      t.after(() => opened.close());
      const sessions = createClient(SessionService, opened.transport);
      const elections = createClient(LeaderElection, opened.transport);
      const names = Array.from({ length: SESSIONS }, (_, i) => `mass-${i}`);
      const handled = new Map<string, number>();
      const unsubscribe = electd.store.subscribe((e) => {
        if (e.state.leader === "follower" && !handled.has(e.name)) {
          handled.set(e.name, performance.now());
        }
      });
      t.after(unsubscribe);

      // Setting up 1,000 elections may take longer than the TTL on a busy machine: the
      // sessions opened so far are kept alive meanwhile.
      const openedIds: string[] = [];
      let settingUp = true;
      const keeper = (async () => {
        while (settingUp) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          await spread([...openedIds], 50, (sessionId) => sessions.keepAlive({ sessionId }));
        }
      })();
      keeper.catch(() => {}); // awaited below; a failure must not count as unhandled meanwhile
      const setupStart = performance.now();
      await spread(names, 100, (name) => elections.create({ id: { name } }));
      const ids = await spread(names, 100, async (name) => {
        const { sessionId } = await sessions.openSession({ ttl: durationFromMs(TTL_MS) });
        openedIds.push(sessionId);
        await elections.enter(
          { id: { name }, candidate: "leader" },
          { headers: { "electd-session": sessionId } },
        );
        await elections.enter({ id: { name }, candidate: "follower" });
        return sessionId;
      });
      settingUp = false;
      await keeper;
      t.diagnostic(`setup ${(performance.now() - setupStart).toFixed(0)} ms`);
      // One burst of keep-alives sets every deadline to (nearly) the same moment.
      const burstStart = performance.now();
      const answered = await Promise.all(
        ids.map(async (sessionId) => {
          await sessions.keepAlive({ sessionId });
          return performance.now();
        }),
      );
      const burst = Math.max(...answered) - burstStart;
      assert.equal(handled.size, 0, "nothing expired before the burst");
      assert.ok(burst < TTL_MS / 2, `the keep-alive burst took ${burst} ms`);

      const deadline = Math.max(...answered) + TTL_MS + 1000;
      while (handled.size < SESSIONS && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(handled.size, SESSIONS, "every session's leader was withdrawn");
      // Each session expired no later than TTL after its keep-alive was answered.
      const lateness = names.map(
        (name, i) => (handled.get(name) as number) - ((answered[i] as number) + TTL_MS),
      );
      const times = [...handled.values()];
      const first = Math.min(...times);
      const last = Math.max(...times);
      t.diagnostic(
        `keep-alive burst ${burst.toFixed(0)} ms; expiries handled from first to last in ` +
          `${(last - first).toFixed(0)} ms; worst lateness after deadline ${Math.max(...lateness).toFixed(0)} ms`,
      );
      assert.ok(Math.max(...lateness) <= 1000, `worst lateness ${Math.max(...lateness)} ms`);
      const sample = await elections.getTerm({ id: { name: names[SESSIONS - 1] as string } });
      assert.deepEqual([sample.term?.term, sample.term?.leader], [2n, "follower"]);
      assert.equal(electd.sessions.size, 0);
    });
  });
}
