import { createHash } from 'node:crypto';
import type { CacheType, CidrRange } from '../config.js';
import type { Clock } from '../clock.js';
import { InvalidInputError, NotFoundError, StorageUnavailableError } from '../errors.js';
import type { HeartbeatResult, HostStore } from '../store/host-store.js';
import {
  formatCheckIn,
  hostProblem,
  parseCheckIn,
  routingChanged,
  sortedKeys,
  type Heartbeat,
  type Host,
} from './model.js';
import { HeartbeatRate } from './heartbeat-rate.js';
import { RecentMap } from './recent-map.js';
import type { RegistrationBody } from './schemas.js';
import {
  autoIp,
  canonicalIp,
  parseBoolean,
  parsePort,
  parseTags,
  parseWeight,
  requireIp,
  type ClientAddress,
} from './validation.js';

/** Counters sent to statsd; names are SPEC.md's. */
export interface RegistryStats {
  increment(metric: string): void;
}

/** The part of a pino logger the domain uses. */
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * The live hosts of one service (or repo) at one moment. Immutable and shared: the same object
 * is handed out for as long as its content holds, so front ends may memoise what they derive
 * from it (serialised bytes) by identity.
 */
export interface HostSnapshot {
  /** Live hosts sorted by `ip_address` (by service first for repo snapshots). */
  readonly hosts: readonly Host[];
  /**
   * Hash of everything a proxy routes on: the host set and every field but `last_check_in`.
   * A heartbeat that changes nothing else leaves it unchanged.
   */
  readonly version: string;
  /**
   * Epoch ms until which this list stays right without new writes: when its first host expires
   * unless it heartbeats (Infinity if none), or the next re-check while expiry protection holds.
   */
  readonly nextExpiryAt: number;
  /** Hosts past HOST_TTL that expiry protection keeps serving (0 when it is not active). */
  readonly protectedHosts: number;
  /**
   * Set only on a list served from this replica's memory because storage is unavailable:
   * whole seconds since it was last read from storage. Absent on every fresh or cached list.
   */
  readonly staleAgeSeconds?: number;
}

/**
 * Expiry protection: when more than `threshold` of one service's hosts are past HOST_TTL at
 * once (and the service has at least `minHosts`), that looks like a partition between the hosts
 * and discovery rather than hosts dying, so the hosts are kept and served, for at most `maxSeconds`
 * past their expiry, until heartbeats return. Eureka's self-preservation, but per service.
 */
export interface ExpiryProtection {
  readonly enabled: boolean;
  readonly threshold: number;
  readonly minHosts: number;
  readonly maxSeconds: number;
}

export interface HostServiceOptions {
  readonly store: HostStore;
  readonly clock: Clock;
  readonly hostTtlSeconds: number;
  readonly cacheType: CacheType;
  readonly cacheTtlSeconds: number;
  readonly stats: RegistryStats;
  readonly log: Log;
  readonly autoIpAllowedRanges: readonly CidrRange[];
  readonly trustedProxyHops: number;
  readonly expiryProtection?: ExpiryProtection;
  /**
   * While storage is unavailable, a list read from it at most this many seconds ago is served
   * (marked stale) instead of failing; 0 or absent fails the read with 503.
   */
  readonly staleReadMaxSeconds?: number;
}

/** While protection holds, a protected list is re-judged this often, so it ends soon after heartbeats return. */
const PROTECTION_RECHECK_MS = 1000;

interface Selection {
  readonly hosts: Host[];
  readonly protectedHosts: number;
  readonly validUntil: number;
}

/** How many service and repo lists are remembered for stale reads; beyond it the least recently read are forgotten. */
const LAST_READS_MAX = 10_000;

/** How many distinct invalid records are remembered as already logged. */
const REPORTED_RECORDS_MAX = 1000;

/**
 * Snapshots of services (and repos) with hosts are kept for this many recently read names, twice
 * over (see RecentMap): a generation of 10,000 holds a fleet of 10,000 services that are all
 * polled without one being forgotten, and bounds what names that once had hosts leave behind.
 * A forgotten one costs a rebuild on its next read, nothing more.
 */
const SNAPSHOTS_GENERATION = 10_000;
const REPO_SNAPSHOTS_GENERATION = 1_000;
/**
 * Names last read without hosts, kept apart and few: anyone can read endless names that were
 * never registered, and must neither grow memory (a snapshot and its encoded body per name
 * used to stay forever) nor push real services out of the cache. Enough for the empty services
 * proxies actually poll.
 */
const EMPTY_SNAPSHOTS_GENERATION = 512;

interface LastRead {
  readonly snapshot: HostSnapshot;
  readonly readAt: number;
}

interface CachedSnapshot {
  readonly snapshot: HostSnapshot;
  readonly builtAt: number;
  readonly changeToken: number | undefined;
}

export type ServiceChangeListener = (service: string) => void;

/** What expiry protection is set to, and which services it holds now (for the dashboard). */
export interface ExpiryProtectionStatus extends ExpiryProtection {
  /** Services whose last read kept hosts past HOST_TTL, sorted. */
  readonly protectedServices: readonly string[];
}

/**
 * Every rule of the registry: validation, tag merging, expiry, caching and change events.
 * Front ends parse and reply; stores keep records.
 */
export class HostService {
  private readonly store: HostStore;
  private readonly clock: Clock;
  private readonly hostTtlMs: number;
  private readonly cacheTtlMs: number;
  private readonly cacheEnabled: boolean;
  private readonly serviceSnapshots = new RecentMap<string, CachedSnapshot>(SNAPSHOTS_GENERATION);
  private readonly emptyServiceSnapshots = new RecentMap<string, CachedSnapshot>(EMPTY_SNAPSHOTS_GENERATION);
  private readonly repoSnapshots = new RecentMap<string, CachedSnapshot>(REPO_SNAPSHOTS_GENERATION);
  private readonly emptyRepoSnapshots = new RecentMap<string, CachedSnapshot>(EMPTY_SNAPSHOTS_GENERATION);
  private readonly listeners = new Set<ServiceChangeListener>();
  private readonly lastServiceReads = new Map<string, LastRead>();
  private readonly lastRepoReads = new Map<string, LastRead>();
  /** Records already found valid; weak, so it holds nothing a store has let go. */
  private readonly checkedRecords = new WeakSet<Host>();
  private readonly reportedRecords = new Set<string>();
  private readonly heartbeatRate = new HeartbeatRate();

  constructor(private readonly options: HostServiceOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.hostTtlMs = options.hostTtlSeconds * 1000;
    this.cacheTtlMs = options.cacheTtlSeconds * 1000;
    this.cacheEnabled = options.cacheType === 'simple';
  }

  /** Seconds without a heartbeat after which a host is expired. */
  get hostTtlSeconds(): number {
    return this.options.hostTtlSeconds;
  }

  /**
   * Called with a service name whenever what a proxy routes on may have changed for it
   * (a host added, removed, expired, re-weighted or re-tagged). Returns an unsubscribe function.
   */
  onServiceChanged(listener: ServiceChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Records a heartbeat: creates the host or updates it with its tags merged. */
  async heartbeat(service: string, body: RegistrationBody, client: ClientAddress): Promise<Host> {
    let heartbeat: Heartbeat;
    try {
      heartbeat = this.parseHeartbeat(service, body, client);
    } catch (error) {
      this.countRejectedHeartbeat(service);
      throw error;
    }
    let result: HeartbeatResult;
    try {
      result = await this.store.heartbeat(heartbeat);
    } catch (error) {
      this.countRejectedHeartbeat(service);
      throw error;
    }
    const { previous, current } = result;
    this.options.stats.increment(`registration.${metricName(service)}.success`);
    this.heartbeatRate.record(this.clock.now());
    if (previous === undefined || this.isExpired(previous, this.clock.now()) || routingChanged(previous, current)) {
      this.changed(service);
    }
    return current;
  }

  /** Heartbeats this process recorded in the last minute (read-only; for the dashboard). */
  heartbeatsLastMinute(): number {
    return this.heartbeatRate.lastMinute(this.clock.now());
  }

  /** Expiry protection's settings and the services it holds now (read-only; for the dashboard). */
  expiryProtectionStatus(): ExpiryProtectionStatus {
    const settings = this.options.expiryProtection ?? { enabled: false, threshold: 0, minHosts: 0, maxSeconds: 0 };
    return {
      enabled: settings.enabled,
      threshold: settings.threshold,
      minHosts: settings.minHosts,
      maxSeconds: settings.maxSeconds,
      protectedServices: [...this.protectedServices].sort(),
    };
  }

  /** Counts a heartbeat that was not recorded (refused by the request schema, the rules, or storage). */
  countRejectedHeartbeat(service: string): void {
    this.options.stats.increment(`registration.${metricName(service)}.failure`);
  }

  /**
   * The list `listByService` would answer now, when it is known without reading storage: still
   * fresh in the cache, or the store says synchronously that nothing has changed since it was
   * built. Undefined otherwise. Lets the hot read answer without a promise or a storage call.
   */
  knownListByService(service: string): HostSnapshot | undefined {
    const cached = this.serviceSnapshots.get(service) ?? this.emptyServiceSnapshots.get(service);
    if (!cached) return undefined;
    const now = this.clock.now();
    if (
      this.cacheFresh(cached, now) ||
      (cached.changeToken !== undefined &&
        now <= cached.snapshot.nextExpiryAt &&
        this.store.currentChangeToken?.(service) === cached.changeToken)
    ) {
      this.options.stats.increment('cache.hit');
      return cached.snapshot;
    }
    return undefined;
  }

  /** The live hosts of `service`; expired ones found on the way are removed from storage. */
  async listByService(service: string): Promise<HostSnapshot> {
    const known = this.knownListByService(service);
    if (known) return known;
    const now = this.clock.now();
    const cached = this.serviceSnapshots.get(service) ?? this.emptyServiceSnapshots.get(service);
    let listed;
    try {
      listed = await this.store.listByService(service);
    } catch (error) {
      return this.staleOrThrow(this.lastServiceReads, service, now, error, byIp);
    }
    const { hosts, changeToken } = listed;
    if (
      cached &&
      changeToken !== undefined &&
      changeToken === cached.changeToken &&
      now <= cached.snapshot.nextExpiryAt
    ) {
      this.options.stats.increment('cache.hit');
      return cached.snapshot;
    }
    this.options.stats.increment('cache.miss');
    const snapshot = snapshotOf(await this.selectLive(this.servable(hosts, service), now), byIp);
    // Protection ends when its hosts are judged again; a service with none left is never judged.
    if (snapshot.hosts.length === 0 && this.protectedServices.delete(service)) {
      this.options.log.info({ service }, 'expiry protection ended: the service has no hosts left');
    }
    const reused = cached && cached.snapshot.version === snapshot.version && sameCheckIns(cached.snapshot, snapshot);
    const result = reused ? cached.snapshot : snapshot;
    if (cached && cached.snapshot.version !== snapshot.version) this.emit(service);
    keep(this.serviceSnapshots, this.emptyServiceSnapshots, service, { snapshot: result, builtAt: now, changeToken });
    this.remember(this.lastServiceReads, service, result, now);
    return result;
  }

  /** The live hosts of every service registered with repo `repo`. */
  async listByRepo(repo: string): Promise<HostSnapshot> {
    const now = this.clock.now();
    const cached = this.repoSnapshots.get(repo) ?? this.emptyRepoSnapshots.get(repo);
    if (cached && this.cacheFresh(cached, now)) return cached.snapshot;
    let hosts;
    try {
      hosts = await this.store.listByRepo(repo);
    } catch (error) {
      return this.staleOrThrow(this.lastRepoReads, repo, now, error, byServiceThenIp);
    }
    const snapshot = snapshotOf(await this.selectLive(this.servable(hosts, undefined, repo), now), byServiceThenIp);
    const reused = cached && cached.snapshot.version === snapshot.version && sameCheckIns(cached.snapshot, snapshot);
    const result = reused ? cached.snapshot : snapshot;
    keep(this.repoSnapshots, this.emptyRepoSnapshots, repo, { snapshot: result, builtAt: now, changeToken: undefined });
    this.remember(this.lastRepoReads, repo, result, now);
    return result;
  }

  /** Names of services with at least one stored host. */
  async listServiceNames(): Promise<readonly string[]> {
    return this.store.listServices();
  }

  /** Removes a host. A 400 when the address is not valid or no such host exists, as the original answered. */
  async deregister(service: string, ipText: string): Promise<void> {
    const ip = canonicalIp(ipText);
    if (ip === undefined)
      throw new InvalidInputError(`Invalid parameter 'ip_address': '${ipText}' is not an IPv4 or IPv6 address.`);
    const removed = await this.store.delete(service, ip);
    if (!removed) throw new InvalidInputError(`Host ${ip} of service '${service}' not found.`);
    this.options.stats.increment(`service.host.delete.${metricName(service)}`);
    this.changed(service);
  }

  /**
   * Sets `tags.load_balancing_weight` on one live host, or on every live host of the service when
   * `ipText` is undefined. Only the tag is written, so a heartbeat landing meanwhile is kept.
   */
  async setWeight(service: string, ipText: string | undefined, rawWeight: unknown): Promise<void> {
    const weight = parseWeight(rawWeight);
    const now = this.clock.now();
    if (ipText !== undefined) {
      const ip = canonicalIp(ipText);
      const existing = ip === undefined ? undefined : await this.store.get(service, ip);
      if (!existing || this.isExpired(existing, now)) throw new NotFoundError('Host not found');
      const updated = await this.store.updateTags(service, existing.ip_address, { load_balancing_weight: weight });
      if (!updated) throw new NotFoundError('Host not found');
    } else {
      const { hosts } = await this.store.listByService(service);
      const live = hosts.filter((host) => !this.isExpired(host, now));
      // Nothing to weight is no error: the original answered 204 and created nothing (SPEC).
      if (live.length === 0) return;
      let updated = 0;
      try {
        for (const host of live) {
          await this.store.updateTags(service, host.ip_address, { load_balancing_weight: weight });
          updated++;
        }
      } catch (error) {
        // One write per host, so a failure part-way leaves the first ones weighted: what readers
        // see must follow what was written, and the answer says so. Retrying sets the same weight.
        if (updated > 0) this.changed(service);
        if (error instanceof StorageUnavailableError) {
          throw new StorageUnavailableError(
            `${error.message} The weight was set on ${updated} of ${live.length} hosts; retry to set it on all.`,
            { cause: error },
          );
        }
        throw error;
      }
    }
    this.changed(service);
  }

  private parseHeartbeat(service: string, body: RegistrationBody, client: ClientAddress): Heartbeat {
    let ip: string;
    if (body.ip !== undefined && body.ip !== '') {
      ip = requireIp(body.ip);
    } else if (body.auto_ip !== undefined && parseBoolean('auto_ip', body.auto_ip)) {
      ip = autoIp(client, this.options.trustedProxyHops, this.options.autoIpAllowedRanges);
    } else {
      throw new InvalidInputError("Required parameter 'ip' is missing (or set 'auto_ip').");
    }
    return {
      service,
      ip_address: ip,
      port: parsePort(body.port),
      revision: body.revision,
      service_repo_name: body.service_repo_name ?? '',
      last_check_in: formatCheckIn(this.clock.now()),
      tags: parseTags(body.tags),
    };
  }

  /**
   * Storage failed a read: serve the list last read for `key` if it is young enough, without the
   * hosts that have expired since, marked stale; otherwise (or for any other failure) rethrow.
   */
  private staleOrThrow(
    reads: Map<string, LastRead>,
    key: string,
    now: number,
    error: unknown,
    order: (a: Host, b: Host) => number,
  ): HostSnapshot {
    const last = reads.get(key);
    const maxAgeMs = (this.options.staleReadMaxSeconds ?? 0) * 1000;
    if (!(error instanceof StorageUnavailableError) || !last || now - last.readAt > maxAgeMs) throw error;
    const live = last.snapshot.hosts.filter((host) => !this.isExpired(host, now));
    const validUntil = live.reduce(
      (earliest, host) => Math.min(earliest, parseCheckIn(host.last_check_in) + this.hostTtlMs),
      Infinity,
    );
    const base =
      live.length === last.snapshot.hosts.length
        ? last.snapshot
        : buildSnapshot({ hosts: live, protectedHosts: 0, validUntil }, order);
    this.options.log.debug(
      { key, ageMs: now - last.readAt, err: error },
      'storage unavailable: serving the last list read',
    );
    return Object.freeze({ ...base, staleAgeSeconds: Math.max(0, Math.floor((now - last.readAt) / 1000)) });
  }

  private remember(reads: Map<string, LastRead>, key: string, snapshot: HostSnapshot, now: number): void {
    if (!this.options.staleReadMaxSeconds) return;
    reads.delete(key); // re-inserted last: the Map's order is then least recently read first
    // An empty list is not worth serving stale, and strangers reading endless unknown names
    // must not push the real services' last lists out.
    if (snapshot.hosts.length === 0) return;
    reads.set(key, { snapshot, readAt: now });
    if (reads.size > LAST_READS_MAX) {
      const oldest = reads.keys().next();
      if (!oldest.done) reads.delete(oldest.value);
    }
  }

  /**
   * The records a reader may see: each one a valid host (hostProblem), of the service (or repo)
   * that was asked for. Anything else a store hands back is skipped and logged, never served,
   * so one bad record cannot make a whole list unreadable or send a proxy to port 0.
   */
  private servable(hosts: readonly Host[], service: string | undefined, repo?: string): readonly Host[] {
    let kept: Host[] | undefined;
    for (let index = 0; index < hosts.length; index++) {
      const host = hosts[index] as Host;
      const problem = this.recordProblem(host, service, repo);
      if (problem === undefined) {
        kept?.push(host);
        continue;
      }
      kept ??= hosts.slice(0, index);
      this.reportSkipped(host, problem, service ?? repo ?? '');
    }
    return kept ?? hosts;
  }

  private recordProblem(host: Host, service: string | undefined, repo: string | undefined): string | undefined {
    if (this.checkedRecords.has(host)) return undefined;
    let problem: string | undefined;
    try {
      problem = hostProblem(host);
    } catch (error) {
      problem = `could not be read (${error instanceof Error ? error.message : String(error)})`;
    }
    if (problem === undefined && service !== undefined && host.service !== service)
      problem = `belongs to service '${host.service}'`;
    if (problem === undefined && repo !== undefined && host.service_repo_name !== repo)
      problem = `belongs to repo '${host.service_repo_name}'`;
    // Stores that keep records in memory hand out the same objects again: check each once.
    if (problem === undefined) this.checkedRecords.add(host);
    return problem;
  }

  /** Records found invalid are logged once each (as far as this bounded memo remembers), not on every read. */
  private reportSkipped(record: unknown, problem: string, listed: string): void {
    const fields = record !== null && typeof record === 'object' ? (record as Record<string, unknown>) : {};
    const service = typeof fields.service === 'string' ? fields.service : undefined;
    const ip = typeof fields.ip_address === 'string' ? fields.ip_address : undefined;
    const key = `${listed}\u0000${service}\u0000${ip}\u0000${problem}`;
    if (this.reportedRecords.has(key)) return;
    if (this.reportedRecords.size >= REPORTED_RECORDS_MAX) this.reportedRecords.clear();
    this.reportedRecords.add(key);
    this.options.log.warn(
      { listed, service, ip, problem },
      'storage returned a record that is not a valid host: skipped, not served',
    );
  }

  private isExpired(host: Host, now: number): boolean {
    return now > parseCheckIn(host.last_check_in) + this.hostTtlMs;
  }

  private cacheFresh(cached: CachedSnapshot, now: number): boolean {
    return this.cacheEnabled && now < cached.builtAt + this.cacheTtlMs && now <= cached.snapshot.nextExpiryAt;
  }

  /**
   * The hosts to serve: expired ones are filtered out and removed from storage, service by
   * service, unless expiry protection holds for that service. Each removal is conditional on the
   * `last_check_in` judged expired, so a heartbeat that lands meanwhile survives. A failed
   * removal is logged, not thrown: the host stays filtered out and the next read retries.
   */
  private async selectLive(hosts: readonly Host[], now: number): Promise<Selection> {
    const byService = new Map<string, { live: Host[]; expired: Host[] }>();
    for (const host of hosts) {
      let group = byService.get(host.service);
      if (!group) byService.set(host.service, (group = { live: [], expired: [] }));
      (this.isExpired(host, now) ? group.expired : group.live).push(host);
    }
    const selected: Host[] = [];
    const toSweep: Host[] = [];
    let protectedHosts = 0;
    let validUntil = Infinity;
    for (const [service, { live, expired }] of byService) {
      selected.push(...live);
      for (const host of live) validUntil = Math.min(validUntil, parseCheckIn(host.last_check_in) + this.hostTtlMs);
      const kept = this.protectedFromExpiry(service, live.length, expired, now);
      selected.push(...kept);
      protectedHosts += kept.length;
      if (kept.length > 0) {
        const limitMs = this.hostTtlMs + (this.options.expiryProtection?.maxSeconds ?? 0) * 1000;
        validUntil = Math.min(validUntil, now + PROTECTION_RECHECK_MS);
        for (const host of kept) validUntil = Math.min(validUntil, parseCheckIn(host.last_check_in) + limitMs);
      }
      for (const host of expired) if (!kept.includes(host)) toSweep.push(host);
    }
    if (toSweep.length > 0) await Promise.all(toSweep.map((host) => this.sweep(host)));
    return { hosts: selected, protectedHosts, validUntil };
  }

  /** Services under expiry protection now, so the start and end are logged once each. */
  private readonly protectedServices = new Set<string>();

  private protectedFromExpiry(service: string, liveCount: number, expired: Host[], now: number): Host[] {
    const protection = this.options.expiryProtection;
    const total = liveCount + expired.length;
    const active =
      protection !== undefined &&
      protection.enabled &&
      total >= protection.minHosts &&
      expired.length / total > protection.threshold;
    if (!active) {
      if (this.protectedServices.delete(service)) {
        this.options.log.info(
          { service, expired: expired.length, hosts: total },
          'expiry protection ended: heartbeats are back',
        );
      }
      return [];
    }
    if (!this.protectedServices.has(service)) {
      this.protectedServices.add(service);
      this.options.log.warn(
        { service, expired: expired.length, hosts: total, threshold: protection.threshold },
        'expiry protection active: too many hosts of this service stopped heartbeating at once; keeping them',
      );
    }
    this.options.stats.increment(`service.host.protected.${metricName(service)}`);
    const limitMs = this.hostTtlMs + protection.maxSeconds * 1000;
    return expired.filter((host) => now - parseCheckIn(host.last_check_in) <= limitMs);
  }

  private async sweep(host: Host): Promise<void> {
    try {
      const removed = await this.store.deleteIfCheckInIs(host.service, host.ip_address, host.last_check_in);
      if (!removed) return;
      this.options.stats.increment(`service.host.sweep.${metricName(host.service)}`);
      this.options.log.debug(
        { service: host.service, ip: host.ip_address, last_check_in: host.last_check_in },
        'expired host removed',
      );
      this.changed(host.service);
    } catch (error) {
      this.options.log.warn(
        { err: error, service: host.service, ip: host.ip_address },
        'could not remove expired host',
      );
    }
  }

  /** A local write changed `service`: drop what was cached for it and tell the listeners. */
  private changed(service: string): void {
    this.serviceSnapshots.delete(service);
    this.emptyServiceSnapshots.delete(service);
    this.repoSnapshots.clear();
    this.emptyRepoSnapshots.clear();
    this.emit(service);
  }

  private emit(service: string): void {
    for (const listener of this.listeners) {
      try {
        listener(service);
      } catch (error) {
        this.options.log.error({ err: error, service }, 'service change listener failed');
      }
    }
  }
}

/**
 * The list of every service and repo without live hosts: one shared object, so a name nobody
 * registered costs no snapshot of its own. What differs by name (the body's `service` field,
 * an xDS resource's name) is derived by name, never memoised on this object.
 */
const EMPTY_SNAPSHOT: HostSnapshot = Object.freeze({
  hosts: Object.freeze([]),
  version: createHash('sha1').digest('base64url').slice(0, 22),
  nextExpiryAt: Infinity,
  protectedHosts: 0,
});

function snapshotOf(selection: Selection, order: (a: Host, b: Host) => number): HostSnapshot {
  return selection.hosts.length === 0 ? EMPTY_SNAPSHOT : buildSnapshot(selection, order);
}

/** Files a built snapshot with the names that have hosts or with the (fewer) empty ones, never both. */
function keep(
  withHosts: RecentMap<string, CachedSnapshot>,
  empty: RecentMap<string, CachedSnapshot>,
  key: string,
  cached: CachedSnapshot,
): void {
  if (cached.snapshot.hosts.length > 0) {
    empty.delete(key);
    withHosts.set(key, cached);
  } else {
    withHosts.delete(key);
    empty.set(key, cached);
  }
}

function byIp(a: Host, b: Host): number {
  return a.ip_address < b.ip_address ? -1 : a.ip_address > b.ip_address ? 1 : 0;
}

function byServiceThenIp(a: Host, b: Host): number {
  if (a.service !== b.service) return a.service < b.service ? -1 : 1;
  return byIp(a, b);
}

function buildSnapshot(selection: Selection, order: (a: Host, b: Host) => number): HostSnapshot {
  const live = selection.hosts.sort(order);
  const hash = createHash('sha1');
  for (const host of live) {
    hash.update(
      JSON.stringify([
        host.service,
        host.ip_address,
        host.port,
        host.revision,
        host.service_repo_name,
        sortedKeys(host.tags),
      ]),
    );
    hash.update('\n');
  }
  return Object.freeze({
    hosts: Object.freeze(live),
    version: hash.digest('base64url').slice(0, 22),
    nextExpiryAt: selection.validUntil,
    protectedHosts: selection.protectedHosts,
  });
}

function sameCheckIns(a: HostSnapshot, b: HostSnapshot): boolean {
  if (a.hosts.length !== b.hosts.length) return false;
  return a.hosts.every((host, index) => host.last_check_in === b.hosts[index]?.last_check_in);
}

/** statsd metric names cannot hold `:`, `|`, `@` or whitespace; the service name is otherwise kept. */
function metricName(service: string): string {
  return service.replace(/[:|@#\s]/g, '_');
}
