// A server stream that the transport sends as its messages come, instead of reading them
// from an async generator: nothing of it waits while the stream is idle, so an idle watch
// holds a queue and a few objects rather than a chain of suspended generators (about 20 KiB
// of heap per watch, measured with heap snapshots of 5,000 idle watches). The direct path
// (http/direct.ts) sends Watch this way; Connect's regular path reads the same watch from the
// implementation's generator.
import type { QueueReader } from "../watch/hub.js";

export interface PushedStream {
  /**
   * Opens the stream for request `input`, admitted already. `reader` is told whenever a
   * message is queued or the stream ends; the transport then polls, and closes the feed
   * when its client goes away (there is no abort signal). Throws when the call fails.
   */
  open(input: unknown, reader: QueueReader): Promise<MessageFeed>;
}

export interface MessageFeed {
  /** The next message, or undefined when none is waiting. Throws when the stream fails. */
  poll(): object | undefined;
  /** Whether nothing more will come. */
  readonly ended: boolean;
  /** Ends the stream: its client went away. */
  close(): void;
}
