// Group commit for the etcd store: the transactions of concurrent changes to different
// elections go to etcd as one transaction, the conjunction of their compares and all of
// their writes. When every compare holds, every change commits at the same revision, and
// that is what each would have got alone. When one fails, the transaction reads every key
// compared instead, and each change is told apart by its own compares: one whose compares
// held goes again in the next transaction, one whose compare failed gets the failure read
// it would have got alone (the election as it is now), to decide again.
//
// Why: on `--store etcd` an electd server's CPU, not etcd, limited writes (bench:etcd: two
// servers spent 1.1 ms of CPU per Enter or Withdraw, against 0.7 ms in etcd), and about
// half of it went to the etcd client, whose cost is per call (gRPC call setup, HTTP/2
// headers, the circuit breaker and retry policy around each call). Batching pays it once
// per transaction. No batching library fits: the batch must respect etcd's limits (at most
// `maxOps` operations; no key written twice in one transaction) and tell its members
// apart when it fails.
import type { ICompare, IRequestOp, IResponseOp, ITxnRequest, ITxnResponse } from "etcd3";

/** One change's transaction. */
export interface Commit {
  /** The election it changes: two commits of one election never share a transaction. */
  readonly name: string;
  readonly compare: readonly ICompare[];
  readonly success: readonly IRequestOp[];
  /** Read when the compare fails, sent alone: the election as the failure found it. */
  readonly failure: readonly IRequestOp[];
}

interface Queued {
  readonly commit: Commit;
  readonly ops: number;
  /** performance.now() when submitted: its caller gives up `timeoutMs` later. */
  readonly at: number;
  readonly resolve: (result: ITxnResponse) => void;
  readonly reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  /** Sends one transaction (with the store's deadline). */
  readonly txn: (request: ITxnRequest) => Promise<ITxnResponse>;
  /** Most operations (compares and writes) in one transaction: etcd's --max-txn-ops. */
  readonly maxOps: number;
  /** Transactions in flight at once; commits arriving meanwhile wait and go together. */
  readonly maxInFlight: number;
  /** A commit waiting longer than this is not sent: its caller has given up. */
  readonly timeoutMs: number;
  /** What a commit that waited too long is rejected with. */
  readonly late: () => Error;
  readonly now?: () => number;
}

export class GroupCommit {
  private readonly queue: Queued[] = [];
  private inFlight = 0;
  /** Elections with a commit in flight: the next commit of one waits for its answer. */
  private readonly flying = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly options: GroupCommitOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Commits `commit`, alone or with others: the response of the transaction it went in. */
  submit(commit: Commit): Promise<ITxnResponse> {
    return new Promise((resolve, reject) => {
      const ops = commit.compare.length + commit.success.length;
      this.queue.push({ commit, ops, at: this.now(), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.take();
      if (batch.length === 0) break; // what is left waits for a commit in flight
      this.inFlight++;
      for (const q of batch) this.flying.add(q.commit.name);
      this.send(batch).finally(() => {
        this.inFlight--;
        for (const q of batch) this.flying.delete(q.commit.name);
        this.pump();
      });
    }
  }

  /** The next batch, in submission order: what fits, one commit per election. */
  private take(): Queued[] {
    const batch: Queued[] = [];
    const names = new Set<string>();
    let ops = 0;
    for (let i = 0; i < this.queue.length; ) {
      const queued = this.queue[i] as Queued;
      if (this.expired(queued)) {
        this.queue.splice(i, 1);
        queued.reject(this.options.late());
        continue;
      }
      const fits = batch.length === 0 || ops + queued.ops <= this.options.maxOps;
      if (!fits) break;
      if (names.has(queued.commit.name) || this.flying.has(queued.commit.name)) {
        i++; // a later batch takes it, once the one before it is answered
        continue;
      }
      this.queue.splice(i, 1);
      batch.push(queued);
      names.add(queued.commit.name);
      ops += queued.ops;
    }
    return batch;
  }

  private expired(queued: Queued): boolean {
    return this.now() - queued.at >= this.options.timeoutMs;
  }

  private async send(batch: readonly Queued[]): Promise<void> {
    if (batch.length === 1) return this.alone(batch[0] as Queued);
    const compared = new Map<string, Buffer>();
    for (const q of batch) {
      for (const { key } of q.commit.compare) if (key !== undefined) compared.set(keyOf(key), key);
    }
    const keys = [...compared.values()];
    let result: ITxnResponse;
    try {
      result = await this.options.txn({
        compare: batch.flatMap((q) => q.commit.compare),
        success: batch.flatMap((q) => q.commit.success),
        failure: keys.map((key) => ({ request_range: { key } })),
      });
    } catch (error) {
      // Refused as a whole (over a limit of etcd's, say), or etcd is failing: each goes
      // alone while its caller still waits, and a failing etcd fails it again.
      await Promise.all(batch.map((q) => (this.expired(q) ? q.reject(error) : this.alone(q))));
      return;
    }
    if (result.succeeded) {
      for (const q of batch) q.resolve(result);
      return;
    }
    const read = new Map<string, IResponseOp>();
    keys.forEach((key, i) => {
      const response = result.responses[i];
      if (response) read.set(keyOf(key), response);
    });
    const again: Queued[] = [];
    const alone: Queued[] = [];
    for (const q of batch) {
      const holds = q.commit.compare.map((c) => compareHolds(c, read));
      if (holds.every((h) => h === true)) again.push(q);
      else if (holds.includes(undefined)) alone.push(q);
      else {
        // What its own failure reads would have found: the same keys, read just now.
        const responses = q.commit.failure.map((op) =>
          op.request_range?.range_end === undefined && op.request_range?.key !== undefined
            ? read.get(keyOf(op.request_range.key))
            : undefined,
        );
        if (responses.every((r) => r !== undefined)) {
          q.resolve({ ...result, responses: responses as IResponseOp[] });
        } else alone.push(q);
      }
    }
    // First in line for the next transaction, in the order they came.
    this.queue.unshift(...again);
    await Promise.all(alone.map((q) => this.alone(q)));
  }

  private async alone(queued: Queued): Promise<void> {
    const { compare, success, failure } = queued.commit;
    try {
      queued.resolve(
        await this.options.txn({
          compare: [...compare],
          success: [...success],
          failure: [...failure],
        }),
      );
    } catch (error) {
      queued.reject(error);
    }
  }
}

function keyOf(key: Buffer): string {
  return key.toString("latin1");
}

/**
 * Whether a compare holds on the keys as read: true or false for a comparison of a key's
 * mod revision, undefined for any other kind (told only by sending it alone).
 */
function compareHolds(
  compare: ICompare,
  read: ReadonlyMap<string, IResponseOp>,
): boolean | undefined {
  const response = compare.key && read.get(keyOf(compare.key))?.response_range;
  if (!response || compare.target !== "Mod" || compare.result !== "Equal") {
    return undefined;
  }
  if (compare.range_end !== undefined) return undefined;
  const current = response.kvs[0]?.mod_revision ?? "0";
  return String(current) === String(compare.mod_revision ?? "0");
}
