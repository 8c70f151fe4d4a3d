// Metrics of two servers sharing one etcd cluster: each counts the leader changes and the
// candidates it sees published, its own calls' changes under the RPC that made them, the
// other server's as `unknown`, and a session's release under its cause; a session that
// expires is counted once between them, with or without candidates, and a closed one not.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { startEtcd } from "../support/etcd.js";
import { startServer } from "../support/server.js";

const cluster = await startEtcd({ members: 1 });
after(() => cluster.stop());
const flags = ["--store", "etcd", "--etcd-endpoints", cluster.endpoints.join(",")];
const a = await startServer([...flags, "--etcd-prefix", "/metrics/"]);
const b = await startServer([...flags, "--etcd-prefix", "/metrics/"]);
const c = await startServer([...flags, "--etcd-prefix", "/expiries/"]);
const d = await startServer([...flags, "--etcd-prefix", "/expiries/"]);

function clients(url: string) {
  const transport = createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  return {
    elections: createClient(LeaderElection, transport),
    sessions: createClient(SessionService, transport),
  };
}

/** `name{labels} value` lines of a scrape, by series. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const series = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    series.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return series;
}

async function until(ready: () => Promise<boolean>, what: string): Promise<void> {
  // etcd expires a lease within about a second of its TTL, at its own minimum TTL or more.
  const deadline = Date.now() + 20_000;
  while (!(await ready())) {
    if (Date.now() > deadline) assert.fail(`within 20 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("metrics on a shared etcd store", () => {
  it("counts changes made through either server on both, with their causes", async () => {
    const transport = createConnectTransport({ baseUrl: a.url, httpVersion: "1.1" });
    const elections = createClient(LeaderElection, transport);
    const sessions = createClient(SessionService, transport);
    const id = { name: "shared" };
    await elections.create({ id });
    await elections.enter({ id, candidate: "x" });
    await elections.enter({ id, candidate: "y" });
    const { sessionId } = await sessions.openSession({ ttl: durationFromMs(60_000) });
    await elections.anoint({ id, candidate: "y" });
    await elections.enter({ id, candidate: "z" }, { headers: { "electd-session": sessionId } });
    await elections.anoint({ id, candidate: "z" });
    await sessions.closeSession({ sessionId });

    const leaderChanges = (cause: string) => `electd_leader_changes_total{cause="${cause}"}`;
    const onA = await scrape(a.url);
    assert.equal(onA.get(leaderChanges("Enter")), 1);
    assert.equal(onA.get(leaderChanges("Anoint")), 2);
    assert.equal(onA.get(leaderChanges("session-closed")), 1);
    assert.equal(onA.get("electd_candidates"), 2);
    await until(async () => (await scrape(b.url)).get("electd_candidates") === 2, "B sees it");
    const onB = await scrape(b.url);
    // Every change carries its cause, whichever server made it.
    assert.equal(onB.get(leaderChanges("Enter")), 1);
    assert.equal(onB.get(leaderChanges("Anoint")), 2);
    assert.equal(onB.get(leaderChanges("unknown")), undefined);
    assert.equal(onB.get(leaderChanges("session-closed")), 1);
  });

  it("counts each expired session once across the servers, and no closed session", async () => {
    const [onC, onD] = [clients(c.url), clients(d.url)];
    const id = { name: "expiring" };
    await onC.elections.create({ id });
    const ttl = durationFromMs(1000);
    const holding = await onC.sessions.openSession({ ttl });
    await onC.elections.enter(
      { id, candidate: "held" },
      { headers: { "electd-session": holding.sessionId } },
    );
    await onD.sessions.openSession({ ttl }); // no candidates: its expiry counts all the same
    const closed = await onD.sessions.openSession({ ttl });
    await onC.sessions.closeSession({ sessionId: closed.sessionId });

    const expiries = "electd_session_expiries_total";
    const both = async () => [await scrape(c.url), await scrape(d.url)];
    await until(async () => {
      const [onCNow, onDNow] = await both();
      return (
        (onCNow?.get(expiries) ?? 0) + (onDNow?.get(expiries) ?? 0) >= 2 &&
        onCNow?.get("electd_sessions_open") === 0 &&
        onDNow?.get("electd_sessions_open") === 0
      );
    }, "both sessions expire and are counted");
    // Both servers heard both sessions go; a server counting what the other counted would
    // show within this.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const [onCAfter, onDAfter] = await both();
    assert.equal((onCAfter?.get(expiries) ?? 0) + (onDAfter?.get(expiries) ?? 0), 2);
    const expired = 'electd_leader_changes_total{cause="session-expired"}';
    assert.equal(onCAfter?.get(expired), 1, "the held candidate was withdrawn");
    const { term } = await onD.elections.getTerm({ id });
    assert.deepEqual([term?.leader, term?.candidates], ["", []]);
  });
});
