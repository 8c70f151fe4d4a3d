// The leadership timeline: who led, from when to when, with each term, since the page
// opened, drawn as SVG bars on a time axis that ends at "now".
import { svg } from "./dom.js";

interface Reign {
  readonly leader: string;
  readonly term: bigint;
  readonly from: number;
  to: number | undefined;
}

/** Reigns kept for drawing: older ones are dropped so a flapping election stays cheap. */
const KEEP = 200;
const HEIGHT = 64;
const BAR_Y = 8;
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

/** A stable colour per leader name. */
function colour(name: string): string {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + (c.codePointAt(0) ?? 0)) >>> 0;
  return PALETTE[hash % PALETTE.length] as string;
}

export class Timeline {
  readonly element: SVGSVGElement;
  private readonly reigns: Reign[] = [];
  private readonly opened = Date.now();

  constructor() {
    this.element = svg("svg", {
      class: "timeline",
      role: "img",
      height: HEIGHT,
      "aria-label": "Leadership timeline",
    });
  }

  /** Records the election's state; a new reign starts when the leader or term changes. */
  record(leader: string, term: bigint, at = Date.now()): void {
    const last = this.reigns.at(-1);
    if (last && last.leader === leader && last.term === term) return;
    if (last) last.to = at;
    this.reigns.push({ leader, term, from: last ? at : this.opened, to: undefined });
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
      const title = `${who}, term ${reign.term}: ${clock.format(reign.from)} to ${until}`;
      parts.push(
        svg(
          "g",
          { class: reign.leader === "" ? "reign vacant" : "reign" },
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
      const label = `${who} · term ${reign.term}`;
      if (w > label.length * 7 + 8) {
        parts.push(
          svg(
            "text",
            {
              x: left + 5,
              y: BAR_Y + BAR_HEIGHT / 2 + 5,
              fill: reign.leader === "" ? "#1b1f24" : "#fff",
              "aria-hidden": "true",
            },
            label,
          ),
        );
      } else if (w > 22) {
        parts.push(
          svg(
            "text",
            {
              x: left + 3,
              y: BAR_Y + BAR_HEIGHT / 2 + 5,
              fill: reign.leader === "" ? "#1b1f24" : "#fff",
              "aria-hidden": "true",
            },
            String(reign.term),
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
    this.element.setAttribute(
      "aria-label",
      `Leadership timeline since ${clock.format(this.opened)}: ${this.reigns.length} reign(s)` +
        (current
          ? `; now ${current.leader === "" ? "no leader" : current.leader}, term ${current.term}, since ${clock.format(current.from)}`
          : ""),
    );
  }

  get length(): number {
    return this.reigns.length;
  }
}
