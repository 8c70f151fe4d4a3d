// Who entered each candidate, as the pure change functions keep it: recorded on Enter by a
// named identity, dropped when the candidate leaves, checked before a candidate-role
// caller changes a candidate, and carried into each change's record.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Actor,
  commit,
  type Decision,
  decideCandidate,
  decideRelease,
  type Election,
  newElection,
} from "../../server/election/change.js";

const limits = { maxCandidates: 10 };
const bot: Actor = { name: "bot", admin: false };
const other: Actor = { name: "other", admin: false };
const ops: Actor = { name: "ops", admin: true };

function apply(election: Election, decision: Decision): Election {
  assert.ok(decision.ok, "the decision is a change");
  return commit(election, decision, 0);
}

describe("entrants", () => {
  it("records who entered a candidate, refuses another identity's change, lets an admin", () => {
    let e = newElection("e", [], undefined, 0, "ops");
    e = apply(e, decideCandidate(e, "enter", "a", limits, undefined, bot));
    assert.equal(e.entrants?.get("a"), "bot");
    assert.equal(e.change?.by, "bot");
    const refused = decideCandidate(e, "withdraw", "a", limits, undefined, other);
    assert.deepEqual(refused, { ok: false, denied: { candidate: "a", entrant: "bot" } });
    e = apply(e, decideCandidate(e, "withdraw", "a", limits, undefined, ops));
    assert.equal(e.entrants, undefined, "the candidate left, and its entrant with it");
    assert.equal(e.change?.by, "ops");
  });

  it("keeps no entrant for anonymous, so an open server costs nothing more", () => {
    let e = newElection("e", [], undefined, 0);
    e = apply(
      e,
      decideCandidate(e, "enter", "a", limits, undefined, { name: "anonymous", admin: true }),
    );
    assert.equal(e.entrants, undefined);
    assert.equal(e.change?.by, "anonymous");
  });

  it("releases a session's candidates for their entrant only, and records a session's end as theirs", () => {
    let e = newElection("e", [], undefined, 0);
    e = apply(e, decideCandidate(e, "enter", "a", limits, "s1", bot));
    assert.deepEqual(decideRelease(e, "s1", limits, undefined, other), {
      ok: false,
      denied: { candidate: "a", entrant: "bot" },
    });
    const expired = decideRelease(e, "s1", limits, "session-expired");
    e = apply(e, expired);
    assert.deepEqual(
      [e.change?.cause, e.change?.by, e.state.leader],
      ["session-expired", "bot", ""],
    );
  });
});
