import { randomBytes } from 'node:crypto';
import { intervalPassed, type Clock } from '../clock.js';
import { StorageUnavailableError } from '../errors.js';
import { ReadRetries, type KeptView } from './freshness.js';
import type { Log } from '../logger.js';
import type { HostSnapshot } from './host-lists.js';
import type { HostEvents } from './host-events.js';
import type { HostService } from './host-service.js';
import type { InstanceStatus } from './model.js';
import { statusCounts } from './status-views.js';

/** What the registry knows about one service, as `GET /v1/services` lists it. */
export interface ServiceSummary {
  readonly service: string;
  /** Live hosts (never 0: a service without live hosts is not listed). */
  readonly hosts: number;
  /** Distinct revisions run by the live hosts; 2 or more while a deploy is in progress. */
  readonly revisions: number;
  /** Distinct non-empty `service_repo_name`s of the live hosts, sorted. */
  readonly service_repo_names: readonly string[];
  /** Live hosts by effective status, every status named (they add up to `hosts`). */
  readonly statuses: Readonly<Record<InstanceStatus, number>>;
}

/** Which services to list: keyset-paged over service names in code-unit order. */
export interface ServiceQuery {
  /** At most this many summaries (the caller bounds it). */
  readonly limit: number;
  /** Only names starting with this (case-sensitive). */
  readonly prefix?: string;
  /** Only names containing this, ignoring case. */
  readonly filter?: string;
  /** Only names after this one: the last name of the previous page. */
  readonly after?: string;
}

export interface ServiceTotals {
  readonly services: number;
  readonly hosts: number;
  readonly hostsByStatus: Readonly<Record<InstanceStatus, number>>;
}

export interface ServicePage {
  readonly services: readonly ServiceSummary[];
  /** Services matching `prefix` and `filter`, on every page together. */
  readonly total: number;
  /** The name to pass as `after` for the next page; undefined on the last page. */
  readonly nextAfter: string | undefined;
  /**
   * Changes whenever any summary changes (and differs between processes), so equal versions
   * with equal queries mean equal pages: a sound ETag.
   */
  readonly version: string;
}

export interface ServiceDirectoryOptions {
  readonly hostService: HostService;
  /** Where the domain publishes what changed (compose.ts passes the one publisher). */
  readonly events: Pick<HostEvents, 'onServiceChanged' | 'onResync'>;
  readonly clock: Clock;
  readonly log: Log;
  /** Longest time between full re-reads of storage; see the class comment. */
  readonly refreshIntervalMs?: number;
  /** Services read from storage at once during a refresh. */
  readonly concurrency?: number;
  /** Where a failed re-read of changed services waits to be retried (a private one when absent). */
  readonly retries?: ReadRetries;
}

/**
 * Once a minute at most: on DynamoDB a full refresh is one scan (`listServices`) plus one query
 * per service, which for 10,000 services is a few hundred read units a minute, cheap next to the
 * heartbeats; and it only bounds how late this replica sees changes made through other replicas.
 */
export const SERVICE_DIRECTORY_REFRESH_MS = 60_000;
/** The directory's re-read of changed services in ReadRetries. */
const DIRECTORY_RETRY_KEY = 'directory';

/** Enough parallel reads to refresh 10,000 services in about a second on DynamoDB without hogging the connection pool. */
export const SERVICE_DIRECTORY_CONCURRENCY = 16;

/**
 * Services marked changed between two lists. Past this many a full refresh is cheaper than
 * re-reading each, and the set must not grow with every name ever changed while nobody lists
 * (the gauges read only the summary): it is dropped and the next list rebuilds everything.
 */
const DIRTY_MAX = 10_000;

interface Entry {
  readonly summary: ServiceSummary;
  /** `reads` counter when this entry was read from storage. */
  readonly readSeq: number;
  /** When that read began (epoch ms): what the change feed's anti-entropy check compares. */
  readonly readAt: number;
}

/**
 * The summary of every service, kept in memory so that listing services never scans storage per
 * call. On DynamoDB `listServices()` is a table scan, so:
 *
 * - The summary is built on first use (one scan and one read per service, through
 *   `HostService.listByService`, so expiry and sweeping follow the same rules as every read) and
 *   rebuilt in the background when a list is asked for and the last full build is older than
 *   `refreshIntervalMs`; the stale summary is answered meanwhile. An idle registry costs nothing.
 * - Local changes are not left to the interval: `HostEvents.onServiceChanged` marks a service
 *   dirty, and the next list re-reads only the dirty services before answering, so a change made
 *   through this process is listed at once.
 * - Changes through other replicas sharing the table reach it as change events too when the
 *   change feed runs (and a re-sync marks everything); without it, they and hosts expiring
 *   without anyone reading their service are seen at the next full refresh: counts lag by at
 *   most the interval (plus the refresh's own duration). Host lists themselves (`GET /v1/registration/:service`) are never
 *   served from this summary.
 *
 * Memory is one small record per service. Pages are cut from a sorted name array, so a page costs
 * a binary search plus the page itself (a `filter` also walks the names, microseconds for 10,000).
 */
export class ServiceDirectory implements KeptView {
  private readonly hostService: HostService;
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly refreshIntervalMs: number;
  private readonly concurrency: number;
  private readonly retries: ReadRetries;
  private readonly entries = new Map<string, Entry>();
  private readonly dirty = new Set<string>();
  private readonly epoch = randomBytes(6).toString('base64url');
  private readonly unsubscribe: () => void;
  private sortedNames: string[] | undefined;
  private lowerNames: string[] | undefined;
  private changes = 0;
  private reads = 0;
  private lastFullRefreshAt: number | undefined;
  /** When the last full refresh started, successful or not, so a failing storage is retried once per interval, not per call. */
  private lastAttemptAt = -Infinity;
  private fullRefresh: Promise<void> | undefined;
  /** More services changed than DIRTY_MAX since the last list: the next list waits for a full refresh. */
  private tooManyChanged = false;
  private dirtyRefresh: Promise<void> | undefined;

  constructor(options: ServiceDirectoryOptions) {
    this.hostService = options.hostService;
    this.clock = options.clock;
    this.log = options.log;
    this.refreshIntervalMs = options.refreshIntervalMs ?? SERVICE_DIRECTORY_REFRESH_MS;
    this.concurrency = options.concurrency ?? SERVICE_DIRECTORY_CONCURRENCY;
    this.retries = options.retries ?? new ReadRetries(options.log);
    const unsubscribeChanges = options.events.onServiceChanged((service) => this.markChanged(service));
    // Anything may have changed (the change feed could not say what): the next list reads everything.
    const unsubscribeResync = options.events.onResync(() => this.markAllChanged());
    this.unsubscribe = () => {
      unsubscribeChanges();
      unsubscribeResync();
    };
  }

  /**
   * One page of service summaries, by name. The first call waits for the first full build (and
   * throws what storage throws); later calls answer from memory after re-reading services changed
   * locally, and start a background rebuild when the last one is older than the interval.
   */
  async list(query: ServiceQuery): Promise<ServicePage> {
    if (this.lastFullRefreshAt === undefined || this.tooManyChanged) {
      // A refresh already running may have read a service before it changed: one more after it.
      if (this.tooManyChanged && this.fullRefresh) await this.fullRefresh.catch(() => undefined);
      await this.refreshAll();
    } else if (
      intervalPassed(this.clock.now(), this.lastAttemptAt, this.refreshIntervalMs) &&
      this.fullRefresh === undefined
    ) {
      this.refreshAll().catch((error: unknown) =>
        this.log.warn({ err: error }, 'service directory refresh failed; serving the previous summary'),
      );
    }
    await this.refreshDirty();
    return this.page(query);
  }

  /** Live services and hosts (also by status) as last summarised (no storage call; for gauges). */
  totals(): ServiceTotals {
    let services = 0;
    let hosts = 0;
    const hostsByStatus: Record<InstanceStatus, number> = { UP: 0, DRAINING: 0, OUT_OF_SERVICE: 0 };
    for (const { summary } of this.entries.values()) {
      if (summary.hosts > 0) services++;
      hosts += summary.hosts;
      for (const status of Object.keys(hostsByStatus) as InstanceStatus[])
        hostsByStatus[status] += summary.statuses[status];
    }
    return { services, hosts, hostsByStatus };
  }

  /** When the summary of `service` was read (KeptView). */
  keptReadAt(service: string): number | undefined {
    return this.entries.get(service)?.readAt;
  }

  keptServices(): Iterable<string> {
    return this.entries.keys();
  }

  /** Stops listening to change events. */
  close(): void {
    this.unsubscribe();
    this.retries.forget(DIRECTORY_RETRY_KEY);
  }

  private page(query: ServiceQuery): ServicePage {
    const names = (this.sortedNames ??= [...this.entries.keys()].sort());
    const lower = (this.lowerNames ??= names.map((name) => name.toLowerCase()));
    const prefix = query.prefix ?? '';
    const needle = query.filter?.toLowerCase() ?? '';
    const from = lowerBound(names, prefix);
    const after = query.after;
    const services: ServiceSummary[] = [];
    let total = 0;
    let nextAfter: string | undefined;
    for (let index = from; index < names.length; index++) {
      const name = names[index] as string;
      if (!name.startsWith(prefix)) break;
      if (needle !== '' && !(lower[index] as string).includes(needle)) continue;
      total++;
      if (after !== undefined && name <= after) continue;
      if (services.length < query.limit) {
        services.push((this.entries.get(name) as Entry).summary);
      } else if (nextAfter === undefined) {
        nextAfter = services[services.length - 1]?.service;
      }
    }
    return { services, total, nextAfter, version: `${this.epoch}.${this.changes}` };
  }

  private markAllChanged(): void {
    this.dirty.clear();
    this.tooManyChanged = true;
  }

  private markChanged(service: string): void {
    if (this.tooManyChanged) return;
    if (this.dirty.size >= DIRTY_MAX) {
      this.dirty.clear();
      this.tooManyChanged = true;
    } else {
      this.dirty.add(service);
    }
  }

  /** Re-reads every service storage names, and drops the ones it no longer names. */
  private refreshAll(): Promise<void> {
    this.fullRefresh ??= (async () => {
      // Changes from here on are marked again; the ones before are all read by this refresh.
      this.tooManyChanged = false;
      const startedAt = this.clock.now();
      this.lastAttemptAt = startedAt;
      const startSeq = this.reads;
      try {
        const names = await this.hostService.listServiceNames();
        await forEachLimited(names, this.concurrency, (name) => this.refreshOne(name));
        const named = new Set(names);
        // A service added by a change event while this refresh ran has a newer read; keep it.
        for (const [name, entry] of this.entries) {
          if (!named.has(name) && entry.readSeq <= startSeq) this.remove(name);
        }
        this.lastFullRefreshAt = startedAt;
      } finally {
        this.fullRefresh = undefined;
      }
    })();
    return this.fullRefresh;
  }

  /**
   * Re-reads the services marked by change events. Concurrent lists share one pass; events that
   * arrive during a pass are handled by one more, so a caller sees every change made before it.
   */
  private async refreshDirty(): Promise<void> {
    for (let pass = 0; pass < 2 && (this.dirty.size > 0 || this.dirtyRefresh); pass++) {
      this.dirtyRefresh ??= (async () => {
        const services = [...this.dirty];
        this.dirty.clear();
        try {
          await forEachLimited(services, this.concurrency, (name) => this.refreshOne(name));
          this.retries.succeeded(DIRECTORY_RETRY_KEY);
        } catch (error) {
          // Storage failed: keep them dirty, answer from what is known, and read them again
          // until a read succeeds (the gauges read this summary without anyone listing).
          for (const name of services) this.dirty.add(name);
          this.log.debug({ err: error }, 'service directory could not re-read changed services; retrying');
          this.retries.failed(DIRECTORY_RETRY_KEY, () => void this.refreshDirty(), error);
        } finally {
          this.dirtyRefresh = undefined;
        }
      })();
      await this.dirtyRefresh;
    }
  }

  private async refreshOne(name: string): Promise<void> {
    const seq = ++this.reads;
    const readAt = this.clock.now();
    const snapshot = await this.hostService.listByService(name);
    // Storage could answer only with the last list read: the summary keeps what it had, and the
    // service stays marked to be read again (a failed read never replaces what was known good).
    if (snapshot.staleAgeSeconds !== undefined)
      throw new StorageUnavailableError(
        `storage unavailable: the list of '${name}' is ${snapshot.staleAgeSeconds} s old`,
      );
    const current = this.entries.get(name);
    // A slower read of older data must not overwrite a newer one that finished first.
    if (current && current.readSeq > seq) return;
    if (snapshot.hosts.length === 0) {
      this.remove(name);
      return;
    }
    const summary = summarise(name, snapshot);
    if (current && sameSummary(current.summary, summary)) {
      this.entries.set(name, { summary: current.summary, readSeq: seq, readAt });
      return;
    }
    if (!current) this.namesChanged();
    this.entries.set(name, { summary, readSeq: seq, readAt });
    this.changes++;
  }

  private remove(name: string): void {
    if (!this.entries.delete(name)) return;
    this.namesChanged();
    this.changes++;
  }

  private namesChanged(): void {
    this.sortedNames = undefined;
    this.lowerNames = undefined;
  }
}

function summarise(service: string, snapshot: HostSnapshot): ServiceSummary {
  const revisions = new Set<string>();
  const repos = new Set<string>();
  for (const host of snapshot.hosts) {
    revisions.add(host.revision);
    if (host.service_repo_name !== '') repos.add(host.service_repo_name);
  }
  return Object.freeze({
    service,
    hosts: snapshot.hosts.length,
    revisions: revisions.size,
    service_repo_names: Object.freeze([...repos].sort()),
    statuses: Object.freeze(statusCounts(snapshot.hosts)),
  });
}

function sameSummary(a: ServiceSummary, b: ServiceSummary): boolean {
  return (
    a.hosts === b.hosts &&
    a.revisions === b.revisions &&
    a.statuses.UP === b.statuses.UP &&
    a.statuses.DRAINING === b.statuses.DRAINING &&
    a.statuses.OUT_OF_SERVICE === b.statuses.OUT_OF_SERVICE &&
    a.service_repo_names.length === b.service_repo_names.length &&
    a.service_repo_names.every((repo, index) => repo === b.service_repo_names[index])
  );
}

/** Index of the first name not below `key`. */
function lowerBound(names: readonly string[], key: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((names[mid] as string) < key) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Runs `task` on every item, at most `limit` at a time; rejects with the first failure after all settle. */
async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && failure === undefined) {
      const item = items[next++] as T;
      try {
        await task(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}
