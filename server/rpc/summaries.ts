// Election summaries as the directory sends them (ListElections, WatchElections), and their
// binary encoding, done once per election state and shared by every response that carries
// it. A thousand directory watchers are sent the same summaries: encoded for each of them,
// protobuf encoding and the garbage it leaves took most of the server's CPU (profiled
// with bench/directory-load.ts) and kept keep-alives waiting behind it.
//
// Connect encodes each message a handler returns and has no way to be handed bytes, but
// protobuf-es writes a message's unknown fields as they are: a response built here holds
// its whole encoding as one unknown field and no known one, so the bytes on the wire are
// exactly those of the same response with its summaries set (test/rpc/summaries.test.ts).
// JSON clients are sent ordinary messages: JSON leaves unknown fields out.
import { createHash } from "node:crypto";
import { setImmediate } from "node:timers/promises";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { HandlerContext } from "@connectrpc/connect";
import { LRUCache } from "lru-cache";
import {
  ChangeCause,
  ElectionSchema,
  type Election as ElectionSummary,
} from "../../gen/electd/v1/directory_pb.js";
import type { ChangeCause as Cause, Election } from "../election/change.js";
import { binaryCodec } from "./codec.js";
import { toTerm } from "./election.js";

const causes: Record<Cause, ChangeCause> = {
  "session-expired": ChangeCause.SESSION_EXPIRED,
  "session-closed": ChangeCause.SESSION_CLOSED,
  // Never on a state a client receives: a deleted election is named in `deleted`.
  "election-deleted": ChangeCause.UNSPECIFIED,
};

/**
 * A session id is a bearer secret (whoever holds it can keep the session alive or close
 * it), so listings show a short digest instead: enough to tell sessions apart.
 */
export function sessionFingerprint(session: string): string {
  return createHash("sha256").update(session).digest("hex").slice(0, 12);
}

export function toSummary(election: Election): ElectionSummary {
  const bindings = bindingsOf(election);
  // fromEntries defines each candidate as an own key, so `__proto__` is kept like any name
  // here (the deprecated map; JSON and JavaScript readers may still drop it).
  const candidateSessions = Object.fromEntries(
    bindings.map((b) => [b.candidate, b.sessionFingerprint]),
  );
  return create(ElectionSchema, {
    bindings,
    name: election.name,
    tags: [...election.tags],
    term: toTerm(election.state),
    candidateSessions,
    lastChangeCause:
      election.cause === undefined ? ChangeCause.UNSPECIFIED : causes[election.cause],
    version: BigInt(election.version),
  });
}

/** Session-bound candidates, leader first then in queue order, with their fingerprints. */
export function bindingsOf(
  election: Pick<Election, "owners" | "state">,
): { candidate: string; sessionFingerprint: string }[] {
  const { owners } = election;
  if (owners.size === 0) return [];
  const { leader, candidates } = election.state;
  return [leader, ...candidates].flatMap((candidate) => {
    const session = owners.get(candidate);
    return session === undefined
      ? []
      : [{ candidate, sessionFingerprint: sessionFingerprint(session) }];
  });
}

/**
 * Heap one cached summary takes besides its bytes: its Map entry, the entry and the
 * Uint8Array (282 B measured on Node 20 x64, with 100,000 summaries of 27 bytes).
 */
const ENTRY_OVERHEAD_BYTES = 300;

/**
 * Encoded summaries of the elections sent lately, as field 1 of a response (tag, length,
 * summary), within a budget of bytes: the least recently used go first. One entry per
 * name, for the state encoded last, so an election that changes replaces its entry
 * instead of adding one, and the cache never holds more than one state of an election.
 */
export class SummaryCache {
  private readonly entries: LRUCache<string, { election: Election; field: Uint8Array }> | undefined;

  constructor(
    budgetBytes: number,
    /** The clock encoding is timed by (tests step it). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.entries =
      budgetBytes === 0
        ? undefined
        : new LRUCache({
            maxSize: budgetBytes,
            sizeCalculation: (entry) => entry.field.length + ENTRY_OVERHEAD_BYTES,
          });
  }

  field(election: Election): Uint8Array {
    const entry = this.entries?.get(election.name);
    if (entry?.election === election) return entry.field;
    const field = new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .bytes(toBinary(ElectionSchema, toSummary(election)))
      .finish();
    // One larger than the whole budget is not kept (and not counted).
    this.entries?.set(election.name, { election, field });
    return field;
  }

  /**
   * The fields of `elections`, in order. Encoding a page of 1,000 summaries not cached
   * takes 15 to 100 ms on a busy 2-core machine, so the event loop gets a turn after every
   * ENCODE_SLICE_MS of it: a keep-alive never waits behind a whole page.
   */
  async fields(elections: readonly Election[]): Promise<Uint8Array[]> {
    const fields: Uint8Array[] = [];
    let slice = this.now();
    for (const election of elections) {
      if (this.now() - slice >= ENCODE_SLICE_MS) {
        await setImmediate();
        slice = this.now();
      }
      fields.push(this.field(election));
    }
    return fields;
  }
}

/** Longest run of summary encoding between two turns of the event loop. */
const ENCODE_SLICE_MS = 5;

/**
 * `rest` (a response without its elections) with the summaries of `elections` as its
 * field 1, `elections`: a ListElectionsResponse or WatchElectionsResponse, whose
 * `elections` are field 1 and the first field protobuf-es writes. For a binary client the
 * summaries come from the cache; a JSON client gets them as messages.
 */
export async function withSummaries<Desc extends DescMessage>(
  schema: Desc,
  rest: MessageShape<Desc> & { elections: ElectionSummary[] },
  elections: readonly Election[],
  /** The encoded summaries for a binary client; undefined for a JSON one. */
  binary: SummaryCache | undefined,
): Promise<MessageShape<Desc>> {
  if (binary === undefined) {
    rest.elections = elections.map(toSummary);
    return rest;
  }
  if (elections.length === 0) return rest;
  const fields = await binary.fields(elections);
  const encoded = Buffer.concat([...fields, toBinary(schema, rest)]);
  // Written back as this field's tag (the first summary's: field 1, length-delimited)
  // followed by its data: the whole response.
  const shared = create(schema);
  shared.$unknown = [{ no: 1, wireType: WireType.LengthDelimited, data: encoded.subarray(1) }];
  return shared;
}

/** Whether the call's messages go as protobuf binary (else as JSON). */
export function binaryResponses(ctx: HandlerContext): boolean {
  return binaryCodec(ctx.requestMethod, ctx.requestHeader.get("content-type"), ctx.url);
}
