import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { CacheLookupResult, HeartbeatOutcome, HostRemovalReason, RegistryStats, XdsEvent } from './stats.js';

/**
 * Prometheus metrics for `/metrics`, on a registry of their own (not prom-client's global one,
 * so two registries in one test process never collide).
 *
 * The domain and the xDS layer report typed events (RegistryStats); this class tallies each as
 * a labelled Prometheus counter, from the same calls statsd counts. Service names are not
 * labels: a fleet of 10,000 services would make 10,000 series per counter. Per-service detail
 * stays in statsd, whose counters carry the service in their names.
 */
export class Metrics implements RegistryStats {
  readonly registry = new Registry();
  private readonly http: TallyHistogram;
  private readonly registrationTally = { success: 0, failure: 0 };
  private readonly hostEvents: Counter<'event'>;
  private readonly cacheLookupTally = { hit: 0, miss: 0 };
  private readonly storage: TallyHistogram;
  private readonly requestKeys = new Map<string, Map<string, Map<number, string>>>();
  private readonly xdsEvents: Counter<'event'>;

  constructor(gauges: { liveHosts?: () => number; liveServices?: () => number; xdsStreams?: () => number } = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'discovery_' });
    this.http = new TallyHistogram(
      'discovery_http_request_duration_seconds',
      'Time from request to response, by route template and status (its _count is the number of requests answered)',
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    );
    this.registry.registerMetric(this.http as never);
    tallyCounter(
      registers,
      'discovery_registrations_total',
      'Heartbeats, by outcome (success, failure)',
      'outcome',
      this.registrationTally,
    );
    this.hostEvents = new Counter({
      name: 'discovery_host_events_total',
      help: 'Hosts swept after HOST_TTL, deleted, or kept by expiry protection (per read)',
      labelNames: ['event'],
      registers,
    });
    tallyCounter(
      registers,
      'discovery_cache_lookups_total',
      'Host list reads served from what this replica holds (hit) or rebuilt from storage (miss)',
      'result',
      this.cacheLookupTally,
    );
    this.storage = new TallyHistogram(
      'discovery_storage_call_duration_seconds',
      'Storage call latency by operation and outcome (ok, error); its _count is the number of calls',
      [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    );
    this.registry.registerMetric(this.storage as never);
    this.xdsEvents = new Counter({
      name: 'discovery_xds_events_total',
      help: 'xDS responses pushed and NACKs received',
      labelNames: ['event'],
      registers,
    });
    const gauge = (name: string, help: string, read: (() => number) | undefined) => {
      if (read)
        new Gauge({
          name,
          help,
          registers,
          collect() {
            this.set(read());
          },
        });
    };
    gauge('discovery_live_hosts', 'Live hosts across every service, as this replica last saw them', gauges.liveHosts);
    gauge(
      'discovery_live_services',
      'Services with at least one live host, as this replica last saw them',
      gauges.liveServices,
    );
    gauge('discovery_xds_streams', 'Open xDS streams (ADS and EDS)', gauges.xdsStreams);
  }

  heartbeat(_service: string, outcome: HeartbeatOutcome): void {
    this.registrationTally[outcome]++;
  }

  hostRemoved(_service: string, reason: HostRemovalReason): void {
    this.hostEvents.inc({ event: reason === 'expired' ? 'swept' : 'deleted' });
  }

  expiryProtected(): void {
    this.hostEvents.inc({ event: 'protected' });
  }

  cacheLookup(result: CacheLookupResult): void {
    this.cacheLookupTally[result]++;
  }

  xds(event: XdsEvent): void {
    this.xdsEvents.inc({ event });
  }

  /** One answered HTTP request; `route` is the route template, never the raw URL. */
  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.http.observe(
      this.requestSeriesKey(method, route, status),
      () => ({ method, route, status: String(status) }),
      seconds,
    );
  }

  /**
   * The same key string for the same request kind every time: a key built per request is a new
   * string to hash on every lookup, a measurable part of a cached 304 (bench/speed-notes.md).
   */
  private requestSeriesKey(method: string, route: string, status: number): string {
    let byRoute = this.requestKeys.get(method);
    if (!byRoute) this.requestKeys.set(method, (byRoute = new Map()));
    let byStatus = byRoute.get(route);
    if (!byStatus) byRoute.set(route, (byStatus = new Map()));
    let key = byStatus.get(status);
    if (key === undefined) byStatus.set(status, (key = `${method} ${route} ${status}`));
    return key;
  }

  observeStorageCall(operation: string, ok: boolean, seconds: number): void {
    const outcome = ok ? 'ok' : 'error';
    this.storage.observe(`${operation} ${outcome}`, () => ({ operation, outcome }), seconds);
  }

  /** The text exposition format. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/**
 * A counter whose values are tallied as plain numbers on a hot path and handed to prom-client
 * only when scraped (prom-client hashes labels on every `inc`). One label, one series per key.
 */
function tallyCounter(
  registers: Registry[],
  name: string,
  help: string,
  label: string,
  tally: Record<string, number>,
): void {
  new Counter({
    name,
    help,
    labelNames: [label],
    registers,
    collect() {
      this.reset();
      for (const [value, count] of Object.entries(tally)) this.inc({ [label]: value }, count);
    },
  });
}

interface Series {
  readonly labels: Record<string, string>;
  readonly buckets: number[];
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram for the request path. prom-client's own Histogram validates and hashes
 * its labels on every observation, which cost a visible share of a cached GET; this one keeps a
 * plain array per label set, found by a string key the caller already has, and hands the
 * figures to prom-client's registry only when scraped (same exposition, same metric type).
 */
class TallyHistogram {
  readonly type = 'histogram';
  private readonly series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly upperBounds: readonly number[],
  ) {}

  observe(key: string, labels: () => Record<string, string>, value: number): void {
    let series = this.series.get(key);
    if (!series) {
      series = { labels: labels(), buckets: new Array<number>(this.upperBounds.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, series);
    }
    series.sum += value;
    series.count++;
    const bounds = this.upperBounds;
    for (let index = 0; index < bounds.length; index++) {
      if (value <= bounds[index]!) {
        series.buckets[index]!++;
        break;
      }
    }
  }

  /** What prom-client's registry reads: cumulative buckets, +Inf, sum and count per label set. */
  get(): {
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: { labels: Record<string, string | number>; value: number; metricName: string }[];
  } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const { labels, buckets, sum, count } of this.series.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((bound, index) => {
        cumulative += buckets[index]!;
        values.push({ labels: { ...labels, le: bound }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...labels, le: '+Inf' }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values };
  }
}
