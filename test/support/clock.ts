// A clock that moves only when the test says so, for the leadership client's lease and
// timers (client/leadership.ts Clock): timing tests then do not depend on machine load.
import type { Clock } from "../../client/leadership.js";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

export class ManualClock implements Clock {
  private time = 0;
  private seq = 0;
  private readonly timers = new Set<Timer>();

  now(): number {
    return this.time;
  }

  after(ms: number, callback: () => void): () => void {
    const timer = { at: this.time + Math.max(0, ms), seq: this.seq++, callback };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  }

  /** When the next timer is due, if any is set. */
  next(): number | undefined {
    let first: number | undefined;
    for (const t of this.timers) if (first === undefined || t.at < first) first = t.at;
    return first;
  }

  /**
   * Moves the clock `ms` forward, firing the timers that fall due in order, each at its own
   * time, and letting the promise jobs each one starts run before the next.
   */
  async advance(ms: number): Promise<void> {
    const until = this.time + ms;
    for (;;) {
      let due: Timer | undefined;
      for (const t of this.timers) {
        if (t.at <= until && (!due || t.at < due.at || (t.at === due.at && t.seq < due.seq))) {
          due = t;
        }
      }
      if (!due) break;
      this.timers.delete(due);
      this.time = due.at;
      due.callback();
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.time = until;
  }
}
