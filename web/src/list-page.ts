// The list page: every election with its tags, term, leader and number of waiting
// candidates, live, usable with the directory at its limit (MAX_ELECTIONS, 100,000).
//
// Why it holds the whole directory as data and draws only what is on screen: the list is
// live, and the only live source the API has is WatchElections, whose stream starts with
// a snapshot of everything it matches; there is no "watch this page of names". So an
// unfiltered live list receives every election whatever the page does, and the question is
// only what it costs. Here: a first page from ListElections and then the snapshot, chunk by
// chunk as it streams in, are drawn as they arrive (the first rows show while the rest
// loads), each election is kept as a small record (election-index.ts), and the table
// holds only the rows in the window plus a few, between two spacers, so neither the first
// paint nor a change costs more than a screenful of DOM.
//
// The filter box matches names, tags and leaders anywhere in the text. The server filters
// by name prefix and exact tag only, so a search for a leader or for the middle of a name
// cannot be sent to it; answering from the copy held here costs no round trip, so a
// keystroke is answered in the same frame whatever the network. A whole-tag view (a tag's
// link, `?tag=`) or a name-prefix view (`?prefix=`) does go to the server: then the page
// subscribes to that subset only, and holds nothing else.
import { createCommand, directory } from "./api.js";
import { electionPath, h, setText, tagPath } from "./dom.js";
import { ElectionIndex, type Entry } from "./election-index.js";
import { follow } from "./live.js";

/** Rows drawn above and below the visible ones, so a quick scroll rarely shows a gap. */
const OVERSCAN = 10;
/** Elections asked for to fill the first screen before the live snapshot arrives. */
const FIRST_PAGE = 100;
/** Longest the page reads its stream before letting the browser take input and draw. */
const YIELD_AFTER_MS = 10;
/** Row height assumed until one is measured, in pixels. */
const ESTIMATED_ROW = 40;

const count = new Intl.NumberFormat("en-US");

function plural(n: number, word: string): string {
  return `${count.format(n)} ${word}${n === 1 ? "" : "s"}`;
}

interface Row {
  readonly tr: HTMLTableRowElement;
  readonly tags: HTMLTableCellElement;
  readonly term: HTMLTableCellElement;
  readonly leader: HTMLTableCellElement;
  readonly waiting: HTMLTableCellElement;
  entry: Entry | undefined;
}

function tagLink(tag: string): HTMLAnchorElement {
  return h("a", { class: "tag", href: tagPath(tag), "data-link": true, title: tag }, tag);
}

function newRow(name: string): Row {
  const cell = (label: string, className: string) =>
    h("td", { "data-label": label, class: className });
  const row: Row = {
    tr: h("tr", { "data-name": name, class: "row" }),
    tags: cell("Tags", "tags"),
    term: cell("Term", "num"),
    leader: cell("Leader", "leader"),
    waiting: cell("Waiting", "num"),
    entry: undefined,
  };
  row.tr.append(
    h(
      "th",
      { scope: "row", "data-label": "Name", class: "name" },
      // Cut short with an ellipsis when long; the title shows the whole name.
      h("a", { href: electionPath(name), "data-link": true, title: name }, name),
    ),
    row.tags,
    row.term,
    row.leader,
    row.waiting,
  );
  return row;
}

function fillRow(row: Row, entry: Entry): void {
  const before = row.entry;
  row.entry = entry;
  if (before === undefined || before.tags.join("\u0000") !== entry.tags.join("\u0000")) {
    // Long tags are cut short with an ellipsis; the title shows them whole.
    row.tags.title = entry.tags.join(", ");
    row.tags.replaceChildren(...entry.tags.map(tagLink));
  }
  setText(row.term, String(entry.term));
  setText(row.leader, entry.leader === "" ? "—" : entry.leader);
  row.leader.title = entry.leader;
  row.leader.classList.toggle("none", entry.leader === "");
  setText(row.waiting, String(entry.waiting));
}

/** The server-side subset a URL asks for: `?tag=` and `?prefix=`. */
function scopeOf(search: string): { tag: string; namePrefix: string } {
  const params = new URLSearchParams(search);
  return { tag: params.get("tag") ?? "", namePrefix: params.get("prefix") ?? "" };
}

/** Where the browser has it, scheduler.yield resumes the yielding task ahead of others. */
const scheduler = (globalThis as { scheduler?: { yield?: () => Promise<void> } }).scheduler;

/**
 * The messages of `stream`, letting the browser draw and answer a keystroke between them
 * at least every YIELD_AFTER_MS: a snapshot's chunks can arrive faster than they are
 * decoded, and reading them all in one go would hold the filter box meanwhile.
 */
async function* paced<T>(stream: AsyncIterable<T>): AsyncGenerator<T> {
  let since = performance.now();
  for await (const message of stream) {
    yield message;
    if (performance.now() - since < YIELD_AFTER_MS) continue;
    await (scheduler?.yield?.() ?? new Promise((resolve) => setTimeout(resolve, 0)));
    since = performance.now();
  }
}

export function listPage(root: HTMLElement, signal: AbortSignal): void {
  const scope = scopeOf(window.location.search);
  const scoped = scope.tag !== "" || scope.namePrefix !== "";
  document.title = "Elections · electd";
  const summary = h("p", { class: "count", "aria-live": "polite" }, "Loading elections…");
  const filter = h("input", {
    id: "filter",
    type: "search",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "name, tag or leader",
  });
  const tbody = h("tbody");
  const spacer = () => {
    const tr = h("tr", { class: "spacer", "aria-hidden": "true", hidden: true });
    tr.append(h("td", { colspan: "5" }));
    return tr;
  };
  const above = spacer();
  const below = spacer();
  tbody.append(above, below);
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
        { "aria-rowindex": "1" },
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
  const scopeNote = scoped
    ? h(
        "p",
        { class: "scope" },
        scope.tag !== "" ? "Elections tagged " : "Elections whose name starts with ",
        h("strong", {}, scope.tag !== "" ? scope.tag : scope.namePrefix),
        scope.tag !== "" && scope.namePrefix !== ""
          ? ` whose name starts with ${scope.namePrefix}`
          : "",
        " · ",
        h("a", { href: "/", "data-link": true }, "All elections"),
      )
    : null;
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("label", { for: "filter" }, "Filter"),
    filter,
    summary,
  );
  root.replaceChildren(h("h1", { tabindex: "-1" }, "Elections"), toolbar, table, noMatch, empty);
  if (scopeNote) toolbar.before(scopeNote);

  const index = new ElectionIndex();
  /** The rows in the DOM now, by name: the window and its overscan, nothing else. */
  const drawn = new Map<string, Row>();
  let rowHeight = 0;
  let frame = 0;

  /** Draws the rows of `index.view` that are on screen, and the spacers around them. */
  function drawWindow(): void {
    const view = index.view;
    const total = view.length;
    const height = rowHeight || ESTIMATED_ROW;
    // Where the first row would be, relative to the viewport; reading it lays out once.
    const top = tbody.getBoundingClientRect().top;
    const first = Math.min(total, Math.max(0, Math.floor(-top / height) - OVERSCAN));
    const last = Math.min(
      total,
      Math.max(first, Math.ceil((window.innerHeight - top) / height) + OVERSCAN),
    );
    const wanted = view.slice(first, last);
    const keep = new Set(wanted);
    for (const [name, row] of drawn) {
      if (keep.has(name)) continue;
      row.tr.remove();
      drawn.delete(name);
    }
    // Rows that stay are already in name order: only new ones are inserted around them, so
    // a focused link is never moved (which would drop its focus).
    let cursor = above.nextSibling;
    wanted.forEach((name, i) => {
      const entry = index.get(name) as Entry;
      let row = drawn.get(name);
      if (!row) {
        row = newRow(name);
        drawn.set(name, row);
      }
      if (row.entry !== entry) fillRow(row, entry);
      const at = String(first + i + 2);
      if (row.tr.getAttribute("aria-rowindex") !== at) row.tr.setAttribute("aria-rowindex", at);
      if (cursor === row.tr) cursor = cursor.nextSibling;
      else tbody.insertBefore(row.tr, cursor);
    });
    pad(above, first * height);
    pad(below, (total - last) * height);
    table.setAttribute("aria-rowcount", String(total + 1));
    if (rowHeight === 0) measure();
  }

  function pad(tr: HTMLTableRowElement, px: number): void {
    tr.hidden = px === 0;
    tr.style.height = `${px}px`;
  }

  /** Every row has the same height (one line per cell, see style.css): measure it once. */
  function measure(): void {
    const one = above.nextElementSibling;
    const two = one?.nextElementSibling;
    if (!one || !two || two === below) return;
    const measured = two.getBoundingClientRect().top - one.getBoundingClientRect().top;
    if (measured <= 0) return;
    rowHeight = measured;
    if (Math.abs(measured - ESTIMATED_ROW) > 0.5) drawWindow();
  }

  function summarise(): void {
    const total = index.size;
    const shown = index.view.length;
    table.hidden = total === 0;
    empty.hidden = !index.loaded || total !== 0 || scoped;
    noMatch.hidden = total === 0 || shown !== 0;
    if (!index.loaded) {
      setText(
        summary,
        total === 0 ? "Loading elections…" : `Loading… ${plural(total, "election")} so far`,
      );
    } else if (scoped && total === 0) {
      setText(summary, "No election matches.");
    } else {
      setText(
        summary,
        index.filtered
          ? `${count.format(shown)} of ${plural(total, "election")} match`
          : plural(total, "election"),
      );
    }
  }

  function draw(): void {
    cancelAnimationFrame(frame);
    frame = 0;
    index.settle();
    summarise();
    drawWindow();
  }

  function schedule(): void {
    if (frame === 0) frame = requestAnimationFrame(draw);
  }

  filter.addEventListener("input", () => {
    index.setQuery(filter.value.trim().toLowerCase());
    // Scrolled down a long list, the new list would start above the screen: back to its
    // top, just below the toolbar that stays in view.
    const hidden = toolbar.getBoundingClientRect().bottom - table.getBoundingClientRect().top;
    if (hidden > 0) window.scrollBy(0, -hidden);
    // Drawn now rather than at the next frame: the answer to a keystroke is on that frame.
    draw();
  });
  const onScroll = () => schedule();
  const onResize = () => {
    rowHeight = 0;
    schedule();
  };
  window.addEventListener("scroll", onScroll, { passive: true });
  window.addEventListener("resize", onResize);

  let fresh = true;
  follow(
    {
      open: (s) => paced(directory.watchElections(scope, { signal: s })),
      onOpen() {
        fresh = true;
      },
      onMessage(response) {
        // Every stream starts with a snapshot; a server that does not mark it `reset` still
        // means it.
        if (fresh && !response.reset) index.restart();
        fresh = false;
        index.apply(response);
        schedule();
      },
    },
    signal,
  );
  // The stream's first chunk holds MAX_PAGE_SIZE (1,000) elections to read, encode and
  // decode; a page of 100 arrives a little sooner and fills the first screen meanwhile.
  directory.listElections({ ...scope, pageSize: FIRST_PAGE }, { signal }).then(
    (page) => {
      index.preview(page.elections);
      schedule();
    },
    // The stream reports the connection; this page was only a head start.
    () => {},
  );
  signal.addEventListener(
    "abort",
    () => {
      cancelAnimationFrame(frame);
      window.removeEventListener("scroll", onScroll);
      window.removeEventListener("resize", onResize);
    },
    { once: true },
  );
}
