// Test-side watcher: follows an election through the Watch rpc and records every Term it
// receives with the time it arrived, so tests can wait for a state and measure when.
import type { Client } from "@connectrpc/connect";
import type { LeaderElection, Term } from "../../gen/atomix/runtime/election/v1/election_pb.js";

export interface Seen {
  readonly term: Term;
  /** performance.now() when the message arrived. */
  readonly at: number;
}

export interface TermWatch {
  readonly seen: readonly Seen[];
  /** The first Term (already seen or still to come) that passes `test`. */
  until(test: (term: Term) => boolean, timeoutMs?: number): Promise<Seen>;
  close(): Promise<void>;
}

export function watchTerms(client: Client<typeof LeaderElection>, name: string): TermWatch {
  const stop = new AbortController();
  const seen: Seen[] = [];
  let failure: unknown;
  let wake: () => void = () => {};
  const running = (async () => {
    try {
      for await (const { term } of client.watch({ id: { name } }, { signal: stop.signal })) {
        if (term) seen.push({ term, at: performance.now() });
        wake();
      }
    } catch (error) {
      if (!stop.signal.aborted) failure = error;
    }
    wake();
  })();
  return {
    seen,
    async until(test, timeoutMs = 5000) {
      const deadline = performance.now() + timeoutMs;
      for (let i = 0; ; ) {
        for (; i < seen.length; i++) {
          const item = seen[i] as Seen;
          if (test(item.term)) return item;
        }
        if (failure !== undefined) throw failure;
        const left = deadline - performance.now();
        if (left <= 0) {
          throw new Error(`watch of ${name}: no such state within ${timeoutMs} ms`);
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    },
    async close() {
      stop.abort();
      await running;
    },
  };
}
