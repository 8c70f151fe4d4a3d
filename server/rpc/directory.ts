// ElectionDirectoryService handlers (electd.v1): list elections a page at a time, watch
// the list, and read the sessions of one election's candidates. Same shape as the
// LeaderElection handlers: validate, read the store, the watch hub or the session
// registry, encode.
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  ChangeCause,
  type ElectionDirectoryService,
  ElectionSchema,
  type Election as ElectionSummary,
  WatchElectionsResponseSchema,
} from "../../gen/electd/v1/directory_pb.js";
import type { ChangeCause as Cause, Election } from "../election/change.js";
import { type InputLimits, text } from "../election/validate.js";
import { electionNotFound, invalid } from "../errors.js";
import type { Sessions } from "../session/sessions.js";
import type { ElectionStore, ListFilter } from "../store/store.js";
import type { WatchHub } from "../watch/hub.js";
import { toTerm } from "./election.js";

/** Page size when a ListElections request leaves page_size at 0 (documented in the proto). */
export const DEFAULT_PAGE_SIZE = 100;

export interface DirectoryServiceOptions {
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly limits: InputLimits & {
    /** Most elections in one page or one watch response. */
    readonly maxPageSize: number;
  };
  /** Where remaining TTLs are read; the same object the SessionService uses. */
  readonly sessions: Pick<Sessions, "peek">;
}

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
function bindingsOf(election: Election): { candidate: string; sessionFingerprint: string }[] {
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
  return {
    async listElections(req) {
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
      return {
        elections: page.map(toSummary),
        nextPageToken: found.length > pageSize && last ? last.name : "",
      };
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
            },
          ];
        }),
      };
    },
    async *watchElections(req, ctx) {
      const name = text("name", req.name, limits, true);
      const filter = { ...filterOf(req, limits), ...(name === "" ? {} : { name }) };
      for await (const batch of hub.changes(filter, ctx.signal, limits.maxPageSize)) {
        yield create(WatchElectionsResponseSchema, {
          elections: batch.elections.map(toSummary),
          deleted: [...batch.deleted],
          reset: batch.reset,
          snapshotComplete: batch.snapshotComplete,
        });
      }
    },
  };
}
