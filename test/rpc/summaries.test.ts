// Directory responses built from cached encoded summaries (server/rpc/summaries.ts): for
// any elections, the bytes written are exactly those of the same response with its
// summaries set as messages, so every binary client reads what it always read; a summary
// is encoded once per election state while it fits the cache, and the cache stays within
// its budget.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import fc from "fast-check";
import {
  ElectionDirectoryService,
  ListElectionsResponseSchema,
  WatchElectionsResponseSchema,
} from "../../gen/electd/v1/directory_pb.js";
import { type ChangeCause, type Election, newElection } from "../../server/election/change.js";
import { SummaryCache, toSummary, withSummaries } from "../../server/rpc/summaries.js";
import { startServer } from "../support/server.js";

const name = fc.string({ unit: "grapheme", minLength: 1, maxLength: 20 });
const election: fc.Arbitrary<Election> = fc
  .record({
    name,
    tags: fc.array(name, { maxLength: 3 }),
    term: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    queue: fc.uniqueArray(name, { maxLength: 5 }),
    bound: fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
    version: fc.integer({ min: 1, max: 2 ** 40 }),
    cause: fc.constantFrom<ChangeCause | undefined>(undefined, "session-expired", "session-closed"),
  })
  .map(({ name, tags, term, queue, bound, version, cause }) => {
    const [leader = "", ...candidates] = queue;
    const owners = new Map(
      queue.filter((_, i) => bound[i]).map((c, i) => [c, `session-${i}`] as const),
    );
    return {
      name,
      tags,
      state: { term, leader, candidates },
      owners,
      version,
      ...(cause === undefined ? {} : { cause }),
    };
  });

describe("directory responses from cached summaries", () => {
  it("writes the bytes of the same WatchElectionsResponse with its summaries as messages", async () => {
    const cache = new SummaryCache(1 << 20);
    await fc.assert(
      fc.asyncProperty(
        fc.array(election, { maxLength: 6 }),
        fc.array(name, { maxLength: 3 }),
        fc.boolean(),
        fc.boolean(),
        async (elections, deleted, reset, snapshotComplete) => {
          const rest = () =>
            create(WatchElectionsResponseSchema, { deleted, reset, snapshotComplete });
          const plain = rest();
          plain.elections = elections.map(toSummary);
          const schema = WatchElectionsResponseSchema;
          // Twice: once encoding, once from the cache.
          for (let i = 0; i < 2; i++) {
            const shared = await withSummaries(schema, rest(), elections, cache);
            assert.deepEqual(toBinary(schema, shared), toBinary(schema, plain));
          }
        },
      ),
    );
  });

  it("writes the bytes of the same ListElectionsResponse, with or without a next page", async () => {
    const cache = new SummaryCache(0);
    await fc.assert(
      fc.asyncProperty(
        fc.array(election, { maxLength: 6 }),
        fc.string(),
        async (elections, token) => {
          const schema = ListElectionsResponseSchema;
          const plain = create(schema, { nextPageToken: token });
          plain.elections = elections.map(toSummary);
          const shared = await withSummaries(
            schema,
            create(schema, { nextPageToken: token }),
            elections,
            cache,
          );
          assert.deepEqual(toBinary(schema, shared), toBinary(schema, plain));
        },
      ),
    );
  });

  it("sends a JSON client the summaries as messages", async () => {
    const elections = fc.sample(election, 3);
    const json = await withSummaries(
      ListElectionsResponseSchema,
      create(ListElectionsResponseSchema),
      elections,
      undefined,
    );
    assert.deepEqual(json.elections, elections.map(toSummary));
    assert.equal(json.$unknown, undefined);
  });

  it("encodes a state once while it is cached, again once it changed, and stays in its budget", () => {
    // About 20 bytes each, and 300 of overhead: three fit.
    const base = newElection("base", ["t"], undefined, 0);
    const cache = new SummaryCache(1000);
    const first = cache.field(base);
    assert.equal(cache.field(base), first, "the same state: the same bytes");
    const next = { ...base, version: base.version + 1 };
    const changed = cache.field(next);
    assert.notEqual(changed, first);
    assert.equal(cache.field(next), changed);
    // Past the budget the least recently used go: each costs its bytes and 300 more.
    const others = Array.from({ length: 10 }, (_, i) => ({ ...base, name: `other-${i}` }));
    const fields = others.map((e) => cache.field(e));
    assert.notEqual(cache.field(next), changed, "dropped, encoded again");
    assert.equal(cache.field(others[9] as Election), fields[9], "the newest is kept");
  });

  it("lets the event loop run every 5 ms while encoding a page, and not without need", async () => {
    const page = Array.from({ length: 20 }, (_, i) => newElection(`slice-${i}`, [], undefined, 0));
    /** Whether an immediate queued before encoding ran before the page was encoded. */
    const interleaved = async (cache: SummaryCache) => {
      let ran = false;
      setImmediate(() => {
        ran = true;
      });
      const fields = await cache.fields(page);
      assert.equal(fields.length, 20);
      return ran;
    };
    let clock = 0;
    // Each summary takes 1 ms on this clock: 20 ms in all.
    assert.equal(await interleaved(new SummaryCache(1 << 20, () => clock++)), true);
    assert.equal(await interleaved(new SummaryCache(1 << 20, () => 0)), false);
  });

  it("answers a Connect GET in the encoding its query asks for", async () => {
    const server = await startServer();
    for (const name of ["get/a", "get/b"]) await server.store.create(name, ["t"]);
    for (const useBinaryFormat of [true, false]) {
      const transport = createConnectTransport({
        baseUrl: server.url,
        httpVersion: "1.1",
        useHttpGet: true,
        useBinaryFormat,
      });
      const page = await createClient(ElectionDirectoryService, transport).listElections({
        namePrefix: "get/",
        pageSize: 1,
      });
      assert.deepEqual(
        page.elections.map((e) => [e.name, e.tags, e.version]),
        [["get/a", ["t"], 1n]],
        useBinaryFormat ? "proto" : "json",
      );
      assert.equal(page.nextPageToken, "get/a");
    }
  });
});
