import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RegistryStats } from './hosts/host-service.js';

/**
 * Prometheus metrics for `/metrics`, on a registry of their own (not prom-client's global one,
 * so two registries in one test process never collide).
 *
 * The domain and the xDS layer report through `RegistryStats.increment(name)` with the statsd
 * names of SPEC.md (plus a few internal ones); this class maps each known name to a labelled
 * Prometheus counter. Service names are not labels: a fleet of 10,000 services would make
 * 10,000 series per counter. Per-service detail stays in statsd, as SPEC.md has it.
 */
export class Metrics implements RegistryStats {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  private readonly registrations: Counter<'outcome'>;
  private readonly hostEvents: Counter<'event'>;
  private readonly cacheLookups: Counter<'result'>;
  private readonly storageCalls: Counter<'operation' | 'outcome'>;
  private readonly storageDuration: Histogram<'operation'>;
  private readonly xdsEvents: Counter<'event'>;
  /** Label-bound children, so the request path does no label hashing. */
  private readonly httpChildren = new Map<string, { count: Counter.Internal; duration: Histogram.Internal<'method' | 'route' | 'status'> }>();

  constructor(gauges: { liveHosts?: () => number; liveServices?: () => number; xdsStreams?: () => number } = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'discovery_' });
    this.httpRequests = new Counter({ name: 'discovery_http_requests_total', help: 'HTTP requests answered, by route template and status', labelNames: ['method', 'route', 'status'], registers });
    this.httpDuration = new Histogram({
      name: 'discovery_http_request_duration_seconds',
      help: 'Time from request to response, by route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.registrations = new Counter({ name: 'discovery_registrations_total', help: 'Heartbeats, by outcome (success, failure)', labelNames: ['outcome'], registers });
    this.hostEvents = new Counter({ name: 'discovery_host_events_total', help: 'Hosts swept after HOST_TTL, deleted, or kept by expiry protection (per read)', labelNames: ['event'], registers });
    this.cacheLookups = new Counter({ name: 'discovery_cache_lookups_total', help: 'Host list reads served from what this replica holds (hit) or rebuilt from storage (miss)', labelNames: ['result'], registers });
    this.storageCalls = new Counter({ name: 'discovery_storage_calls_total', help: 'Calls to the storage backend, by operation and outcome (ok, error)', labelNames: ['operation', 'outcome'], registers });
    this.storageDuration = new Histogram({
      name: 'discovery_storage_call_duration_seconds',
      help: 'Storage call latency, by operation',
      labelNames: ['operation'],
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.xdsEvents = new Counter({ name: 'discovery_xds_events_total', help: 'xDS responses pushed and NACKs received', labelNames: ['event'], registers });
    const gauge = (name: string, help: string, read: (() => number) | undefined) => {
      if (read) new Gauge({ name, help, registers, collect() { this.set(read()); } });
    };
    gauge('discovery_live_hosts', 'Live hosts across every service, as this replica last saw them', gauges.liveHosts);
    gauge('discovery_live_services', 'Services with at least one live host, as this replica last saw them', gauges.liveServices);
    gauge('discovery_xds_streams', 'Open xDS streams (ADS and EDS)', gauges.xdsStreams);
  }

  increment(metric: string): void {
    if (metric.startsWith('registration.')) this.registrations.inc({ outcome: metric.endsWith('.success') ? 'success' : 'failure' });
    else if (metric.startsWith('service.host.sweep.')) this.hostEvents.inc({ event: 'swept' });
    else if (metric.startsWith('service.host.delete.')) this.hostEvents.inc({ event: 'deleted' });
    else if (metric.startsWith('service.host.protected.')) this.hostEvents.inc({ event: 'protected' });
    else if (metric === 'cache.hit' || metric === 'cache.miss') this.cacheLookups.inc({ result: metric.slice(6) });
    else if (metric === 'xds.push') this.xdsEvents.inc({ event: 'push' });
    else if (metric === 'xds.nack') this.xdsEvents.inc({ event: 'nack' });
  }

  /** One answered HTTP request; `route` is the route template, never the raw URL. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    const key = `${method} ${route} ${status}`;
    let child = this.httpChildren.get(key);
    if (!child) {
      const labels = { method, route, status: String(status) };
      child = { count: this.httpRequests.labels(labels), duration: this.httpDuration.labels(labels) };
      this.httpChildren.set(key, child);
    }
    child.count.inc();
    child.duration.observe(seconds);
  }

  observeStorageCall(operation: string, ok: boolean, seconds: number): void {
    this.storageCalls.inc({ operation, outcome: ok ? 'ok' : 'error' });
    this.storageDuration.observe({ operation }, seconds);
  }

  /** The text exposition format. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
