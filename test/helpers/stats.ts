import {
  statsdCounter,
  type CacheLookupResult,
  type HeartbeatOutcome,
  type HostRemovalReason,
  type RegistryStats,
  type XdsEvent,
} from '../../src/stats.js';

/**
 * Counts every event instead of sending it, under the statsd name it would be sent as (and
 * `cache.hit|miss`, `xds.push|nack` for the events statsd does not carry).
 */
export class RecordingStats implements RegistryStats {
  readonly counts = new Map<string, number>();
  heartbeat(service: string, outcome: HeartbeatOutcome): void {
    this.add(statsdCounter.heartbeat(service, outcome));
  }
  hostRemoved(service: string, reason: HostRemovalReason): void {
    this.add(statsdCounter.hostRemoved(service, reason));
  }
  expiryProtected(service: string): void {
    this.add(statsdCounter.expiryProtected(service));
  }
  cacheLookup(result: CacheLookupResult): void {
    this.add(`cache.${result}`);
  }
  xds(event: XdsEvent): void {
    this.add(`xds.${event}`);
  }
  count(name: string): number {
    return this.counts.get(name) ?? 0;
  }
  private add(name: string): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }
}
