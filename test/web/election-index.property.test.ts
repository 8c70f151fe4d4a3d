// Model-based property test of the list page's copy of the directory
// (web/src/election-index.ts): whatever mix of snapshot chunks, resets, changes, deletions,
// a first ListElections page and filter changes arrives, after `settle` the names shown are
// those a naive reference computes from scratch: every election held, filtered, sorted.
// The index patches its sorted arrays in place for small batches and rebuilds them for
// large ones; both paths are exercised, with each kind of change.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import {
  type Election,
  ElectionSchema,
  WatchElectionsResponseSchema,
} from "../../gen/electd/v1/directory_pb.js";
import { ElectionIndex } from "../../web/src/election-index.js";

// Few names, so that the same ones are changed, deleted and re-created; some are special
// to plain objects, some differ only in case or sort apart in UTF-16.
const NAMES = ["a", "ab", "b", "B", "__proto__", "constructor", "é", "z", "node-1", "x-a"];
/** Enough names to pass the index's patch limit (64) in one batch. */
const BULK = Array.from({ length: 120 }, (_, i) => `bulk-${String(i).padStart(3, "0")}`);
const QUERIES = ["", "a", "ab", "b", "node", "proto", "é", "tag-2", "bulk-1", "zz"];

/** What an election looks like at a version: the same version always looks the same. */
function election(name: string, version: number): Election {
  return create(ElectionSchema, {
    name,
    tags: version % 3 === 0 ? [] : [`tag-${version % 4}`],
    term: { term: BigInt(version), leader: version % 2 === 0 ? "" : `node-${version % 5}` },
    version: BigInt(version),
  });
}

type Step =
  | {
      kind: "response";
      elections: string[];
      resend: boolean;
      deleted: string[];
      reset: boolean;
      complete: boolean;
    }
  | { kind: "preview"; elections: string[] }
  | { kind: "query"; query: string }
  | { kind: "settle" };

const name = fc.constantFrom(...NAMES);
const bulk = fc.subarray(BULK, { minLength: 65 });
const response = (elections: fc.Arbitrary<string[]>, deleted: fc.Arbitrary<string[]>) =>
  fc.record({
    kind: fc.constant("response" as const),
    elections,
    resend: fc.boolean(),
    deleted,
    reset: fc.boolean(),
    complete: fc.boolean(),
  });
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 5,
    arbitrary: response(fc.array(name, { maxLength: 12 }), fc.array(name, { maxLength: 3 })),
  },
  // Many elections created or changed, or deleted, at once: the rebuild paths.
  { weight: 1, arbitrary: response(bulk, fc.constant([])) },
  { weight: 1, arbitrary: response(fc.constant([]), bulk) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("preview" as const),
      elections: fc.array(name, { maxLength: 5 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("query" as const),
      query: fc.constantFrom(...QUERIES),
    }),
  },
  { weight: 3, arbitrary: fc.constant({ kind: "settle" as const }) },
);

/** The reference: a map of what is held, and a snapshot's names while one is arriving. */
class Model {
  readonly held = new Map<string, Election>();
  snapshot: Set<string> | undefined;
  complete = false;
  query = "";

  view(): string[] {
    return [...this.held.values()]
      .filter((e) =>
        [e.name, ...e.tags, e.term?.leader ?? ""].join("\n").toLowerCase().includes(this.query),
      )
      .map((e) => e.name)
      .sort();
  }
}

describe("the list page's election index", () => {
  it("shows, after every settle, the held elections that match, in name order", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const index = new ElectionIndex();
        const model = new Model();
        const versions = new Map<string, number>();
        let clock = 0;
        const next = (n: string, resend: boolean): Election => {
          const known = versions.get(n);
          const version = resend && known !== undefined ? known : ++clock;
          versions.set(n, version);
          return election(n, version);
        };
        for (const s of steps) {
          switch (s.kind) {
            case "response": {
              const elections = s.elections.map((n) => next(n, s.resend));
              index.apply(
                create(WatchElectionsResponseSchema, {
                  elections,
                  deleted: s.deleted,
                  reset: s.reset,
                  snapshotComplete: s.complete,
                }),
              );
              if (s.reset) model.snapshot = new Set();
              for (const e of elections) {
                model.snapshot?.add(e.name);
                model.held.set(e.name, e);
              }
              for (const n of s.deleted) model.held.delete(n);
              if (s.complete && model.snapshot) {
                const kept = model.snapshot;
                model.snapshot = undefined;
                model.complete = true;
                for (const n of [...model.held.keys()]) if (!kept.has(n)) model.held.delete(n);
              }
              break;
            }
            case "preview": {
              const elections = s.elections.map((n) => next(n, false));
              index.preview(elections);
              if (model.held.size === 0 && !model.complete) {
                for (const e of elections) model.held.set(e.name, e);
              }
              break;
            }
            case "query":
              index.setQuery(s.query);
              model.query = s.query;
              assert.deepEqual(index.view, model.view(), "right after a new query");
              break;
            case "settle":
              index.settle();
              assert.deepEqual(index.view, model.view());
              break;
          }
          assert.equal(index.size, model.held.size);
          assert.equal(index.loaded, model.complete);
        }
        index.settle();
        assert.deepEqual(index.view, model.view());
        for (const n of index.view) {
          const held = model.held.get(n) as Election;
          const entry = index.get(n);
          assert.equal(entry?.leader, held.term?.leader ?? "");
          assert.equal(entry?.term, held.term?.term ?? 0n);
          assert.deepEqual(entry?.tags, held.tags);
        }
      }),
      { numRuns: 400 },
    );
  });
});
