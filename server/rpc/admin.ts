// ElectionAdminService handlers (electd.v1): operator calls the Atomix API lacks. Same
// shape as the others: validate, call the store, encode.
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { decideConditional } from "../election/change.js";
import type { CandidateOperation, RuleLimits } from "../election/rules.js";
import { candidateName, type InputLimits, text } from "../election/validate.js";
import { electionNotFound } from "../errors.js";
import type { ElectionStore } from "../store/store.js";
import { actorOf, callerOf } from "./auth.js";
import { refused, toTerm } from "./election.js";

export interface AdminServiceOptions {
  readonly store: ElectionStore;
  readonly limits: InputLimits & RuleLimits;
}

interface ConditionalRequest {
  readonly name: string;
  readonly candidate: string;
  readonly expectedTerm?: bigint | undefined;
}

export function adminService(
  options: AdminServiceOptions,
): ServiceImpl<typeof ElectionAdminService> {
  const { store, limits } = options;

  /** Anoint, Promote, Demote or Evict, refused when the election left the expected term. */
  function conditional(kind: CandidateOperation) {
    return async (req: ConditionalRequest, ctx: HandlerContext) => {
      const name = text("name", req.name, limits);
      const candidate = candidateName(req.candidate, limits);
      const actor = actorOf(ctx, name);
      const result = await store.update(name, (election) =>
        decideConditional(election, kind, candidate, limits, req.expectedTerm, actor),
      );
      if (result === undefined) throw electionNotFound(name);
      if (!result.ok) throw refused(result);
      return { term: toTerm(result.election.state) };
    };
  }

  return {
    async deleteElection(req, ctx) {
      const name = text("name", req.name, limits);
      const last = await store.delete(name, callerOf(ctx).name);
      if (!last) throw electionNotFound(name);
      return { term: toTerm(last.state) };
    },
    anoint: conditional("anoint"),
    promote: conditional("promote"),
    demote: conditional("demote"),
    evict: conditional("evict"),
  };
}
