// Names are data: election, candidate and tag names that are also JavaScript's special
// property names (`__proto__`, `constructor`, `toString`, ...) behave exactly like any
// other name through every call that keys something by them: session bindings, their
// release, GetElectionSessions, tag listings and the JSON the directory answers.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import { LeaderElection } from "../../gen/atomix/runtime/election/v1/election_pb.js";
import { SessionService } from "../../gen/electd/v1/session_pb.js";
import { startServer } from "../support/server.js";

const server = await startServer();
const transport = createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" });
const elections = createClient(LeaderElection, transport);
const sessions = createClient(SessionService, transport);

/** Every own and inherited property name of an ordinary object and of a function. */
const special = [
  ...new Set([
    ...Object.getOwnPropertyNames(Object.prototype),
    ...Object.getOwnPropertyNames(Function.prototype),
    ...Object.getOwnPropertyNames(Array.prototype),
    "prototype",
    "__proto__",
  ]),
].filter((n) => n !== "");

/** Connect JSON with fetch, parsed by JSON.parse, which keeps `__proto__` as an own key. */
async function json(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${server.url}/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Record<string, unknown>;
}

let round = 0;

describe("special property names", () => {
  it("bind, list, show and release like any other name", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.constantFrom(...special), { minLength: 1, maxLength: 4 }),
        fc.constantFrom(...special),
        async (candidates, tag) => {
          const name = `${special[round++ % special.length]}`;
          await json("electd.v1.ElectionAdminService/DeleteElection", { name }).catch(() => {});
          await elections.create({ id: { name }, tags: [tag] });
          const { sessionId } = await sessions.openSession({});
          const headers = { "electd-session": sessionId };
          for (const candidate of candidates) {
            await elections.enter({ id: { name }, candidate }, { headers });
          }
          await elections.enter({ id: { name }, candidate: "unbound" });

          const bound = (await json("electd.v1.ElectionDirectoryService/GetElectionSessions", {
            name,
          })) as { candidates?: { candidate: string }[] };
          assert.deepEqual(
            (bound.candidates ?? []).map((c) => c.candidate),
            candidates,
          );
          const listed = (await json("electd.v1.ElectionDirectoryService/ListElections", {
            tag,
            namePrefix: name,
          })) as { elections?: { name: string; bindings?: { candidate: string }[] }[] };
          const mine = listed.elections?.find((e) => e.name === name);
          assert.ok(mine, `${name} is listed under tag ${tag}`);
          assert.deepEqual(
            (mine.bindings ?? []).map((b) => b.candidate),
            candidates,
          );

          await sessions.closeSession({ sessionId });
          const after = (await elections.getTerm({ id: { name } })).term;
          assert.equal(after?.leader, "unbound");
          assert.deepEqual(after?.candidates, []);
          await json("electd.v1.ElectionAdminService/DeleteElection", { name });
        },
      ),
      { numRuns: 60 },
    );
  });
});
