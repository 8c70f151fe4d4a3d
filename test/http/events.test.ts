// An election over plain HTTP, as curl follows it: the state as JSON, and Server-Sent
// Events with `id:` the version, resumed after Last-Event-ID (or ?after=), a `state` event
// marked reset when the changes asked for are no longer kept, and `deleted` at the end.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { startServer } from "../support/server.js";

const server = await startServer(["--history-per-election", "5"]);
const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
const election = createClient(LeaderElection, transport);
const admin = createClient(ElectionAdminService, transport);

/** The cause a change event names. */
const causeOf = (e: Event | undefined) =>
  (e?.data?.change as { cause?: string } | undefined)?.cause;

interface Event {
  id?: string;
  event?: string;
  data?: Record<string, unknown>;
}

/**
 * `curl -N` on the events of `name` with these extra arguments, until `enough` holds of
 * the events parsed so far (or curl ends); then curl is stopped.
 */
function curlEvents(name: string, args: string[], enough: (events: Event[]) => boolean) {
  const url = `${server.url}/v1/elections/${encodeURIComponent(name)}/events`;
  const curl = spawn("curl", ["-sN", ...args, url]);
  let text = "";
  return new Promise<Event[]>((resolve) => {
    const parse = () =>
      text
        .split("\n\n")
        .slice(0, -1)
        .map((block) => {
          const event: Event = {};
          for (const line of block.split("\n")) {
            const [field, ...rest] = line.split(": ");
            const value = rest.join(": ");
            if (field === "id") event.id = value;
            if (field === "event") event.event = value;
            if (field === "data") event.data = JSON.parse(value) as Record<string, unknown>;
          }
          return event;
        })
        .filter((e) => e.event !== undefined);
    curl.stdout.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (enough(parse())) curl.kill();
    });
    curl.on("exit", () => resolve(parse()));
  });
}

describe("an election over plain HTTP", () => {
  it("answers the current state as JSON, and not_found or invalid_argument as Connect does", async () => {
    const id = { name: "orders/eu" };
    await election.create({ id, tags: ["team:a"] });
    await election.enter({ id, candidate: "a" });
    await election.enter({ id, candidate: "b" });
    const response = await fetch(`${server.url}/v1/elections/orders%2Feu`);
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), {
      name: "orders/eu",
      tags: ["team:a"],
      term: "1",
      leader: "a",
      candidates: ["b"],
      version: "3",
    });
    const missing = await fetch(`${server.url}/v1/elections/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), {
      code: "not_found",
      message: 'election "nope" not found',
    });
    const events = await fetch(`${server.url}/v1/elections/nope/events`);
    assert.equal(events.status, 404);
    const bad = await fetch(`${server.url}/v1/elections/orders%2Feu/events?after=soon`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { code: string }).code, "invalid_argument");
  });

  it("streams each change after Last-Event-ID with its version as id, then live ones", async () => {
    const id = { name: "followed" };
    await election.create({ id });
    for (const candidate of ["a", "b"]) await election.enter({ id, candidate });
    const following = curlEvents("followed", ["-H", "Last-Event-ID: 1"], (e) => e.length === 3);
    // Live, once the stream has caught up (or from history, if it had not yet).
    await new Promise((resolve) => setTimeout(resolve, 300));
    await election.anoint({ id, candidate: "b" });
    const events = await following;
    assert.deepEqual(
      events.map((e) => [e.id, e.event, causeOf(e)]),
      [
        ["2", "change", "CHANGE_CAUSE_ENTER"],
        ["3", "change", "CHANGE_CAUSE_ENTER"],
        ["4", "change", "CHANGE_CAUSE_ANOINT"],
      ],
    );
    assert.deepEqual(events.at(-1)?.data?.term, { term: "2", leader: "b", candidates: ["a"] });
    // ?after= does the same for clients that cannot set the header.
    const again = await curlEvents("followed", [], (e) => e.length === 1);
    assert.deepEqual(
      again.map((e) => [e.id, e.event]),
      [["4", "state"]],
    );
    const resumed = await curlEvents("followed", ["-G", "-d", "after=3"], (e) => e.length === 1);
    assert.equal(resumed[0]?.id, "4");
  });

  it("starts from the current state marked reset when the changes asked for are gone, and ends with the deletion", async () => {
    const id = { name: "forgetful" };
    await election.create({ id });
    for (let i = 0; i < 8; i++) await election.enter({ id, candidate: `c${i}` });
    const reset = await curlEvents("forgetful", ["-H", "Last-Event-ID: 2"], (e) => e.length === 1);
    assert.deepEqual([reset[0]?.id, reset[0]?.event, reset[0]?.data?.reset], ["9", "state", true]);
    const ending = curlEvents("forgetful", ["-H", "Last-Event-ID: 9"], (e) =>
      e.some((x) => x.event === "deleted"),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await admin.deleteElection({ name: "forgetful" });
    const events = await ending;
    // Up to date at first: the stream starts with the state the client has.
    assert.deepEqual(
      events.map((e) => [e.id, e.event]),
      [
        ["9", "state"],
        ["10", "change"],
        [undefined, "deleted"],
      ],
    );
    assert.equal(causeOf(events[1]), "CHANGE_CAUSE_ELECTION_DELETED");
  });
});
