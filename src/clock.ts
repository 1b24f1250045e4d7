/** Where "now" comes from, so expiry can be tested without sleeping. */
export interface Clock {
  /** Milliseconds since the Unix epoch, with sub-millisecond precision where the clock has it. */
  now(): number;
}

export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
};

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(private current: number = Date.UTC(2026, 10, 28, 6, 40, 12)) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}

/**
 * Whether `intervalMs` has passed since `since` by the wall clock, for "at most every so often"
 * work. A clock that stepped back (NTP, a restored VM) counts as passed: otherwise that work
 * would stop for as long as the step, since `now - since` stays negative until the clock
 * catches up.
 */
export function intervalPassed(now: number, since: number, intervalMs: number): boolean {
  return now < since || now - since >= intervalMs;
}
