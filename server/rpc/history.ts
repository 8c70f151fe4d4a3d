// ElectionHistoryService handlers (electd.v1): an election's kept changes, and a Watch that
// resumes after the last version a client saw, of one election or several on one stream.
// Validate, read the store or follow watch/resume.ts, encode.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { ChangeCause } from "../../gen/electd/v1/directory_pb.js";
import {
  type Change,
  ChangeSchema,
  type ElectionHistoryService,
  type WatchElectionListResponse,
  WatchElectionListResponseSchema,
  type WatchElectionResponse,
  WatchElectionResponseSchema,
} from "../../gen/electd/v1/history_pb.js";
import type { Cause, HistoryRecord } from "../election/change.js";
import { type InputLimits, text } from "../election/validate.js";
import { ElectdError, electionNotFound, invalid } from "../errors.js";
import type { ElectionStore } from "../store/store.js";
import type { WatchedState, WatchHub } from "../watch/hub.js";
import { type Cursor, type Resumed, type ResumedOf, resume, resumeEach } from "../watch/resume.js";
import { DEFAULT_PAGE_SIZE } from "./directory.js";
import { toTerm } from "./election.js";
import { toConnectError } from "./errors.js";
import { bindingsOf } from "./summaries.js";

export interface HistoryServiceOptions {
  readonly store: ElectionStore;
  readonly hub: WatchHub;
  readonly limits: InputLimits & { readonly maxPageSize: number };
}

export const causes: Record<Cause, ChangeCause> = {
  create: ChangeCause.CREATE,
  enter: ChangeCause.ENTER,
  withdraw: ChangeCause.WITHDRAW,
  anoint: ChangeCause.ANOINT,
  promote: ChangeCause.PROMOTE,
  demote: ChangeCause.DEMOTE,
  evict: ChangeCause.EVICT,
  close: ChangeCause.CLOSE,
  "session-expired": ChangeCause.SESSION_EXPIRED,
  "session-closed": ChangeCause.SESSION_CLOSED,
  "election-deleted": ChangeCause.ELECTION_DELETED,
};

export function toChange(record: HistoryRecord): Change {
  return create(ChangeSchema, {
    version: BigInt(record.version),
    time: timestampFromMs(record.at),
    cause: causes[record.cause],
    candidates: [...record.candidates],
    termBefore: record.before.term,
    leaderBefore: record.before.leader,
    term: record.after.term,
    leader: record.after.leader,
    identity: record.by ?? "",
  });
}

/** The election's whole state: what a message carries with `term`. */
function stateFields(state: WatchedState) {
  return { term: toTerm(state.state), bindings: bindingsOf(state), tags: [...state.tags] };
}

/** One step of a resumed watch as its message. */
export function toWatchResponse(step: Resumed): WatchElectionResponse {
  if (step.kind === "start") {
    return create(WatchElectionResponseSchema, {
      ...stateFields(step.state),
      version: BigInt(step.state.version),
      reset: step.reset,
    });
  }
  return create(WatchElectionResponseSchema, {
    change: toChange(step.record),
    version: BigInt(step.record.version),
    ...(step.state ? stateFields(step.state) : {}),
  });
}

/** One election's step, or its end, in a watch of several. */
function toListResponse(item: ResumedOf): WatchElectionListResponse {
  if ("ended" in item) {
    const { code } = ConnectError.from(toConnectError(item.ended));
    return create(WatchElectionListResponseSchema, {
      name: item.name,
      ended: { code: codeToString(code), message: item.ended.message },
    });
  }
  return create(WatchElectionListResponseSchema, {
    name: item.name,
    response: toWatchResponse(item.step),
  });
}

export function historyService(
  options: HistoryServiceOptions,
): ServiceImpl<typeof ElectionHistoryService> {
  const { store, hub, limits } = options;
  return {
    async listHistory(req) {
      const name = text("name", req.name, limits);
      if (req.pageSize > limits.maxPageSize) {
        throw invalid(
          "page_size",
          `is ${req.pageSize} but at most ${limits.maxPageSize} (MAX_PAGE_SIZE)`,
        );
      }
      const limit = req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize;
      const from = req.fromVersion === 0n ? undefined : Number(req.fromVersion);
      const records = await store.history(name, {
        ...(from === undefined ? {} : { from }),
        limit,
        order: req.oldestFirst ? "oldest" : "newest",
      });
      if (records.length === 0 && from === undefined && !(await store.get(name))) {
        throw electionNotFound(name);
      }
      const last = records.at(-1);
      const more =
        records.length === limit && last !== undefined && !(last.version === 1 && !req.oldestFirst);
      return {
        changes: records.map(toChange),
        nextFromVersion: more ? BigInt(last.version) : 0n,
      };
    },
    async *watchElection(req, ctx) {
      const name = text("name", req.name, limits);
      for await (const step of resume(store, hub, name, Number(req.afterVersion), ctx.signal)) {
        yield toWatchResponse(step);
      }
    },
    async *watchElectionList(req, ctx) {
      const count = req.elections.length;
      if (count === 0) throw invalid("elections", "must name at least one election");
      if (count > limits.maxPageSize) {
        throw invalid(
          "elections",
          `has ${count} elections but at most ${limits.maxPageSize} (MAX_PAGE_SIZE)`,
        );
      }
      const seen = new Set<string>();
      const cursors = req.elections.map((e, i): Cursor => {
        if (seen.has(e.name)) throw invalid(`elections[${i}].name`, "names an election twice");
        seen.add(e.name);
        const after = Number(e.afterVersion);
        try {
          return { name: text("name", e.name, limits), after };
        } catch (error) {
          if (!(error instanceof ElectdError)) throw error;
          // Refused for this election alone, with WatchElection's message: the others go on.
          return { name: e.name, after, refused: error };
        }
      });
      for await (const item of resumeEach(store, hub, cursors, ctx.signal)) {
        yield toListResponse(item);
      }
    },
  };
}
