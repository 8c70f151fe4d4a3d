// The elections that election pages show, followed over ONE stream:
// ElectionHistoryService.WatchElectionList. A browser opens at most six HTTP/1.1
// connections to a server and an open stream holds one of them, so with a stream per tab
// the seventh tab (or the fourth, at two streams a page) waits forever. One feed serves
// every tab of the browser: it runs in a SharedWorker (feed-worker.ts), or in the tab
// itself where SharedWorker does not exist (feed-client.ts chooses).
//
// Why this design: one owner of the stream, living exactly as long as some tab is open,
// with no election of a leader tab and no hand-over when that tab closes (what a
// BroadcastChannel + Web Locks design needs). The stream is opened again whenever the set
// of elections changes, and after it is lost, each election resumed after the last version
// this feed passed on: the server sends exactly the changes after it, so nothing is lost
// and nothing repeated, whatever the order of tabs opening and closing.
//
// This module runs in a worker: no DOM, no window.

import { create } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  type ElectionHistoryService,
  type WatchElectionResponse,
  WatchElectionResponseSchema,
  type WatchEnded,
} from "../../gen/electd/v1/history_pb.js";
import type { ConnectionState } from "./connection.js";

/** What one page hears about the election it shows. */
export interface FeedListener {
  /** The stream's state, for the connection indicator. */
  connection(state: ConnectionState): void;
  /**
   * The stream was opened again after it was lost: the messages up to the next one with a
   * term are what happened meanwhile.
   */
  resumed(): void;
  /** What WatchElection would send: a starting state, a change, or a live change. */
  message(response: WatchElectionResponse): void;
  /** The election's watch ended: not found, deleted, or a name that is not valid. */
  ended(ended: WatchEnded): void;
}

interface Followed {
  /** The last version passed on: where the election resumes when the stream opens again. */
  version: bigint;
  readonly listeners: Set<FeedListener>;
  /** The last message with the whole state: what a page that joins later starts from. */
  state?: WatchElectionResponse;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 4000;
/**
 * How long a change of the set waits for more: tabs opened together (a restored session)
 * open the stream once or twice, not once each.
 */
const GATHER_MS = 50;

export class ElectionFeed {
  private readonly followed = new Map<string, Followed>();
  /** The stream open now; aborted to open it again with another set. */
  private attempt: AbortController | undefined;
  /** Wakes the loop waiting for elections to follow, or out of a retry's wait. */
  private wake: (() => void) | undefined;
  private gathering: ReturnType<typeof setTimeout> | undefined;
  private state: ConnectionState = { kind: "connecting" };

  constructor(private readonly history: Client<typeof ElectionHistoryService>) {
    void this.run();
  }

  /** Starts passing `name`'s messages to `listener`, after `version` (0: from its state). */
  follow(name: string, version: bigint, listener: FeedListener): void {
    listener.connection(this.state);
    const followed = this.followed.get(name);
    if (followed) {
      followed.listeners.add(listener);
      // Joins where the others are: from the state they have, as a starting state, marked
      // reset for a page that had seen an older version (it missed what came between).
      if (followed.state) {
        listener.message(
          create(WatchElectionResponseSchema, {
            term: followed.state.term,
            bindings: followed.state.bindings,
            tags: followed.state.tags,
            version: followed.version,
            reset: version !== 0n && version < followed.version,
          }),
        );
      }
      return;
    }
    this.followed.set(name, { version, listeners: new Set([listener]) });
    this.changed();
  }

  leave(name: string, listener: FeedListener): void {
    const followed = this.followed.get(name);
    if (!followed?.listeners.delete(listener) || followed.listeners.size > 0) return;
    this.followed.delete(name);
    this.changed();
  }

  /** The set changed: open the stream again with it, once the changes stop coming. */
  private changed(): void {
    clearTimeout(this.gathering);
    this.gathering = setTimeout(() => {
      this.gathering = undefined;
      this.attempt?.abort();
      this.wake?.();
    }, GATHER_MS);
  }

  private tell(state: ConnectionState): void {
    this.state = state;
    for (const { listeners } of this.followed.values()) {
      for (const listener of listeners) listener.connection(state);
    }
  }

  private idle(ms?: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      const wake = () => done();
      this.wake = wake;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    }).then(() => {
      this.wake = undefined;
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    /** The last stream was lost: the next one brings what happened meanwhile. */
    let lost = false;
    for (;;) {
      if (this.followed.size === 0 || this.gathering !== undefined) {
        // No stream while nothing is followed: a page that comes next waits for one.
        if (this.followed.size === 0) this.state = { kind: "connecting" };
        await this.idle();
        continue;
      }
      const attempt = new AbortController();
      this.attempt = attempt;
      const elections = [...this.followed].map(([name, f]) => ({
        name,
        afterVersion: f.version,
      }));
      if (lost) {
        for (const { listeners } of this.followed.values()) {
          for (const listener of listeners) listener.resumed();
        }
      }
      // Pages already say "connecting" until the first stream is live.
      if (this.state.kind === "offline") this.tell({ kind: "connecting" });
      let reason = "the server ended the stream";
      // Opening again with another set aborts this stream and must not wait for it to wind
      // down: a transport can take long to end a read it was reading when aborted (seen
      // with Node's fetch while the other elections' changes kept coming), and the new
      // set's pages would wait with it.
      const reopened = new Promise<never>((_, reject) => {
        attempt.signal.addEventListener("abort", () => reject(attempt.signal.reason), {
          once: true,
        });
      });
      // Aborted after this stream ended (a later change of the set), it is nobody's error.
      reopened.catch(() => {});
      const stream = this.history
        .watchElectionList({ elections }, { signal: attempt.signal })
        [Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await Promise.race([stream.next(), reopened]);
          if (next.done) break;
          const m = next.value;
          if (this.state.kind !== "live") {
            failures = 0;
            lost = false;
            this.tell({ kind: "live" });
          }
          this.pass(m.name, m.response, m.ended);
        }
      } catch (error) {
        // Left behind, the aborted stream ends on its own; nothing waits for it.
        if (attempt.signal.aborted) void stream.return?.()?.catch(() => {});
        const e = ConnectError.from(error);
        reason = e.rawMessage ? `${codeToString(e.code)}: ${e.rawMessage}` : codeToString(e.code);
      }
      // Opened again with another set: not a loss.
      if (attempt.signal.aborted) continue;
      // Every election's watch ended and none was added meanwhile: nothing was lost.
      if (this.followed.size === 0) continue;
      lost = true;
      // Jitter spreads the reconnects of many open dashboards after a server restart.
      const base = Math.min(FIRST_RETRY_MS * 2 ** failures, MAX_RETRY_MS);
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      failures++;
      this.tell({ kind: "offline", retryAt: Date.now() + delay, reason });
      await this.idle(delay);
    }
  }

  private pass(
    name: string,
    response: WatchElectionResponse | undefined,
    ended: WatchEnded | undefined,
  ): void {
    // Left since the stream opened: its messages go nowhere until it is opened again.
    const followed = this.followed.get(name);
    if (!followed) return;
    if (ended) {
      this.followed.delete(name);
      for (const listener of followed.listeners) listener.ended(ended);
      return;
    }
    if (!response) return;
    followed.version = response.version;
    if (response.term) followed.state = response;
    for (const listener of followed.listeners) listener.message(response);
  }
}
