// The SharedWorker every dashboard tab of one server connects to: it holds the one feed
// (feed.ts) and passes each tab the messages of the elections it follows. Tabs say when
// they stop following (and when they go away); a tab that crashed before saying so leaves
// its elections followed until the worker ends with the last tab.
import { toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import {
  ElectionHistoryService,
  WatchElectionResponseSchema,
} from "../../gen/electd/v1/history_pb.js";
import { ElectionFeed, type FeedListener } from "./feed.js";
import type { FeedMessage, TabMessage } from "./feed-protocol.js";

const transport = createGrpcWebTransport({ baseUrl: self.location.origin });
const feed = new ElectionFeed(createClient(ElectionHistoryService, transport));

function listenerFor(port: MessagePort, name: string, ended: () => void): FeedListener {
  const post = (message: FeedMessage) => port.postMessage(message);
  return {
    connection: (state) => post({ name, kind: "connection", state }),
    resumed: () => post({ name, kind: "resumed" }),
    message: (response) =>
      post({ name, kind: "message", bytes: toBinary(WatchElectionResponseSchema, response) }),
    ended: ({ code, message }) => {
      ended();
      post({ name, kind: "ended", code, message });
    },
  };
}

self.addEventListener("connect", (event) => {
  const port = (event as MessageEvent).ports[0];
  if (!port) return;
  /** This tab's listeners, by election. */
  const listeners = new Map<string, FeedListener>();
  port.addEventListener("message", ({ data }: MessageEvent<TabMessage>) => {
    if (data.kind === "follow") {
      if (listeners.has(data.name)) return;
      const listener = listenerFor(port, data.name, () => listeners.delete(data.name));
      listeners.set(data.name, listener);
      feed.follow(data.name, data.version, listener);
      return;
    }
    const names = data.kind === "leave" ? [data.name] : [...listeners.keys()];
    for (const name of names) {
      const listener = listeners.get(name);
      if (!listener) continue;
      listeners.delete(name);
      feed.leave(name, listener);
    }
  });
  port.start();
  port.postMessage({ kind: "started" } satisfies FeedMessage);
});
