// How many RPCs ended with each code, added up per method and protocol as each call ends
// and handed to prom-client's counter when /metrics is scraped (metrics.ts).
//
// Why not prom-client's Counter.inc per call: it checks the label names and hashes the
// label values of every call, after the call's code is added to a copy of its labels: 2.7
// to 3.0 µs a call (a loop of it with a GetTerm's labels), about a thirtieth of a gRPC
// GetTerm's server CPU. Here a call adds one to a number its method's tally holds, found by
// object identity; prom-client still names, formats and serves every sample.
import type { DescMethod } from "@bufbuild/protobuf";
import type { Protocol } from "./requests.js";

export interface CallLabels {
  readonly service: string;
  readonly method: string;
  readonly protocol: Protocol;
}

/** The calls of one method in one protocol that have ended, by code. */
export class CallTally {
  /** Calls by code ("ok", "not_found", ...). */
  readonly codes = new Map<string, number>();

  constructor(readonly labels: CallLabels) {}

  /** One call ended with `code`. */
  ended(code: string): void {
    this.codes.set(code, (this.codes.get(code) ?? 0) + 1);
  }
}

/**
 * A method's tallies by protocol: the three protocols electd serves (protocolOf), never a
 * name a client sent.
 */
type ByProtocol = { [P in Protocol]?: CallTally };

/** Every tally of one server, made on a method and protocol's first call. */
export class CallTallies implements Iterable<CallTally> {
  private readonly byMethod = new Map<DescMethod, ByProtocol>();

  of(method: DescMethod, protocol: Protocol): CallTally {
    let byProtocol = this.byMethod.get(method);
    if (byProtocol === undefined) {
      byProtocol = {};
      this.byMethod.set(method, byProtocol);
    }
    byProtocol[protocol] ??= new CallTally({
      service: method.parent.typeName,
      method: method.name,
      protocol,
    });
    return byProtocol[protocol];
  }

  *[Symbol.iterator](): Iterator<CallTally> {
    for (const byProtocol of this.byMethod.values()) {
      for (const tally of Object.values(byProtocol)) if (tally) yield tally;
    }
  }
}
