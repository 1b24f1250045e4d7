import type { Clock } from '../clock.js';
import type { Log } from '../logger.js';
import type { RegistryStats } from '../stats.js';
import { isExpired, type ExpiryProtection, type ExpiryRules } from './expiry.js';
import { ExpiryJudge, type ExpiryOwner } from './expiry-judge.js';
import { ReadRetries, type Freshness, type KeptView } from './freshness.js';
import { HostEvents } from './host-events.js';
import { byIp, byServiceThenIp, HostLists, snapshotOf, type HostSnapshot } from './host-lists.js';
import { HostReadouts } from './host-readouts.js';
import { pingStore, type HeartbeatResult, type HostStore } from './host-store.js';
import { HeartbeatWrites, heartbeatWriteKey } from './heartbeat-writes.js';
import { instanceKeyOf, type InstanceKeyMode } from './instance-keys.js';
import { audit, OperatorWrites } from './operator-writes.js';
import { formatCheckIn, routingChanged, type Host, type HeartbeatInput, type Requester } from './model.js';
import { ServableRecords } from './servable-records.js';

/** CACHE_TYPE: whether host lists are kept between reads (`simple`) or read from storage each time (`null`). */
export type CacheType = 'simple' | 'null';

export interface HostServiceOptions {
  readonly store: HostStore;
  readonly clock: Clock;
  readonly hostTtlSeconds: number;
  /**
   * HEARTBEAT_WRITE_INTERVAL in seconds: a heartbeat that changes nothing is written at most
   * once per interval per instance (HeartbeatWrites); 0 or absent writes every heartbeat.
   */
  readonly heartbeatWriteIntervalSeconds?: number;
  /** What makes an instance distinct; `ip` (the original's model) when absent. */
  readonly instanceKey?: InstanceKeyMode;
  readonly cacheType: CacheType;
  readonly cacheTtlSeconds: number;
  readonly stats: RegistryStats;
  readonly log: Log;
  readonly expiryProtection?: ExpiryProtection;
  /**
   * While storage is unavailable, a list read from it at most this many seconds ago is served
   * (marked stale) instead of failing; 0 or absent fails the read with 503.
   */
  readonly staleReadMaxSeconds?: number;
  /** Where changes are published and its lists learn of others' (compose.ts passes the shared one); its own when absent. */
  readonly events?: HostEvents;
  /**
   * Set when replicas share the store and learn of each other's changes from the change feed
   * instead of re-reading what they serve: it keeps the expiry deadline of each host whose
   * check-in this process wrote and calls `expiry.judgeDue` when one passes, so an expiry
   * reaches the feed (src/replication/owned-expiries.ts).
   */
  readonly expiryOwner?: ExpiryOwner;
  /** How kept views stay right: where failed reads wait to be retried (one per process; polling with a private one when absent). */
  readonly freshness?: Freshness;
}

/**
 * The registry's commands (heartbeat, deregister, weight, status) and reads (live hosts by
 * service or repo). Input arrives parsed (HeartbeatInput, canonical IPs); which hosts are live
 * and which are removed is ExpiryJudge's, the lists built are kept by HostLists, the instances
 * an address names are LiveInstances', what changed is published on HostEvents, and records are
 * kept by the store.
 */
export class HostService implements KeptView {
  /** Where every change is published: subscribe here to hear of them. */
  readonly events: HostEvents;
  /** Expiry judging and protection: `judgeDue` is what the expiry owner calls. */
  readonly expiry: ExpiryJudge;
  /** Heartbeats per minute, failed heartbeats and protection status, for the dashboard. */
  readonly readouts: HostReadouts;
  private readonly store: HostStore;
  private readonly clock: Clock;
  private readonly rules: ExpiryRules;
  private readonly lists: HostLists;
  private readonly servable: ServableRecords;
  private readonly writes: OperatorWrites;
  private readonly retries: ReadRetries;
  private readonly instanceKeyMode: InstanceKeyMode;
  private readonly heartbeatWrites: HeartbeatWrites | undefined;

  constructor(private readonly options: HostServiceOptions) {
    this.store = options.store;
    this.instanceKeyMode = options.instanceKey ?? 'ip';
    this.clock = options.clock;
    const writeIntervalMs = (options.heartbeatWriteIntervalSeconds ?? 0) * 1000;
    this.heartbeatWrites = writeIntervalMs > 0 ? new HeartbeatWrites(writeIntervalMs) : undefined;
    // A stored check-in may trail the host's last heartbeat by up to the write interval, so a
    // host is expired that much later: one that heartbeats on time, through any replica, never is.
    this.rules = { hostTtlMs: options.hostTtlSeconds * 1000 + writeIntervalMs, protection: options.expiryProtection };
    this.lists = new HostLists({
      cacheEnabled: options.cacheType === 'simple',
      cacheTtlMs: options.cacheTtlSeconds * 1000,
      staleReadMaxMs: (options.staleReadMaxSeconds ?? 0) * 1000,
    });
    this.servable = new ServableRecords(options.log);
    this.retries = options.freshness?.retries ?? new ReadRetries(options.log);
    this.events = options.events ?? new HostEvents(options.log);
    // Subscribed first (compose.ts builds this service right after the publisher), so a list
    // is dropped before anyone told of its change reads it. A change seen on a read is already kept.
    this.events.onServiceChanged((service, origin) => {
      if (origin !== 'read') this.lists.forget(service);
    });
    this.events.onResync(() => this.lists.forgetAll());
    this.expiry = new ExpiryJudge({
      store: this.store,
      instanceKey: this.instanceKeyMode,
      clock: this.clock,
      stats: this.options.stats,
      log: this.options.log,
      rules: this.rules,
      events: this.events,
      retries: this.retries,
      reread: (service) => {
        this.lists.forget(service);
        return this.listByService(service);
      },
      heartbeatWrites: this.heartbeatWrites,
      expiryOwner: options.expiryOwner,
    });
    this.readouts = new HostReadouts({
      clock: this.clock,
      stats: this.options.stats,
      expiryProtection: options.expiryProtection,
      protectedServices: () => this.expiry.protectedServices(),
    });
    this.writes = new OperatorWrites({
      store: this.store,
      instanceKey: this.instanceKeyMode,
      hostLifetimeMs: this.rules.hostTtlMs,
      expiry: this.expiry,
      events: this.events,
      clock: this.clock,
      stats: this.options.stats,
      log: this.options.log,
    });
  }

  /** Seconds without a heartbeat after which a host is expired. */
  get hostTtlSeconds(): number {
    return this.options.hostTtlSeconds;
  }

  /** Milliseconds a host lives without a written heartbeat: HOST_TTL plus HEARTBEAT_WRITE_INTERVAL. */
  get hostLifetimeMs(): number {
    return this.rules.hostTtlMs;
  }

  /** When the cached list of `service` was read (KeptView: the change feed's anti-entropy asks). */
  keptReadAt(service: string): number | undefined {
    return this.lists.cachedReadAt(service);
  }

  keptServices(): Iterable<string> {
    return this.lists.cachedServices();
  }

  /** Stops the timers this service keeps (the expiry deadlines of hosts it wrote). */
  close(): void {
    this.expiry.close();
  }

  /**
   * Records a heartbeat, stamped now: creates the host or updates it with its tags merged. A new
   * host is a write of the audit trail, logged at info with `requester`; a refresh is not.
   */
  async heartbeat(input: HeartbeatInput, requester?: Requester): Promise<Host> {
    const writes = this.heartbeatWrites;
    const writeKey = writes && heartbeatWriteKey(input.service, instanceKeyOf(this.instanceKeyMode, input));
    const startedAt = this.clock.now();
    const unwritten = writeKey === undefined ? undefined : writes?.unwritten(writeKey, input, startedAt);
    if (unwritten !== undefined) {
      this.readouts.heartbeatTaken(input.service, startedAt);
      return unwritten;
    }
    let result: HeartbeatResult;
    try {
      result = await this.store.heartbeat({ ...input, last_check_in: formatCheckIn(startedAt) });
    } catch (error) {
      this.readouts.heartbeatFailed(input.service);
      throw error;
    }
    const { previous, current } = result;
    if (writeKey !== undefined) writes?.written(writeKey, input, current, startedAt);
    this.options.expiryOwner?.track(
      writeKey ?? heartbeatWriteKey(input.service, instanceKeyOf(this.instanceKeyMode, input)),
      input.service,
      startedAt + this.rules.hostTtlMs,
    );
    if (previous === undefined)
      audit(
        this.options.log,
        requester,
        { service: input.service, ip: current.ip_address, port: current.port },
        'host registered',
      );
    this.readouts.heartbeatTaken(input.service, this.clock.now());
    if (
      previous === undefined ||
      isExpired(previous, this.clock.now(), this.rules.hostTtlMs) ||
      routingChanged(previous, current)
    ) {
      this.events.publishLocalChange(input.service);
    }
    return current;
  }

  /**
   * The list `listByService` would answer now, when it is known without reading storage: still
   * fresh in the cache, or the store says synchronously that nothing has changed since it was
   * built. Undefined otherwise. Lets the hot read answer without a promise or a storage call.
   */
  knownListByService(service: string): HostSnapshot | undefined {
    const known = this.lists.knownService(service, this.clock.now(), this.store.currentChangeToken?.(service));
    if (known) this.options.stats.cacheLookup('hit');
    return known;
  }

  /** The live hosts of `service`; expired ones found on the way are removed from storage. */
  async listByService(service: string): Promise<HostSnapshot> {
    const known = this.knownListByService(service);
    if (known) return known;
    const now = this.clock.now();
    let listed;
    try {
      listed = await this.store.listByService(service);
    } catch (error) {
      return this.staleOrThrow(() => this.lists.staleService(service, now, error), service, error);
    }
    // Storage answers: views waiting to retry a failed read need not wait out their back-off.
    this.retries.answered();
    const unchanged = this.lists.unchangedService(service, listed.changeToken, now);
    if (unchanged) {
      this.options.stats.cacheLookup('hit');
      return unchanged;
    }
    this.options.stats.cacheLookup('miss');
    const selection = await this.expiry.judgeService(service, this.servable.of(listed.hosts, { service }), now);
    const kept = this.lists.keepService(service, snapshotOf(selection, byIp), now, listed.changeToken);
    if (kept.routingChanged) this.events.publishChangeSeenOnRead(service);
    return kept.snapshot;
  }

  /** The live hosts of every service registered with repo `repo`. */
  async listByRepo(repo: string): Promise<HostSnapshot> {
    const now = this.clock.now();
    const fresh = this.lists.freshRepo(repo, now);
    if (fresh) return fresh;
    let hosts;
    try {
      hosts = await this.store.listByRepo(repo);
    } catch (error) {
      return this.staleOrThrow(() => this.lists.staleRepo(repo, now, error), repo, error);
    }
    const selection = await this.expiry.judge(this.servable.of(hosts, { repo }), now);
    return this.lists.keepRepo(repo, snapshotOf(selection, byServiceThenIp), now);
  }

  /** Resolves when storage answers, throws when it cannot be reached: what readiness asks. */
  pingStorage(): Promise<void> {
    return pingStore(this.store);
  }

  /** Names of services with at least one stored host. */
  async listServiceNames(): Promise<readonly string[]> {
    return this.store.listServices();
  }

  /** Removes the instances at an address (`ip` canonical, parsed at the edge): see OperatorWrites. */
  readonly deregister: OperatorWrites['deregister'] = (...args) => this.writes.deregister(...args);
  /** Sets the weight at an address, or of every live host of a service: see OperatorWrites. */
  readonly setWeight: OperatorWrites['setWeight'] = (...args) => this.writes.setWeight(...args);
  /** Sets or clears (`status` undefined) the status override at an address: see OperatorWrites. */
  readonly setStatusOverride: OperatorWrites['setStatusOverride'] = (...args) => this.writes.setStatusOverride(...args);

  /** A stale list while storage is unavailable (when allowed and young enough), else the error. */
  private staleOrThrow(stale: () => HostSnapshot, key: string, error: unknown): HostSnapshot {
    const snapshot = stale();
    this.options.log.debug(
      { key, ageSeconds: snapshot.staleAgeSeconds, err: error },
      'storage unavailable: serving the last list read',
    );
    return snapshot;
  }
}
