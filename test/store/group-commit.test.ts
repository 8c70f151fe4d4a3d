// Group commit (server/store/group-commit.ts) against a small in-process model of etcd's
// transaction: compares of mod revisions, puts, one revision per transaction, and etcd's
// refusals (a key written twice, too many operations). The etcd store's own tests run it
// against real etcd clusters (test/store/store-contract.test.ts, test/etcd/).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ICompare, IRequestOp, ITxnRequest, ITxnResponse } from "etcd3";
import {
  type Commit,
  GroupCommit,
  type GroupCommitOptions,
} from "../../server/store/group-commit.js";

/** One turn of the event loop: what was submitted has been sent or queued. */
const turn = () => new Promise((resolve) => setImmediate(resolve));

/** etcd's transaction, as far as group commit relies on it. */
class ModelEtcd {
  revision = 1;
  readonly mods = new Map<string, number>();
  readonly sent: ITxnRequest[] = [];
  /** Calls answered only when released: what is in flight. */
  readonly held: (() => void)[] = [];
  hold = false;
  /** An error to answer a request with, instead of doing it. */
  refuse: (request: ITxnRequest) => Error | undefined = () => undefined;

  constructor(readonly maxOps: number) {}

  txn = async (request: ITxnRequest): Promise<ITxnResponse> => {
    this.sent.push(request);
    if (this.hold) await new Promise<void>((resolve) => this.held.push(resolve));
    const refused = this.refuse(request);
    if (refused) throw refused;
    const compare = request.compare ?? [];
    const success = request.success ?? [];
    if (compare.length + success.length > this.maxOps) {
      throw new Error("etcdserver: too many operations in txn request");
    }
    const written = success.map((op) => String(op.request_put?.key));
    if (new Set(written).size !== written.length) {
      throw new Error("etcdserver: duplicate key given in txn request");
    }
    const holds = compare.every(
      (c) => (this.mods.get(String(c.key)) ?? 0) === Number(c.mod_revision),
    );
    const header = { revision: String(this.revision) } as ITxnResponse["header"];
    if (!holds) {
      const responses = (request.failure ?? []).map((op) => ({
        response_range: {
          kvs: [
            {
              key: op.request_range?.key,
              mod_revision: this.mods.get(String(op.request_range?.key)),
            },
          ],
        },
      }));
      return { header, succeeded: false, responses } as unknown as ITxnResponse;
    }
    this.revision++;
    for (const key of written) this.mods.set(key, this.revision);
    return {
      header: { revision: String(this.revision) },
      succeeded: true,
      responses: [],
    } as unknown as ITxnResponse;
  };

  /** After what was submitted has had its turn: answers every held call, holds no more. */
  async answer(): Promise<void> {
    await turn();
    this.hold = false;
    for (const go of this.held.splice(0)) go();
  }
}

/** A change of `name` made on the revision it was read at. */
function change(name: string, readAt: number): Commit {
  const key = Buffer.from(name);
  const compare: ICompare[] = [
    { key, target: "Mod", result: "Equal", mod_revision: String(readAt) },
  ];
  const success: IRequestOp[] = [{ request_put: { key, value: Buffer.from("x") } }];
  return { name, compare, success, failure: [{ request_range: { key } }] };
}

const late = () => new Error("too late");

/** A model etcd whose operation limit is `maxOps`, and group commit in front of it. */
function setup(options: Partial<Omit<GroupCommitOptions, "txn" | "late">> = {}) {
  const { maxOps = 128, maxInFlight = 1, timeoutMs = 5000, now } = options;
  const etcd = new ModelEtcd(maxOps);
  const commits = new GroupCommit({
    txn: etcd.txn,
    maxOps,
    maxInFlight,
    timeoutMs,
    late,
    ...(now === undefined ? {} : { now }),
  });
  return { etcd, commits };
}

describe("group commit", () => {
  it("sends what arrives while transactions are in flight as one, at one revision", async () => {
    const { etcd, commits } = setup();
    etcd.hold = true;
    const first = commits.submit(change("a", 0));
    const rest = ["b", "c", "d"].map((name) => commits.submit(change(name, 0)));
    await turn();
    assert.equal(etcd.sent.length, 1, "the others wait for the one in flight");
    await etcd.answer();
    assert.equal((await first).succeeded, true);
    const results = await Promise.all(rest);
    assert.equal(etcd.sent.length, 2, "b, c and d went in one transaction");
    assert.deepEqual(
      results.map((r) => [r.succeeded, r.header.revision]),
      [
        [true, "3"],
        [true, "3"],
        [true, "3"],
      ],
    );
    assert.deepEqual(
      [...etcd.mods],
      [
        ["a", 2],
        ["b", 3],
        ["c", 3],
        ["d", 3],
      ],
    );
  });

  it("never puts two changes of one election in one transaction", async () => {
    const { etcd, commits } = setup();
    etcd.hold = true;
    const first = commits.submit(change("x", 0));
    const again = commits.submit(change("a", 0));
    const twice = commits.submit(change("a", 0));
    const other = commits.submit(change("b", 0));
    await etcd.answer();
    await first;
    const [a1, a2, b] = await Promise.all([again, twice, other]);
    assert.equal(a1.succeeded, true);
    assert.equal(b.succeeded, true);
    // The second change of a was decided on the state the first replaced: its compare fails
    // and it gets the election as the failure read it, to decide again.
    assert.equal(a2.succeeded, false);
    assert.equal(a2.responses[0]?.response_range.kvs[0]?.mod_revision, 3);
    assert.ok(
      etcd.sent.every((t) => {
        const keys = (t.success ?? []).map((op) => String(op.request_put?.key));
        return new Set(keys).size === keys.length;
      }),
      "no transaction wrote a key twice",
    );
  });

  it("keeps each transaction within maxOps", async () => {
    const { etcd, commits } = setup({ maxOps: 4 });
    etcd.hold = true;
    const all = ["x", "a", "b", "c", "d", "e"].map((name) => commits.submit(change(name, 0)));
    await etcd.answer();
    const results = await Promise.all(all);
    assert.ok(results.every((r) => r.succeeded));
    // x alone (in flight), then two changes (4 operations) per transaction.
    assert.deepEqual(
      etcd.sent.map((t) => (t.success ?? []).length),
      [1, 2, 2, 1],
    );
  });

  it("tells the changes of a failed transaction apart by their own compares", async () => {
    const { etcd, commits } = setup();
    etcd.mods.set("b", 7); // b changed since it was read
    etcd.hold = true;
    const first = commits.submit(change("x", 0));
    const [a, b, c] = ["a", "b", "c"].map((name) => commits.submit(change(name, 0)));
    await etcd.answer();
    await first;
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    assert.equal(ra?.succeeded, true);
    assert.equal(rc?.succeeded, true);
    assert.equal(ra?.header.revision, rc?.header.revision, "a and c went again together");
    assert.equal(rb?.succeeded, false);
    assert.equal(rb?.responses.length, 1);
    assert.equal(rb?.responses[0]?.response_range.kvs[0]?.mod_revision, 7, "b's own failure read");
    assert.equal(etcd.sent.length, 3, "x, the batch, then a and c");
  });

  it("holds a change of an election until the one in flight is answered", async () => {
    const { etcd, commits } = setup({ maxInFlight: 2 });
    etcd.hold = true;
    const first = commits.submit(change("a", 0));
    const second = commits.submit(change("a", 0));
    await turn();
    assert.equal(etcd.sent.length, 1, "one transaction in flight although two may be");
    await etcd.answer();
    assert.equal((await first).succeeded, true);
    assert.equal((await second).succeeded, false, "decided on the state the first replaced");
  });

  it("sends each alone when etcd refuses a transaction, and not one that waited too long", async () => {
    let now = 0;
    const { etcd, commits } = setup({ timeoutMs: 1000, now: () => now });
    etcd.hold = true;
    const first = commits.submit(change("x", 0));
    const batch = ["a", "b"].map((name) => commits.submit(change(name, 0)));
    etcd.refuse = (request) =>
      (request.success ?? []).length > 1
        ? new Error("etcdserver: request is too large")
        : undefined;
    await etcd.answer();
    assert.equal((await first).succeeded, true);
    const results = await Promise.all(batch);
    assert.ok(
      results.every((r) => r.succeeded),
      "each went through alone",
    );
    assert.deepEqual(
      etcd.sent.map((t) => (t.success ?? []).length),
      [1, 2, 1, 1],
    );
    etcd.refuse = () => undefined;
    await turn(); // the batch's turn is over

    // A change still queued when its caller's deadline passes is never sent.
    etcd.hold = true;
    const slow = commits.submit(change("y", 0));
    const waiting = commits.submit(change("z", 0));
    await turn();
    const sent = etcd.sent.length;
    now = 1000;
    await etcd.answer();
    assert.equal((await slow).succeeded, true);
    await assert.rejects(waiting, /too late/);
    assert.equal(etcd.sent.length, sent, "z was not sent");
  });
});
