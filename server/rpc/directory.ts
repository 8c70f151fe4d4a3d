// ElectionDirectoryService handlers (electd.v1): list elections a page at a time, watch
// the list, and read the sessions of one election's candidates. Same shape as the
// LeaderElection handlers: validate, read the store, the watch hub or the session
// registry, encode.
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  type ElectionDirectoryService,
  ListElectionsResponseSchema,
  type WatchElectionsResponse,
  WatchElectionsResponseSchema,
} from "../../gen/electd/v1/directory_pb.js";
import { SessionState } from "../../gen/electd/v1/session_pb.js";
import { type InputLimits, text } from "../election/validate.js";
import { electionNotFound, invalid } from "../errors.js";
import type { Sessions } from "../session/sessions.js";
import type { ElectionStore, ListFilter } from "../store/store.js";
import type { DirectoryBatch, WatchHub } from "../watch/hub.js";
import { sessionStates } from "./session.js";
import { binaryResponses, SummaryCache, sessionFingerprint, withSummaries } from "./summaries.js";

export { sessionFingerprint } from "./summaries.js";

/** Page size when a ListElections request leaves page_size at 0 (documented in the proto). */
export const DEFAULT_PAGE_SIZE = 100;

export interface DirectoryServiceOptions {
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly limits: InputLimits & {
    /** Most elections in one page or one watch response. */
    readonly maxPageSize: number;
    /** Bytes of encoded election summaries kept for the responses that send them again. */
    readonly summaryCacheBytes: number;
  };
  /** Where remaining TTLs are read; the same object the SessionService uses. */
  readonly sessions: Pick<Sessions, "peek">;
}

/** The name_prefix and tag filters; empty means "no filter". */
function filterOf(req: { namePrefix: string; tag: string }, limits: InputLimits): ListFilter {
  const prefix = text("name_prefix", req.namePrefix, limits, true);
  const tag = text("tag", req.tag, limits, true);
  return { ...(prefix === "" ? {} : { prefix }), ...(tag === "" ? {} : { tag }) };
}

function pageSizeOf(requested: number, max: number): number {
  if (requested < 0) throw invalid("page_size", `must not be negative but is ${requested}`);
  // Asking for more than the server allows is not an error (AIP-158): the page is smaller.
  return Math.min(requested === 0 ? DEFAULT_PAGE_SIZE : requested, max);
}

export function directoryService(
  options: DirectoryServiceOptions,
): ServiceImpl<typeof ElectionDirectoryService> {
  const { store, hub, limits } = options;
  const { sessions } = options;
  const summaries = new SummaryCache(limits.summaryCacheBytes);
  /**
   * Binary responses, one per batch for as long as the batch is held: the hub hands the
   * same snapshot page to every watcher that reaches it, and each is encoded once.
   */
  const encodedBatches = new WeakMap<DirectoryBatch, Promise<WatchElectionsResponse>>();
  const sharedResponse = (batch: DirectoryBatch): Promise<WatchElectionsResponse> => {
    let encoded = encodedBatches.get(batch);
    if (encoded === undefined) {
      encoded = response(batch, summaries);
      encodedBatches.set(batch, encoded);
    }
    return encoded;
  };
  return {
    async listElections(req, ctx) {
      const pageSize = pageSizeOf(req.pageSize, limits.maxPageSize);
      const filter = filterOf(req, limits);
      const after = text("page_token", req.pageToken, limits, true);
      // One extra tells whether another page follows without a second read.
      const found = await store.list({
        ...filter,
        ...(after === "" ? {} : { after }),
        limit: pageSize + 1,
      });
      const page = found.slice(0, pageSize);
      const last = page.at(-1);
      const nextPageToken = found.length > pageSize && last ? last.name : "";
      return withSummaries(
        ListElectionsResponseSchema,
        create(ListElectionsResponseSchema, { nextPageToken }),
        page,
        binaryResponses(ctx) ? summaries : undefined,
      );
    },
    async getElectionSessions(req) {
      const name = text("name", req.name, limits);
      const election = await store.get(name);
      if (!election) throw electionNotFound(name);
      const { leader, candidates } = election.state;
      return {
        candidates: [leader, ...candidates].flatMap((candidate) => {
          const session = election.owners.get(candidate);
          if (candidate === "" || session === undefined) return [];
          // A session that just ended is still named until its release commits: 0s left.
          const view = sessions.peek(session);
          return [
            {
              candidate,
              sessionFingerprint: sessionFingerprint(session),
              ttl: durationFromMs(view?.ttlMs ?? 0),
              remaining: durationFromMs(view?.remainingMs ?? 0),
              state: view === undefined ? SessionState.UNSPECIFIED : sessionStates[view.state],
            },
          ];
        }),
      };
    },
    async *watchElections(req, ctx) {
      const name = text("name", req.name, limits, true);
      const filter = { ...filterOf(req, limits), ...(name === "" ? {} : { name }) };
      const binary = binaryResponses(ctx);
      for await (const batch of hub.changes(filter, ctx.signal, limits.maxPageSize)) {
        yield await (binary ? sharedResponse(batch) : response(batch, undefined));
      }
    },
  };
}

function response(
  batch: DirectoryBatch,
  binary: SummaryCache | undefined,
): Promise<WatchElectionsResponse> {
  const rest = create(WatchElectionsResponseSchema, {
    deleted: [...batch.deleted],
    reset: batch.reset,
    snapshotComplete: batch.snapshotComplete,
  });
  return withSummaries(WatchElectionsResponseSchema, rest, batch.elections, binary);
}
