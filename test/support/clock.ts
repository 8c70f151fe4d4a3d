// A clock that moves only when the test says so: `advance(ms)` fires every timer that
// falls due, in order, each at its own time. It serves both clocks that take one: the
// server's (server/clock.ts: sessions) and the leadership client's (client/leadership.ts:
// its lease and timers). Whether a session expires or a leader is deposed then depends on
// the time the test let pass, never on how loaded the machine is.
import type { Clock as ClientClock } from "../../client/leadership.js";
import type { Clock as ServerClock, Timer } from "../../server/clock.js";

class ManualTimer implements Timer {
  constructor(
    private readonly clock: ManualClock,
    readonly ms: number,
    readonly fire: () => void,
    public due: number,
    public seq: number,
  ) {}

  refresh(): this {
    this.due = this.clock.now() + this.ms;
    this.clock.pending.add(this);
    return this;
  }
}

export class ManualClock implements ServerClock, ClientClock {
  private time = 0;
  private seq = 0;
  /** Timers not yet fired or cancelled. */
  readonly pending = new Set<ManualTimer>();

  now(): number {
    return this.time;
  }

  timer<T>(ms: number, fire: (arg: T) => void, arg: T): Timer {
    const timer = new ManualTimer(this, ms, () => fire(arg), this.time + ms, this.seq++);
    this.pending.add(timer);
    return timer;
  }

  cancel(timer: Timer | undefined): void {
    if (timer instanceof ManualTimer) this.pending.delete(timer);
  }

  after(ms: number, callback: () => void): () => void {
    const timer = this.timer(Math.max(0, ms), callback, undefined);
    return () => this.cancel(timer);
  }

  /** When the next timer is due, if any is set. */
  next(): number | undefined {
    let first: number | undefined;
    for (const t of this.pending) if (first === undefined || t.due < first) first = t.due;
    return first;
  }

  /**
   * Moves time forward by `ms`, firing due timers earliest first (in the order they were
   * set when due together); the promise jobs each firing starts run before the next timer
   * fires, as they would between real timers.
   */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const timer of this.pending) {
        if (timer.due > end) continue;
        if (!next || timer.due < next.due || (timer.due === next.due && timer.seq < next.seq)) {
          next = timer;
        }
      }
      if (!next) break;
      this.pending.delete(next);
      this.time = Math.max(this.time, next.due);
      next.fire();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.time = end;
  }
}
