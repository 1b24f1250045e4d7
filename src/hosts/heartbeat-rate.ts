/**
 * Heartbeats recorded over the last minute, in one-second buckets: an operator's "how many
 * heartbeats per minute does this replica take", cheap enough for the hot heartbeat path
 * (one array write per heartbeat, no allocation) and bounded (60 numbers, whatever the rate).
 */
export class HeartbeatRate {
  private static readonly BUCKETS = 60;
  private readonly counts = new Float64Array(HeartbeatRate.BUCKETS);
  /** The epoch second each bucket last counted for; a bucket of an older second is stale. */
  private readonly seconds = new Float64Array(HeartbeatRate.BUCKETS).fill(-Infinity);

  /** Counts one heartbeat at `now` (epoch ms). */
  record(now: number): void {
    const second = Math.floor(now / 1000);
    const index = second % HeartbeatRate.BUCKETS;
    if (this.seconds[index] !== second) {
      this.seconds[index] = second;
      this.counts[index] = 0;
    }
    this.counts[index] = (this.counts[index] ?? 0) + 1;
  }

  /** Heartbeats recorded in the 60 whole seconds up to and including the one of `now`. */
  lastMinute(now: number): number {
    const second = Math.floor(now / 1000);
    let total = 0;
    for (let index = 0; index < HeartbeatRate.BUCKETS; index++) {
      const age = second - (this.seconds[index] ?? -Infinity);
      if (age >= 0 && age < HeartbeatRate.BUCKETS) total += this.counts[index] ?? 0;
    }
    return total;
  }
}
