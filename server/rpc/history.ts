// ElectionHistoryService handlers (electd.v1): an election's kept changes, and a Watch that
// resumes after the last version a client saw. Validate, read the store or follow
// watch/resume.ts, encode.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { ChangeCause } from "../../gen/electd/v1/directory_pb.js";
import {
  type Change,
  ChangeSchema,
  type ElectionHistoryService,
  type WatchElectionResponse,
  WatchElectionResponseSchema,
} from "../../gen/electd/v1/history_pb.js";
import type { Cause, HistoryRecord } from "../election/change.js";
import { type InputLimits, text } from "../election/validate.js";
import { electionNotFound, invalid } from "../errors.js";
import type { ElectionStore } from "../store/store.js";
import type { WatchHub } from "../watch/hub.js";
import { type Resumed, resume } from "../watch/resume.js";
import { DEFAULT_PAGE_SIZE } from "./directory.js";
import { toTerm } from "./election.js";

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

/** One step of a resumed watch as its message. */
export function toWatchResponse(step: Resumed): WatchElectionResponse {
  if (step.kind === "start") {
    return create(WatchElectionResponseSchema, {
      term: toTerm(step.state.state),
      version: BigInt(step.state.version),
      reset: step.reset,
    });
  }
  return create(WatchElectionResponseSchema, {
    change: toChange(step.record),
    version: BigInt(step.record.version),
    ...(step.state ? { term: toTerm(step.state.state) } : {}),
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
  };
}
