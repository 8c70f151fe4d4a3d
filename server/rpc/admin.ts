// ElectionAdminService handlers (electd.v1): operator calls the Atomix API lacks. Same
// shape as the others: validate, call the store, encode.
import type { ServiceImpl } from "@connectrpc/connect";
import type { ElectionAdminService } from "../../gen/electd/v1/admin_pb.js";
import { type InputLimits, text } from "../election/validate.js";
import { electionNotFound } from "../errors.js";
import type { ElectionStore } from "../store/store.js";
import { toTerm } from "./election.js";

export interface AdminServiceOptions {
  readonly store: ElectionStore;
  readonly limits: InputLimits;
}

export function adminService(
  options: AdminServiceOptions,
): ServiceImpl<typeof ElectionAdminService> {
  const { store, limits } = options;
  return {
    async deleteElection(req) {
      const name = text("name", req.name, limits);
      const last = await store.delete(name);
      if (!last) throw electionNotFound(name);
      return { term: toTerm(last.state) };
    },
  };
}
