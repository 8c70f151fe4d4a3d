// The election's recent changes as a list, newest first: when, what, and who made it (the
// identity the server recorded; "unknown" for changes recorded before it kept one).
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { ChangeCause } from "../../gen/electd/v1/directory_pb.js";
import type { Change } from "../../gen/electd/v1/history_pb.js";
import { h } from "./dom.js";

const KEEP = 50;

const words: ReadonlyMap<ChangeCause, string> = new Map([
  [ChangeCause.CREATE, "Created"],
  [ChangeCause.ENTER, "Entered"],
  [ChangeCause.WITHDRAW, "Withdrew"],
  [ChangeCause.ANOINT, "Anointed"],
  [ChangeCause.PROMOTE, "Promoted"],
  [ChangeCause.DEMOTE, "Demoted"],
  [ChangeCause.EVICT, "Evicted"],
  [ChangeCause.CLOSE, "Closed a session's candidates"],
  [ChangeCause.SESSION_EXPIRED, "Session expired, withdrawing"],
  [ChangeCause.SESSION_CLOSED, "Session closed, withdrawing"],
  [ChangeCause.ELECTION_DELETED, "Deleted"],
]);

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export class ChangeLog {
  readonly element = h("ol", {
    class: "change-log",
    id: "changes",
    "aria-label": "Recent changes",
  });
  private last = 0n;

  /** Adds changes (any order, repeats ignored), keeping the newest KEEP. */
  add(changes: readonly Change[]): void {
    for (const change of [...changes].sort((a, b) => Number(a.version - b.version))) {
      if (change.version <= this.last) continue;
      this.last = change.version;
      this.element.prepend(item(change));
    }
    while (this.element.childElementCount > KEEP) this.element.lastElementChild?.remove();
  }
}

function item(change: Change): HTMLLIElement {
  const at = change.time ? clock.format(timestampMs(change.time)) : "";
  const what = words.get(change.cause) ?? "Changed";
  const who = change.identity === "" ? "unknown" : change.identity;
  const candidates = change.candidates.join(", ");
  return h(
    "li",
    { "data-version": String(change.version) },
    h("time", {}, at),
    ` ${what}${candidates ? ` ${candidates}` : ""} · term ${change.term} · by `,
    h("span", { class: "by" }, who),
  );
}
