import { StatsD } from 'hot-shots';
import type { Log, RegistryStats } from './hosts/host-service.js';

const STATSD_PREFIXES = ['registration.', 'service.host.', 'xds.nack'];

/** Sends every event to each of `targets` (statsd and Prometheus, say). */
export function fanOut(...targets: RegistryStats[]): RegistryStats {
  return { increment: (metric) => targets.forEach((target) => target.increment(metric)) };
}

/**
 * statsd counters over UDP through hot-shots. Sending never blocks or fails a request:
 * a missing statsd daemon only costs a debug log line.
 */
export class StatsdStats implements RegistryStats {
  private readonly client: StatsD;

  constructor(options: { host: string; port: number; prefix: string; log: Log }) {
    this.client = new StatsD({
      host: options.host,
      port: options.port,
      prefix: options.prefix,
      protocol: 'udp',
      // Batch counters into few datagrams; a heartbeat storm must not mean one syscall per counter.
      maxBufferSize: 1400,
      bufferFlushInterval: 100,
      errorHandler: (error) => options.log.debug({ err: error }, 'statsd send failed'),
    });
  }

  /** Forwards SPEC.md's counters (and xDS NACKs); internal ones such as cache lookups are Prometheus-only. */
  increment(metric: string): void {
    if (STATSD_PREFIXES.some((prefix) => metric.startsWith(prefix))) this.client.increment(metric);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.client.close(() => resolve()));
  }
}
