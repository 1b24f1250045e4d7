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
