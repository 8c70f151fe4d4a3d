// What a tab and the shared feed (feed-worker.ts) say to each other over a MessagePort.
// Messages of the API cross as their protobuf bytes: structured cloning would drop what
// makes them messages.
import type { ConnectionState } from "./connection.js";

export type TabMessage =
  /** Follow `name` after `version` (0: from its current state). */
  | { readonly kind: "follow"; readonly name: string; readonly version: bigint }
  | { readonly kind: "leave"; readonly name: string }
  /** The tab is going away (closed, or put in the back/forward cache). */
  | { readonly kind: "close" };

export type FeedMessage =
  /** The worker runs: sent to each tab as it connects. */
  | { readonly kind: "started" }
  | ({ readonly name: string } & (
      | { readonly kind: "connection"; readonly state: ConnectionState }
      | { readonly kind: "resumed" }
      /** A WatchElectionResponse, encoded. */
      | { readonly kind: "message"; readonly bytes: Uint8Array }
      | { readonly kind: "ended"; readonly code: string; readonly message: string }
    ));
