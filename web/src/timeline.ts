// The leadership timeline: who led, from when to when, with each term, from the election's
// kept history (ElectionHistoryService) and then live, drawn as SVG bars on a time axis
// that ends at "now". A reign that began because
// the previous leader's session expired (or was closed) carries a marker at its start,
// explained by a legend and in the text read out for the bar.
import { h, svg } from "./dom.js";

/** Why a reign began, when the server rather than a call replaced the leader. */
export type ReignCause = "session expired" | "session closed";

interface Reign {
  readonly leader: string;
  readonly term: bigint;
  readonly from: number;
  to: number | undefined;
  /** Set when the previous leader's session ended; `after` is who led before. */
  cause?: { readonly why: ReignCause; readonly after: string };
}

/** Reigns kept for drawing: older ones are dropped so a flapping election stays cheap. */
const KEEP = 200;
const HEIGHT = 74;
/** Room above the bars for the markers of reigns begun by a session's end. */
const BAR_Y = 18;
const BAR_HEIGHT = 30;
const PAD = 6;
/** Least room between two time labels on the axis, in pixels. */
const LABEL_ROOM = 80;

const clock = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

/** Dark enough for white text (4.5:1 or better) and far apart from each other. */
const PALETTE = [
  "#0b5cad",
  "#8a3ffc",
  "#0e7a5f",
  "#b3261e",
  "#6b4e00",
  "#9e1a6b",
  "#00627a",
  "#4a5a00",
];

/** Markers of session ends: far from every leader colour, 4.5:1 or better on white. */
const MARKER = "#a14400";

function key(leader: string, term: bigint): string {
  return `${term}\u0000${leader}`;
}

/** "a's session expired": what the marker means for one reign. */
function causeText(cause: NonNullable<Reign["cause"]>): string {
  const who = cause.after === "" ? "a candidate" : cause.after;
  return `${who}'s ${cause.why}`;
}

function because(cause: NonNullable<Reign["cause"]>): string {
  return `took over because ${causeText(cause)}`;
}

/** A stable colour per leader name. */
function colour(name: string): string {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  return PALETTE[hash % PALETTE.length] as string;
}

export class Timeline {
  readonly element: SVGSVGElement;
  /** Explains the markers; shown once there is one to explain. */
  readonly legend: HTMLParagraphElement;
  private readonly reigns: Reign[] = [];
  private readonly opened = Date.now();
  /** Causes heard before the reign they start (the two streams race). */
  private readonly pending = new Map<string, NonNullable<Reign["cause"]>>();

  constructor() {
    this.element = svg("svg", {
      class: "timeline",
      role: "img",
      height: HEIGHT,
      "aria-label": "Leadership timeline",
    });
    this.legend = h(
      "p",
      { class: "timeline-legend", hidden: true },
      svg(
        "svg",
        { width: 12, height: 10, viewBox: "0 0 12 10", "aria-hidden": "true" },
        svg("path", { d: "M0 0 H12 L6 10 Z", fill: MARKER }),
      ),
      " a new leader took over because the previous leader's session expired (not kept alive within its TTL) or was closed",
    );
  }

  /**
   * Records that the reign of `leader` in `term` began because `after`'s session ended.
   * The cause may arrive before or after the state itself.
   */
  markCause(leader: string, term: bigint, why: ReignCause, after: string): void {
    const cause = { why, after };
    const reign = this.reigns.findLast((r) => r.leader === leader && r.term === term);
    if (reign) {
      reign.cause = cause;
      this.draw();
      return;
    }
    this.pending.set(key(leader, term), cause);
    // Only the latest few can still be waiting for their state.
    if (this.pending.size > 16) this.pending.delete(this.pending.keys().next().value as string);
  }

  /** Why the reign of `leader` in `term` began ("a's session expired"), if a session's end began it. */
  causeOf(leader: string, term: bigint): string | undefined {
    const reign = this.reigns.findLast((r) => r.leader === leader && r.term === term);
    return reign?.cause && causeText(reign.cause);
  }

  /** Reigns begun by a session's end, as shown. */
  get causes(): number {
    return this.reigns.filter((r) => r.cause).length;
  }

  /**
   * Puts the election's past before what the page saw live: its kept changes, oldest
   * first, each with when it was committed, the term and leader after it, and, when a
   * session's end made it, why and who led before.
   */
  restore(
    changes: readonly {
      readonly at: number;
      readonly term: bigint;
      readonly leader: string;
      readonly cause?: { readonly why: ReignCause; readonly after: string } | undefined;
    }[],
  ): void {
    const past: Reign[] = [];
    for (const change of changes) {
      const last = past.at(-1);
      if (last && last.leader === change.leader && last.term === change.term) continue;
      if (last) last.to = change.at;
      const reign: Reign = {
        leader: change.leader,
        term: change.term,
        from: change.at,
        to: undefined,
      };
      if (change.cause) reign.cause = change.cause;
      past.push(reign);
    }
    const latest = past.at(-1);
    if (!latest) return;
    // What the page recorded live since it opened goes on from the last reign of history.
    const [first, ...rest] = this.reigns;
    if (first && first.leader === latest.leader && first.term === latest.term) {
      latest.to = first.to;
      if (!latest.cause && first.cause) latest.cause = first.cause;
      this.reigns.splice(0, this.reigns.length, ...past, ...rest);
    } else {
      if (first) latest.to = first.from;
      this.reigns.unshift(...past);
    }
    if (this.reigns.length > KEEP) this.reigns.splice(0, this.reigns.length - KEEP);
    this.draw();
  }

  /** Records the election's state; a new reign starts when the leader or term changes. */
  record(leader: string, term: bigint, at = Date.now()): void {
    const last = this.reigns.at(-1);
    if (last && last.leader === leader && last.term === term) return;
    if (last) last.to = at;
    const reign: Reign = { leader, term, from: last ? at : this.opened, to: undefined };
    const cause = this.pending.get(key(leader, term));
    if (cause) {
      reign.cause = cause;
      this.pending.delete(key(leader, term));
    }
    this.reigns.push(reign);
    if (this.reigns.length > KEEP) this.reigns.splice(0, this.reigns.length - KEEP);
    this.draw();
  }

  /** Redraws with the axis ending now: called on a timer so the current reign grows. */
  draw(now = Date.now()): void {
    const width = Math.max(this.element.clientWidth, 280);
    this.element.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    const start = this.reigns[0]?.from ?? this.opened;
    const span = Math.max(now - start, 1);
    const inner = width - 2 * PAD;
    const x = (t: number) => PAD + ((t - start) / span) * inner;
    const parts: SVGElement[] = [];
    for (const reign of this.reigns) {
      const left = x(reign.from);
      const right = x(reign.to ?? now);
      const w = Math.max(right - left, 2);
      const who = reign.leader === "" ? "no leader" : reign.leader;
      const until = reign.to === undefined ? "now" : clock.format(reign.to);
      const title =
        `${who}, term ${reign.term}: ${clock.format(reign.from)} to ${until}` +
        (reign.cause ? ` (${because(reign.cause)})` : "");
      const kind = reign.leader === "" ? "reign vacant" : "reign";
      parts.push(
        svg(
          "g",
          {
            class: reign.cause ? `${kind} after-session-end` : kind,
            ...(reign.cause ? { "data-cause": reign.cause.why } : {}),
          },
          svg("title", {}, title),
          svg("rect", {
            x: left,
            y: BAR_Y,
            width: w,
            height: BAR_HEIGHT,
            rx: 3,
            fill: reign.leader === "" ? "#d0d4da" : colour(reign.leader),
            stroke: "#fff",
          }),
        ),
      );
      if (reign.cause) {
        // A notch above the bar and a dashed line down through it, where the reign began.
        parts.push(
          svg("path", {
            d: `M${left - 6} 2 H${left + 6} L${left} ${BAR_Y - 2} Z`,
            fill: MARKER,
            class: "marker",
            "aria-hidden": "true",
          }),
          svg("line", {
            x1: left,
            x2: left,
            y1: BAR_Y,
            y2: BAR_Y + BAR_HEIGHT,
            stroke: MARKER,
            "stroke-width": 2,
            "stroke-dasharray": "4 3",
            "aria-hidden": "true",
          }),
        );
        const note = reign.cause.why === "session expired" ? "expired" : "closed";
        if (w > 60) {
          parts.push(
            svg(
              "text",
              { x: left + 9, y: 12, fill: MARKER, class: "marker-text", "aria-hidden": "true" },
              note,
            ),
          );
        }
      }
      // The full label where it fits, else just the term number, else nothing.
      const full = `${who} · term ${reign.term}`;
      const label = w > full.length * 7 + 8 ? full : w > 22 ? String(reign.term) : undefined;
      if (label !== undefined) {
        parts.push(
          svg(
            "text",
            {
              x: left + (label === full ? 5 : 3),
              y: BAR_Y + BAR_HEIGHT / 2 + 5,
              fill: reign.leader === "" ? "#1b1f24" : "#fff",
              "aria-hidden": "true",
            },
            label,
          ),
        );
      }
    }
    // Time labels: the start, each change of reign where there is room, and "now".
    let lastLabel = Number.NEGATIVE_INFINITY;
    for (const reign of this.reigns) {
      const at = x(reign.from);
      if (at - lastLabel < LABEL_ROOM || x(now) - at < LABEL_ROOM) continue;
      lastLabel = at;
      parts.push(
        svg("line", { x1: at, x2: at, y1: BAR_Y, y2: BAR_Y + BAR_HEIGHT + 4, class: "tick" }),
        svg("text", { x: at, y: HEIGHT - 6, class: "axis" }, clock.format(reign.from)),
      );
    }
    parts.push(
      svg("text", { x: width - PAD, y: HEIGHT - 6, class: "axis", "text-anchor": "end" }, "now"),
    );
    this.element.replaceChildren(...parts);
    const current = this.reigns.at(-1);
    const ends = this.causes;
    this.legend.hidden = ends === 0;
    this.element.setAttribute(
      "aria-label",
      `Leadership timeline since ${clock.format(this.opened)}: ${this.reigns.length} reign(s)` +
        (ends > 0 ? `, ${ends} begun because a leader's session ended` : "") +
        (current
          ? `; now ${current.leader === "" ? "no leader" : current.leader}, term ${current.term}, since ${clock.format(current.from)}` +
            (current.cause ? `, ${because(current.cause)}` : "")
          : ""),
    );
  }

  get length(): number {
    return this.reigns.length;
  }
}
