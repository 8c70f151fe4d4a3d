// Time as the server's timing code sees it: a monotonic `now()` and timers. The system
// clock is Node's own; tests pass a clock they move by hand, so that whether a session
// expires never depends on how loaded the machine is (client-go's leader elector takes a
// clock for the same reason).

/** A pending timer: `refresh()` starts its delay again from now, in O(1). */
export interface Timer {
  refresh(): unknown;
}

export interface Clock {
  /** Milliseconds on a monotonic clock (only differences mean anything). */
  now(): number;
  /**
   * Calls `fire(arg)` once, `ms` from now. The argument rides with the timer so that many
   * timers can share one function; a timer never keeps the process alive.
   */
  timer<T>(ms: number, fire: (arg: T) => void, arg: T): Timer;
  cancel(timer: Timer | undefined): void;
}

/**
 * Node's timers and performance clock. A timer is Node's own Timeout (no wrapper), so a
 * session costs its timer and nothing more, and `refresh()` keeps Node's O(1) relinking.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  timer: (ms, fire, arg) => setTimeout(fire, ms, arg).unref(),
  cancel: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
};
