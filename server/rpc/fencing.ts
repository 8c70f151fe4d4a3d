// FencingService handlers (electd.v1): whether a leader's fencing token still holds, read
// from the store as of every acknowledged change, so a resource can ask before it accepts
// a write.
import type { ServiceImpl } from "@connectrpc/connect";
import type { FencingService } from "../../gen/electd/v1/fencing_pb.js";
import { candidateName, type InputLimits, text } from "../election/validate.js";
import { electionNotFound } from "../errors.js";
import type { ElectionStore } from "../store/store.js";
import { refused } from "./election.js";

export interface FencingServiceOptions {
  readonly store: ElectionStore;
  readonly limits: InputLimits;
}

export function fencingService(options: FencingServiceOptions): ServiceImpl<typeof FencingService> {
  const { store, limits } = options;
  return {
    async checkLeader(req) {
      const name = text("name", req.name, limits);
      const candidate = candidateName(req.candidate, limits);
      const election = await store.get(name);
      if (!election) throw electionNotFound(name);
      const { term, leader } = election.state;
      if (leader !== candidate || term !== req.term) {
        throw refused({ ok: false, moved: { name, term, leader } });
      }
      return {};
    },
  };
}
