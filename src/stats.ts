import { StatsD } from 'hot-shots';
import type { Log } from './logger.js';

export type HeartbeatOutcome = 'success' | 'failure';
/** `expired`: swept after HOST_TTL; `deleted`: removed by an operator's DELETE. */
export type HostRemovalReason = 'expired' | 'deleted';
export type CacheLookupResult = 'hit' | 'miss';
/** `push`: an xDS response sent; `nack`: a proxy refused one. */
export type XdsEvent = 'push' | 'nack';

export const HEARTBEAT_OUTCOMES: readonly HeartbeatOutcome[] = ['success', 'failure'];
export const HOST_REMOVAL_REASONS: readonly HostRemovalReason[] = ['expired', 'deleted'];
export const CACHE_LOOKUP_RESULTS: readonly CacheLookupResult[] = ['hit', 'miss'];
export const XDS_EVENTS: readonly XdsEvent[] = ['push', 'nack'];

/**
 * What the registry reports as it works, one method per kind of event. Each sink counts the
 * events its own way: statsd under the counter names of the v1 contract (`statsdCounter`),
 * Prometheus as labelled counters (src/metrics.ts). Calls are cheap and never throw.
 */
export interface RegistryStats {
  /** A heartbeat recorded (`success`) or refused by the request check, the rules or storage (`failure`). */
  heartbeat(service: string, outcome: HeartbeatOutcome): void;
  hostRemoved(service: string, reason: HostRemovalReason): void;
  /** One read of a service whose expired hosts expiry protection keeps serving. */
  expiryProtected(service: string): void;
  /** A host-list read answered from what this replica holds (`hit`) or rebuilt from storage (`miss`). */
  cacheLookup(result: CacheLookupResult): void;
  xds(event: XdsEvent): void;
}

/** Counts nothing: for tools and tests that do not look at counters. */
export const NO_STATS: RegistryStats = Object.freeze({
  heartbeat() {},
  hostRemoved() {},
  expiryProtected() {},
  cacheLookup() {},
  xds() {},
});

/**
 * The statsd counter an event is sent as, or undefined for events statsd does not count. The
 * first three are the original service's names, which dashboards built for it read:
 * `registration.<service>.success|failure`, `service.host.sweep.<service>` and
 * `service.host.delete.<service>`; the protection and NACK counters are ours.
 */
export const statsdCounter = {
  heartbeat: (service: string, outcome: HeartbeatOutcome) => `registration.${metricName(service)}.${outcome}`,
  hostRemoved: (service: string, reason: HostRemovalReason) =>
    `service.host.${reason === 'expired' ? 'sweep' : 'delete'}.${metricName(service)}`,
  expiryProtected: (service: string) => `service.host.protected.${metricName(service)}`,
  xds: (event: XdsEvent) => (event === 'nack' ? 'xds.nack' : undefined),
} as const;

/** statsd metric names cannot hold `:`, `|`, `@` or whitespace; the service name is otherwise kept. */
function metricName(service: string): string {
  return service.replace(/[:|@#\s]/g, '_');
}

/** Sends every event to each of `targets` (statsd and Prometheus, say). */
export function fanOut(...targets: RegistryStats[]): RegistryStats {
  return {
    heartbeat: (service, outcome) => targets.forEach((target) => target.heartbeat(service, outcome)),
    hostRemoved: (service, reason) => targets.forEach((target) => target.hostRemoved(service, reason)),
    expiryProtected: (service) => targets.forEach((target) => target.expiryProtected(service)),
    cacheLookup: (result) => targets.forEach((target) => target.cacheLookup(result)),
    xds: (event) => targets.forEach((target) => target.xds(event)),
  };
}

/** How often summed counters are sent. */
const FLUSH_INTERVAL_MS = 100;

/**
 * statsd counters over UDP through hot-shots. Increments are summed in memory and sent every
 * 100 ms as one `name:count|c` per counter (statsd adds them up the same way), so a heartbeat
 * storm costs a map update per request, not a formatted message each. Sending never blocks or
 * fails a request: a missing statsd daemon only costs a debug log line.
 */
export class StatsdStats implements RegistryStats {
  private readonly client: StatsD;
  private readonly pending = new Map<string, number>();
  private readonly flushTimer: NodeJS.Timeout;

  constructor(options: { host: string; port: number; prefix: string; log: Log }) {
    this.client = new StatsD({
      host: options.host,
      port: options.port,
      prefix: options.prefix,
      protocol: 'udp',
      // Batch the counters of one flush into few datagrams.
      maxBufferSize: 1400,
      bufferFlushInterval: FLUSH_INTERVAL_MS,
      cacheDns: true,
      errorHandler: (error) => options.log.debug({ err: error }, 'statsd send failed'),
    });
    this.flushTimer = setInterval(() => this.flush(), FLUSH_INTERVAL_MS).unref();
  }

  heartbeat(service: string, outcome: HeartbeatOutcome): void {
    this.count(statsdCounter.heartbeat(service, outcome));
  }

  hostRemoved(service: string, reason: HostRemovalReason): void {
    this.count(statsdCounter.hostRemoved(service, reason));
  }

  expiryProtected(service: string): void {
    this.count(statsdCounter.expiryProtected(service));
  }

  /** Cache lookups are Prometheus-only: statsd carries the contract's counters and the NACKs. */
  cacheLookup(): void {}

  xds(event: XdsEvent): void {
    const name = statsdCounter.xds(event);
    if (name !== undefined) this.count(name);
  }

  close(): Promise<void> {
    clearInterval(this.flushTimer);
    this.flush();
    return new Promise((resolve) => this.client.close(() => resolve()));
  }

  private count(name: string): void {
    this.pending.set(name, (this.pending.get(name) ?? 0) + 1);
  }

  private flush(): void {
    for (const [metric, count] of this.pending) this.client.increment(metric, count);
    this.pending.clear();
  }
}
