// Every limit of API.md section 4 refuses with resource_exhausted (or invalid_argument for
// per-field sizes), names the limit, and changes nothing. Limits are set small by flags.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { allClients, codeOf } from "../support/clients.js";
import { startServer } from "../support/server.js";
import { tempDir } from "../support/tempdir.js";

const server = await startServer([
  "--max-candidates",
  "3",
  "--max-elections",
  "4",
  "--max-watches",
  "2",
  "--max-request-bytes",
  "2048",
  "--max-name-bytes",
  "16",
  "--max-tags",
  "2",
]);
// Connect JSON, gRPC and grpc-js: one of each wire family.
const clients = allClients(server.url).filter((c) =>
  ["Connect JSON (HTTP/1.1)", "gRPC (HTTP/2)", "@grpc/grpc-js (runtime .proto)"].includes(
    c.protocol,
  ),
);
after(() => {
  for (const c of clients) c.dispose();
});

describe("limits", () => {
  for (const c of clients) {
    it(`refuses a candidate past --max-candidates and keeps the queue (${c.protocol})`, async () => {
      const e = `cand-${clients.indexOf(c)}`;
      await c.create(e);
      for (const name of ["a", "b", "c"]) await c.call("enter", e, name);
      const refused = await codeOf(c.call("enter", e, "d"));
      assert.equal(refused.code, Code.ResourceExhausted);
      assert.match(refused.message, /MAX_CANDIDATES/);
      assert.deepEqual((await c.getTerm(e)).candidates, ["b", "c"]);
      assert.equal(
        (await c.call("enter", e, "b")).leader,
        "a",
        "re-entering a present name is still a no-op",
      );
    });

    it(`refuses names and tags past --max-name-bytes and --max-tags with invalid_argument (${c.protocol})`, async () => {
      const long = await codeOf(c.create("x".repeat(17)));
      assert.equal(long.code, Code.InvalidArgument);
      assert.match(
        long.message,
        /^id\.name is 17 bytes of UTF-8 but the limit is 16 \(MAX_NAME_BYTES\)$/,
      );
      const tags = await codeOf(c.create("tags", ["a", "b", "c"]));
      assert.equal(tags.code, Code.InvalidArgument);
      assert.match(tags.message, /MAX_TAGS/);
      assert.equal((await codeOf(c.getTerm("tags"))).code, Code.NotFound, "nothing was created");
    });

    it(`refuses a request larger than --max-request-bytes (${c.protocol})`, async () => {
      const big = await codeOf(c.create("big", ["t".repeat(3000)]));
      assert.equal(big.code, Code.ResourceExhausted);
      assert.equal((await codeOf(c.getTerm("big"))).code, Code.NotFound);
    });
  }

  it("refuses an election past --max-elections, while Create of an existing one still succeeds", async () => {
    const c = clients[0];
    assert.ok(c);
    // cand-0..2 exist already (3 of 4).
    await c.create("fourth");
    const refused = await codeOf(c.create("fifth"));
    assert.equal(refused.code, Code.ResourceExhausted);
    assert.match(refused.message, /MAX_ELECTIONS/);
    await c.create("fourth");
    assert.equal((await codeOf(c.getTerm("fifth"))).code, Code.NotFound);
  });

  it("refuses a watch past --max-watches and accepts one again when a watch ends", async () => {
    const c = clients[1];
    assert.ok(c);
    const held = [new AbortController(), new AbortController()];
    const iterators = await Promise.all(
      held.map(async (ctl) => {
        const it = c.watch("cand-1", ctl.signal)[Symbol.asyncIterator]();
        await it.next(); // the current state arrived: the watch is open
        return it;
      }),
    );
    assert.equal(server.hub.size, 2);
    const refused = await codeOf(
      (async () => {
        for await (const _ of c.watch("cand-1", new AbortController().signal)) return;
      })(),
    );
    assert.equal(refused.code, Code.ResourceExhausted);
    assert.match(refused.message, /MAX_WATCHES/);
    held[0]?.abort();
    await iterators[0]?.return?.();
    await waitFor(() => server.hub.size === 1);
    const again = new AbortController();
    for await (const state of c.watch("cand-1", again.signal)) {
      assert.equal(state.leader, "a");
      break;
    }
    again.abort();
    held[1]?.abort();
    await iterators[1]?.return?.();
    await waitFor(() => server.hub.size === 0);
  });
});

describe("the total candidates limit", () => {
  for (const store of ["memory", "durable"]) {
    it(`refuses a candidate past --max-candidates-total and changes nothing (${store} store)`, async () => {
      const dataDir = store === "durable" ? ["--data-dir", tempDir("limits")] : [];
      const server = await startServer([
        "--store",
        store,
        ...dataDir,
        "--max-candidates-total",
        "3",
      ]);
      const c = allClients(server.url).find((x) => x.protocol === "gRPC (HTTP/2)");
      assert.ok(c);
      after(() => c.dispose());
      await c.create("one");
      await c.create("two");
      await c.call("enter", "one", "a");
      await c.call("enter", "one", "b");
      await c.call("enter", "two", "c");
      const refused = await codeOf(c.call("enter", "two", "d"));
      assert.equal(refused.code, Code.ResourceExhausted);
      assert.equal(
        refused.message,
        "limit reached with 3 candidates in all elections on this server (MAX_CANDIDATES_TOTAL)",
      );
      assert.deepEqual(await c.getTerm("two"), { term: 1n, leader: "c", candidates: [] });
      assert.deepEqual(await c.getTerm("one"), { term: 1n, leader: "a", candidates: ["b"] });
      await c.call("withdraw", "one", "b");
      assert.deepEqual(await c.call("enter", "two", "d"), {
        term: 1n,
        leader: "c",
        candidates: ["d"],
      });
    });
  }
});

async function waitFor(condition: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
