// Keeps the list page's directory stream open for as long as the page shows it: reconnects
// with exponential backoff (capped at a few seconds) when the server goes away or ends the
// stream, and lets the page start again from the fresh snapshot the stream sends first.
import { ConnectError } from "@connectrpc/connect";
import { codeName } from "./api.js";
import { showConnection } from "./connection.js";

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 4000;

export interface LiveStream<T> {
  open(signal: AbortSignal): AsyncIterable<T>;
  /** Before each connection attempt: the stream will start with a fresh snapshot. */
  onOpen?(): void;
  onMessage(message: T): void;
  /** An error that retrying cannot fix (not_found, invalid_argument): true stops following. */
  onRefused?(error: ConnectError): boolean;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

export function follow<T>(stream: LiveStream<T>, signal: AbortSignal): void {
  void (async () => {
    let failures = 0;
    while (!signal.aborted) {
      showConnection({ kind: "connecting" });
      stream.onOpen?.();
      let reason = "the server ended the stream";
      try {
        let first = true;
        for await (const message of stream.open(signal)) {
          if (first) {
            first = false;
            failures = 0;
            showConnection({ kind: "live" });
          }
          stream.onMessage(message);
        }
      } catch (error) {
        if (signal.aborted) return;
        const e = ConnectError.from(error);
        if (stream.onRefused?.(e)) {
          showConnection({ kind: "live" });
          return;
        }
        reason = e.rawMessage ? `${codeName(e.code)}: ${e.rawMessage}` : codeName(e.code);
      }
      if (signal.aborted) return;
      // Jitter spreads the reconnects of many open dashboards after a server restart.
      const base = Math.min(FIRST_RETRY_MS * 2 ** failures, MAX_RETRY_MS);
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      failures++;
      showConnection({ kind: "offline", retryAt: Date.now() + delay, reason });
      await sleep(delay, signal);
    }
  })();
}
