// How an election page follows its election: through the feed every tab of this server
// shares in a SharedWorker (feed-worker.ts), so any number of tabs hold one stream between
// them; where SharedWorker does not exist (Chrome on Android), through a feed of the tab's
// own, one stream per tab.
import { create, fromBinary } from "@bufbuild/protobuf";
import { WatchElectionResponseSchema, WatchEndedSchema } from "../../gen/electd/v1/history_pb.js";
import { history } from "./api.js";
import { ElectionFeed, type FeedListener } from "./feed.js";
import type { FeedMessage, TabMessage } from "./feed-protocol.js";
import { token } from "./sign-in.js";

interface Feed {
  follow(name: string, version: bigint, listener: FeedListener): void;
  leave(name: string, listener: FeedListener): void;
}

let feed: Feed | undefined;

/**
 * How long a tab waits for the shared worker to say it started before following on its
 * own. A worker whose script cannot load should fire "error" at once, but Chromium does not
 * always deliver it (about one time in twenty-five in e2e/tabs.spec.ts); a worker that
 * starts later than this only costs the tab a stream of its own.
 */
const WORKER_START_MS = 3_000;

/** Passes `name`'s messages after `version` to `listener` until `signal` aborts. */
export function followElection(
  name: string,
  version: bigint,
  listener: FeedListener,
  signal: AbortSignal,
): void {
  // A tab signed in with a token follows on its own: the shared worker is every tab's,
  // whoever each is signed in as, and has no token of its own (sign-in.ts).
  feed ??=
    typeof SharedWorker === "function" && token() === undefined
      ? sharedFeed()
      : new ElectionFeed(history);
  feed.follow(name, version, listener);
  // Whichever feed it is by then: the tab may have had to fall back on its own.
  signal.addEventListener("abort", () => feed?.leave(name, listener), { once: true });
}

function sharedFeed(): Feed {
  const worker = new SharedWorker(new URL("./feed-worker.ts", import.meta.url), {
    type: "module",
    name: "electd feed",
  });
  const port = worker.port;
  const post = (message: TabMessage) => port.postMessage(message);
  /** What this tab follows, and the last version each got: where it follows again from. */
  const followed = new Map<string, { listener: FeedListener; version: bigint }>();
  let started = false;
  port.addEventListener("message", ({ data }: MessageEvent<FeedMessage>) => {
    if (data.kind === "started") {
      started = true;
      clearTimeout(startTimer);
      return;
    }
    const entry = followed.get(data.name);
    if (!entry) return;
    switch (data.kind) {
      case "connection":
        entry.listener.connection(data.state);
        break;
      case "resumed":
        entry.listener.resumed();
        break;
      case "message": {
        const response = fromBinary(WatchElectionResponseSchema, data.bytes);
        entry.version = response.version;
        entry.listener.message(response);
        break;
      }
      case "ended":
        followed.delete(data.name);
        entry.listener.ended(create(WatchEndedSchema, { code: data.code, message: data.message }));
        break;
    }
  });
  port.start();
  // The worker could not start (its script gone after an upgrade of the server, say), or
  // has not said it did in time: this tab follows on its own, from the versions it had.
  const fallBack = () => {
    if (started || feed !== shared) return;
    clearTimeout(startTimer);
    // A worker that started after all lets go of what this tab asked it to follow.
    post({ kind: "close" });
    port.close();
    const own = new ElectionFeed(history);
    feed = own;
    for (const [name, entry] of followed) own.follow(name, entry.version, entry.listener);
    followed.clear();
  };
  const startTimer = setTimeout(fallBack, WORKER_START_MS);
  worker.addEventListener("error", fallBack);
  // A tab closed or put in the back/forward cache stops following; one shown again from
  // the cache follows again from the versions it had, and hears that it was away.
  window.addEventListener("pagehide", () => post({ kind: "close" }));
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    for (const [name, entry] of followed) {
      entry.listener.resumed();
      post({ kind: "follow", name, version: entry.version });
    }
  });
  const shared: Feed = {
    follow(name, version, listener) {
      followed.set(name, { listener, version });
      post({ kind: "follow", name, version });
    },
    leave(name, listener) {
      if (followed.get(name)?.listener !== listener) return;
      followed.delete(name);
      post({ kind: "leave", name });
    },
  };
  return shared;
}
