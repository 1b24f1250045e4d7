import { StatsD } from 'hot-shots';
import type { Log, RegistryStats } from './hosts/host-service.js';

const STATSD_PREFIXES = ['registration.', 'service.host.', 'xds.nack'];

/** Sends every event to each of `targets` (statsd and Prometheus, say). */
export function fanOut(...targets: RegistryStats[]): RegistryStats {
  return { increment: (metric) => targets.forEach((target) => target.increment(metric)) };
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

  /** Counts SPEC.md's counters (and xDS NACKs); internal ones such as cache lookups are Prometheus-only. */
  increment(metric: string): void {
    const count = this.pending.get(metric);
    if (count !== undefined) this.pending.set(metric, count + 1);
    else if (STATSD_PREFIXES.some((prefix) => metric.startsWith(prefix))) this.pending.set(metric, 1);
  }

  close(): Promise<void> {
    clearInterval(this.flushTimer);
    this.flush();
    return new Promise((resolve) => this.client.close(() => resolve()));
  }

  private flush(): void {
    for (const [metric, count] of this.pending) this.client.increment(metric, count);
    this.pending.clear();
  }
}
