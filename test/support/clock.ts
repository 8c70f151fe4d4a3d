// A clock that moves only when the test says so: `advance(ms)` fires every timer that
// falls due, in order, each at its own time. Whether a session expires then depends on
// the time the test let pass, never on how loaded the machine is.
import type { Clock, Timer } from "../../server/clock.js";

class ManualTimer implements Timer {
  constructor(
    private readonly clock: ManualClock,
    readonly ms: number,
    readonly fire: () => void,
    public due: number,
  ) {}

  refresh(): this {
    this.due = this.clock.now() + this.ms;
    this.clock.pending.add(this);
    return this;
  }
}

export class ManualClock implements Clock {
  private time = 0;
  /** Timers not yet fired or cancelled. */
  readonly pending = new Set<ManualTimer>();

  now(): number {
    return this.time;
  }

  timer<T>(ms: number, fire: (arg: T) => void, arg: T): Timer {
    const timer = new ManualTimer(this, ms, () => fire(arg), this.time + ms);
    this.pending.add(timer);
    return timer;
  }

  cancel(timer: Timer | undefined): void {
    if (timer instanceof ManualTimer) this.pending.delete(timer);
  }

  /**
   * Moves time forward by `ms`, firing due timers earliest first; the promise jobs each
   * firing starts run before the next timer fires, as they would between real timers.
   */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const timer of this.pending) if (!next || timer.due < next.due) next = timer;
      if (!next || next.due > end) break;
      this.pending.delete(next);
      this.time = Math.max(this.time, next.due);
      next.fire();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.time = end;
  }
}
