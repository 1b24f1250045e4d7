import { readFileSync } from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { FeedObserver, HintOutcome } from './replication/change-feed.js';
import { HOST_STORE_METHODS } from './hosts/host-store.js';
import { INSTANCE_STATUSES, type InstanceStatus } from './hosts/model.js';
import {
  XDS_EVENTS,
  type CacheLookupResult,
  type HeartbeatOutcome,
  type HostRemovalReason,
  type RegistryStats,
  type XdsEvent,
} from './stats.js';

/**
 * prom-client's default metrics that `promtool check metrics` rejects: gauges named `_total`.
 * Each has a twin without the suffix (`nodejs_active_handles` and so on) holding the same count
 * without the per-type breakdown, so leaving these out loses nothing a dashboard shows.
 */
const REJECTED_DEFAULT_METRICS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** The event values of the labelled counters, each series exported at 0 from start-up. */
const HOST_EVENTS = ['swept', 'deleted', 'protected'] as const;
const STORAGE_OUTCOMES = ['ok', 'error'] as const;

/** This build's version, from the package.json shipped beside dist/ (two levels up from dist/src/). */
function packageVersion(): string {
  try {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof manifest.version === 'string' ? manifest.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Prometheus metrics for `/metrics`, on a registry of their own (not prom-client's global one,
 * so two registries in one test process never collide).
 *
 * The domain and the xDS layer report typed events (RegistryStats); this class tallies each as
 * a labelled Prometheus counter, from the same calls statsd counts. Service names are not
 * labels: a fleet of 10,000 services would make 10,000 series per counter. Per-service detail
 * stays in statsd, whose counters carry the service in their names.
 */
export class Metrics implements RegistryStats, FeedObserver {
  readonly registry = new Registry();
  private readonly http: TallyHistogram;
  private readonly registrationTally = { success: 0, failure: 0 };
  private readonly hostEvents: Counter<'event'>;
  private readonly cacheLookupTally = { hit: 0, miss: 0 };
  private readonly storage: TallyHistogram;
  private readonly requestKeys = new Map<string, Map<string, Map<number, string>>>();
  private readonly xdsEvents: Counter<'event'>;
  private readonly hintTally: Record<HintOutcome, number> = { sent: 0, failed: 0, received: 0 };

  constructor(
    gauges: {
      liveHosts?: () => number;
      liveHostsByStatus?: () => Readonly<Record<InstanceStatus, number>>;
      liveServices?: () => number;
      xdsStreams?: () => number;
      /** Peer replicas the change feed hints (absent: no gauge). */
      feedPeers?: () => number;
    } = {},
  ) {
    const registers = [this.registry];
    // Unprefixed, as every stock Node.js and process dashboard expects them.
    collectDefaultMetrics({ register: this.registry });
    for (const name of REJECTED_DEFAULT_METRICS) this.registry.removeSingleMetric(name);
    new Gauge({
      name: 'discovery_build_info',
      help: 'Always 1; its labels say which discovery build and Node.js runtime this process runs',
      labelNames: ['version', 'nodejs_version'],
      registers,
    }).set({ version: packageVersion(), nodejs_version: process.version }, 1);
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
    for (const event of HOST_EVENTS) this.hostEvents.inc({ event }, 0);
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
    for (const operation of HOST_STORE_METHODS)
      for (const outcome of STORAGE_OUTCOMES) this.storage.declare(`${operation} ${outcome}`, { operation, outcome });
    this.xdsEvents = new Counter({
      name: 'discovery_xds_events_total',
      help: 'xDS responses pushed and NACKs received',
      labelNames: ['event'],
      registers,
    });
    for (const event of XDS_EVENTS) this.xdsEvents.inc({ event }, 0);
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
    gauge(
      'discovery_change_feed_peers',
      'Other replicas on the table this one hints of its changes (0 without a change feed)',
      gauges.feedPeers,
    );
    tallyCounter(
      registers,
      'discovery_change_feed_hints_total',
      'Change hints: sent (a peer took it), failed (it did not reach the peer, which catches up from the change log) and received',
      'outcome',
      this.hintTally,
    );
    const byStatus = gauges.liveHostsByStatus;
    if (byStatus)
      new Gauge({
        name: 'discovery_live_hosts_by_status',
        help: 'Live hosts across every service by effective status (UP, DRAINING, OUT_OF_SERVICE), as this replica last saw them',
        labelNames: ['status'],
        registers,
        collect() {
          const counts = byStatus();
          for (const status of INSTANCE_STATUSES) this.set({ status }, counts[status]);
        },
      });
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

  hint(outcome: HintOutcome): void {
    this.hintTally[outcome]++;
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

  /**
   * Exports a request series at 0 before its first request, so a rate or ratio over it reads 0,
   * not "no data". The app declares each described route with every status it documents.
   */
  declareRequestSeries(method: string, route: string, status: number): void {
    this.http.declare(this.requestSeriesKey(method, route, status), { method, route, status: String(status) });
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

  /** Creates the series of `key` with no observation yet, so it is exported at 0. */
  declare(key: string, labels: Record<string, string>): void {
    if (!this.series.has(key)) this.series.set(key, this.emptySeries(labels));
  }

  observe(key: string, labels: () => Record<string, string>, value: number): void {
    let series = this.series.get(key);
    if (!series) {
      series = this.emptySeries(labels());
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

  private emptySeries(labels: Record<string, string>): Series {
    return { labels, buckets: new Array<number>(this.upperBounds.length).fill(0), sum: 0, count: 0 };
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
