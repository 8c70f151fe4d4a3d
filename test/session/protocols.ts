// The protocols every session test runs over, each as a real client transport to a real
// server. open() returns the transport and a close() that ends its HTTP/2 connection.
import type { Transport } from "@connectrpc/connect";
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
  Http2SessionManager,
} from "@connectrpc/connect-node";

export interface Protocol {
  readonly name: string;
  open(url: string): { transport: Transport; close(): void };
}

export const protocols: readonly Protocol[] = [
  {
    name: "Connect JSON over HTTP/1.1",
    open: (baseUrl) => ({
      transport: createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
      close() {},
    }),
  },
  {
    name: "gRPC over HTTP/2",
    open(baseUrl) {
      const sessionManager = new Http2SessionManager(baseUrl);
      return {
        transport: createGrpcTransport({ baseUrl, sessionManager }),
        close: () => sessionManager.abort(),
      };
    },
  },
  {
    name: "gRPC-Web over HTTP/1.1",
    open: (baseUrl) => ({
      transport: createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
      close() {},
    }),
  },
];

/** Runs against the given protocol names only (each test file picks what it needs). */
export function pick(...names: string[]): readonly Protocol[] {
  return protocols.filter((p) => names.some((n) => p.name.startsWith(n)));
}
