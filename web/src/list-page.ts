// The list page: every election with its tags, term, leader and number of waiting
// candidates, live through WatchElections. Rows are keyed by name and only the cells that
// changed are touched, and updates are applied once per frame, so a thousand elections
// changing at once cost one layout.
import type { Election } from "../../gen/electd/v1/directory_pb.js";
import { createCommand, directory } from "./api.js";
import { electionPath, h, setText } from "./dom.js";
import { follow } from "./live.js";

interface Row {
  readonly tr: HTMLTableRowElement;
  readonly tags: HTMLTableCellElement;
  readonly term: HTMLTableCellElement;
  readonly leader: HTMLTableCellElement;
  readonly waiting: HTMLTableCellElement;
  /** Lowercase text the filter box searches: name, tags and leader. */
  search: string;
  tagText: string;
}

function newRow(name: string): Row {
  const link = h("a", { href: electionPath(name), "data-link": true }, name);
  const cell = (label: string, className: string) =>
    h("td", { "data-label": label, class: className });
  const row: Row = {
    tr: h("tr", { "data-name": name }),
    tags: cell("Tags", "tags"),
    term: cell("Term", "num"),
    leader: cell("Leader", "leader"),
    waiting: cell("Waiting", "num"),
    search: "",
    tagText: "\u0000",
  };
  row.tr.append(
    h("th", { scope: "row", "data-label": "Name", class: "name" }, link),
    row.tags,
    row.term,
    row.leader,
    row.waiting,
  );
  return row;
}

function fillRow(row: Row, election: Election): void {
  const term = election.term;
  const tagText = election.tags.join("\u0000");
  if (row.tagText !== tagText) {
    row.tagText = tagText;
    row.tags.replaceChildren(...election.tags.map((tag) => h("span", { class: "tag" }, tag)));
  }
  setText(row.term, String(term?.term ?? 0n));
  const leader = term?.leader ?? "";
  setText(row.leader, leader === "" ? "—" : leader);
  row.leader.classList.toggle("none", leader === "");
  setText(row.waiting, String(term?.candidates.length ?? 0));
  row.search = [election.name, ...election.tags, leader].join("\n").toLowerCase();
}

/** Index of the first name not before `name` in a sorted array. */
function position(sorted: readonly string[], name: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] as string) < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function listPage(root: HTMLElement, signal: AbortSignal): void {
  document.title = "Elections · electd";
  const count = h("p", { class: "count", "aria-live": "polite" }, "Loading elections…");
  const filter = h("input", {
    id: "filter",
    type: "search",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "name, tag or leader",
  });
  const tbody = h("tbody");
  const header = (label: string, className = "") =>
    h("th", { scope: "col", class: className }, label);
  const table = h(
    "table",
    { class: "elections", hidden: true },
    h("caption", { class: "visually-hidden" }, "Elections, live"),
    h(
      "colgroup",
      {},
      ...["name", "tags", "term", "leader", "waiting"].map((c) => h("col", { class: c })),
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        header("Name"),
        header("Tags"),
        header("Term", "num"),
        header("Leader"),
        header("Waiting", "num"),
      ),
    ),
    tbody,
  );
  const noMatch = h("p", { class: "no-match", hidden: true }, "No election matches the filter.");
  const empty = h(
    "section",
    { class: "empty", hidden: true, "aria-labelledby": "empty-heading" },
    h("h2", { id: "empty-heading" }, "No elections yet"),
    h("p", {}, "Create one from a terminal; it appears here at once:"),
    h("pre", {}, h("code", {}, createCommand("my-election"))),
    h(
      "p",
      {},
      "Then open it and enter candidates from its page, or with the Enter call of the same API.",
    ),
  );
  root.replaceChildren(
    h("h1", { tabindex: "-1" }, "Elections"),
    h("div", { class: "toolbar" }, h("label", { for: "filter" }, "Filter"), filter, count),
    table,
    noMatch,
    empty,
  );

  const rows = new Map<string, Row>();
  const sorted: string[] = [];
  const pending = new Map<string, Election>();
  let loaded = false;
  let inSnapshot = false;
  let snapshotNames = new Set<string>();
  let sweep: Set<string> | undefined;
  let frame = 0;
  let query = "";

  const visible = (row: Row) => query === "" || row.search.includes(query);

  function flush(): void {
    frame = 0;
    const fresh: Row[] = [];
    for (const [name, election] of pending) {
      let row = rows.get(name);
      if (!row) {
        row = newRow(name);
        rows.set(name, row);
        fresh.push(row);
      }
      fillRow(row, election);
      row.tr.hidden = !visible(row);
    }
    pending.clear();
    if (fresh.length > 0) insert(fresh);
    if (sweep) {
      // A reconnect's snapshot is the whole truth: drop rows it no longer has.
      for (const [name, row] of rows) {
        if (sweep.has(name)) continue;
        row.tr.remove();
        rows.delete(name);
        sorted.splice(position(sorted, name), 1);
      }
      sweep = undefined;
    }
    summarise();
  }

  function insert(fresh: Row[]): void {
    if (sorted.length === 0) {
      // First paint: one fragment, one layout.
      const names = fresh.map((row) => row.tr.dataset.name as string).sort();
      const fragment = document.createDocumentFragment();
      for (const name of names) fragment.append((rows.get(name) as Row).tr);
      sorted.push(...names);
      tbody.append(fragment);
      return;
    }
    for (const row of fresh) {
      const name = row.tr.dataset.name as string;
      const at = position(sorted, name);
      const next = sorted[at];
      tbody.insertBefore(row.tr, next === undefined ? null : (rows.get(next)?.tr ?? null));
      sorted.splice(at, 0, name);
    }
  }

  function summarise(): void {
    if (!loaded) return;
    let shown = 0;
    if (query === "") shown = rows.size;
    else for (const row of rows.values()) if (!row.tr.hidden) shown++;
    table.hidden = rows.size === 0;
    empty.hidden = rows.size !== 0;
    noMatch.hidden = rows.size === 0 || shown !== 0;
    const total = `${rows.size} election${rows.size === 1 ? "" : "s"}`;
    setText(count, query === "" ? total : `${shown} of ${total} match`);
  }

  filter.addEventListener("input", () => {
    query = filter.value.trim().toLowerCase();
    for (const row of rows.values()) row.tr.hidden = !visible(row);
    summarise();
  });

  follow(
    {
      open: (s) => directory.watchElections({}, { signal: s }),
      onOpen() {
        inSnapshot = true;
        snapshotNames = new Set();
      },
      onMessage(response) {
        for (const election of response.elections) {
          pending.set(election.name, election);
          if (inSnapshot) snapshotNames.add(election.name);
        }
        if (response.snapshotComplete) {
          inSnapshot = false;
          loaded = true;
          sweep = snapshotNames;
        }
        if (frame === 0) frame = requestAnimationFrame(flush);
      },
    },
    signal,
  );
  signal.addEventListener("abort", () => cancelAnimationFrame(frame), { once: true });
}
