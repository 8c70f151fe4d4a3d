// 1,000 sessions, each leading its own election, all kept alive in one burst and then left
// to expire at the same moment: none expires a moment early, and every one of them is
// handled (its leader withdrawn, the follower leading with term+1) when its TTL has passed.
// Time is a clock the test moves, so a slow setup or keep-alive burst on a loaded machine
// cannot expire anything; how fast a real server handles a mass expiry is measured by
// `npm run bench:sessions`.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { start } from "../../server/electd.js";
import { ManualClock } from "../support/clock.js";
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
    it(`expires ${SESSIONS} sessions kept alive at the same moment exactly when their TTL has passed`, async (t) => {
      const clock = new ManualClock();
      const electd = await start(
        testConfig(["--session-ttl-min", "100ms", "--max-sessions", String(SESSIONS)]),
        { clock },
      );
      t.after(() => electd.stop(500));
      const opened = protocol.open(electd.url);
      t.after(() => opened.close());
      const sessions = createClient(SessionService, opened.transport);
      const elections = createClient(LeaderElection, opened.transport);
      const names = Array.from({ length: SESSIONS }, (_, i) => `mass-${i}`);
      const handled = new Set<string>();
      let allHandled: () => void = () => {};
      const done = new Promise<void>((resolve) => {
        allHandled = resolve;
      });
      const unsubscribe = electd.store.subscribe((e) => {
        if (e.state.leader === "follower") handled.add(e.name);
        if (handled.size === SESSIONS) allHandled();
      });
      t.after(unsubscribe);

      await spread(names, 100, (name) => elections.create({ id: { name } }));
      const ids = await spread(names, 100, async (name) => {
        const { sessionId } = await sessions.openSession({ ttl: durationFromMs(TTL_MS) });
        await elections.enter(
          { id: { name }, candidate: "leader" },
          { headers: { "electd-session": sessionId } },
        );
        await elections.enter({ id: { name }, candidate: "follower" });
        return sessionId;
      });

      // Just before the TTL runs out, one burst of keep-alives moves every deadline to the
      // same later moment.
      await clock.advance(TTL_MS - 1);
      await spread(ids, 100, (sessionId) => sessions.keepAlive({ sessionId }));
      await clock.advance(TTL_MS - 1);
      await elections.getTerm({ id: { name: names[0] as string } });
      assert.equal(handled.size, 0, "nothing expired before its TTL passed");
      assert.equal(electd.sessions.size, SESSIONS);

      await clock.advance(1);
      await done;
      assert.equal(handled.size, SESSIONS, "every session's leader was withdrawn");
      for (const name of [names[0], names[SESSIONS - 1]] as string[]) {
        const { term } = await elections.getTerm({ id: { name } });
        assert.deepEqual([term?.term, term?.leader, term?.candidates], [2n, "follower", []]);
      }
      assert.equal(electd.sessions.size, 0);
      // Each session's record is deleted after its last release: ending until then.
      while (electd.sessions.endingSize > 0) await new Promise((resolve) => setImmediate(resolve));
    });
  });
}
