import type { Clock } from '../clock.js';
import { InvalidInputError, NotFoundError, StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { RegistryStats } from '../stats.js';
import { isExpired, selectLive, type ExpiryProtection, type ExpiryRules, type Selection } from './expiry.js';
import { byIp, byServiceThenIp, HostLists, snapshotOf, type HostSnapshot } from './host-lists.js';
import { pingStore, type HeartbeatResult, type HostStore } from './host-store.js';
import { HeartbeatRate } from './heartbeat-rate.js';
import { HeartbeatWrites, heartbeatWriteKey } from './heartbeat-writes.js';
import { instanceKey, instanceKeyOf, type InstanceKeyMode } from './instance-keys.js';
import {
  effectiveStatus,
  formatCheckIn,
  routingChanged,
  type Host,
  type HeartbeatInput,
  type InstanceStatus,
  type Requester,
} from './model.js';
import { ReadRetries, type Freshness, type KeptView } from './freshness.js';
import { ServableRecords } from './servable-records.js';
import { canonicalIp } from './ip-address.js';

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
  /**
   * Set when replicas share the store and learn of each other's changes from the change feed
   * instead of re-reading what they serve: it keeps the expiry deadline of each host whose
   * check-in this process wrote and calls `judgeDue` when one passes, so an expiry reaches the
   * feed (src/replication/owned-expiries.ts).
   */
  readonly expiryOwner?: ExpiryOwner;
  /** How kept views stay right: where failed reads wait to be retried (one per process; polling with a private one when absent). */
  readonly freshness?: Freshness;
}

/** Who keeps the expiry deadlines of the hosts this process wrote (see `HostServiceOptions.expiryOwner`). */
export interface ExpiryOwner {
  /** The host under `key` (of `service`) is expired after `expiresAt` unless tracked again. */
  track(key: string, service: string, expiresAt: number): void;
  /** The host was removed. */
  forget(key: string): void;
  close(): void;
}

export type ServiceChangeListener = (service: string) => void;

/** While expiry protection holds a service, its hosts are judged again at least this far apart. */
const PROTECTION_RECHECK_MIN_MS = 5_000;

/** What expiry protection is set to, and which services it holds now (for the dashboard). */
export interface ExpiryProtectionStatus extends ExpiryProtection {
  /** Services whose last read kept hosts past HOST_TTL, sorted. */
  readonly protectedServices: readonly string[];
}

/**
 * The registry's commands (heartbeat, deregister, weight) and reads (live hosts by service or
 * repo), and the change events proxies are pushed from. Input arrives parsed (HeartbeatInput);
 * which hosts are live is expiry.ts's rule, the lists built are kept by HostLists, records are
 * kept by the store.
 */
export class HostService implements KeptView {
  private readonly store: HostStore;
  private readonly clock: Clock;
  private readonly stats: RegistryStats;
  private readonly log: Log;
  private readonly expiry: ExpiryRules;
  private readonly lists: HostLists;
  private readonly servable: ServableRecords;
  private readonly listeners = new Set<ServiceChangeListener>();
  private readonly localListeners = new Set<ServiceChangeListener>();
  private readonly resyncListeners = new Set<() => void>();
  private readonly ownedExpiries: ExpiryOwner | undefined;
  private readonly retries: ReadRetries;
  /** Services with a due host being read now, so many hosts due at once cost one read. */
  private readonly dueReads = new Set<string>();
  private closed = false;
  /** Services under expiry protection now, so its start and end are logged once each. */
  private readonly protectedServices = new Set<string>();
  private readonly heartbeatRate = new HeartbeatRate();
  private readonly instanceKeyMode: InstanceKeyMode;
  private readonly heartbeatWrites: HeartbeatWrites | undefined;

  constructor(private readonly options: HostServiceOptions) {
    this.store = options.store;
    this.instanceKeyMode = options.instanceKey ?? 'ip';
    this.clock = options.clock;
    this.stats = options.stats;
    this.log = options.log;
    const writeIntervalMs = (options.heartbeatWriteIntervalSeconds ?? 0) * 1000;
    this.heartbeatWrites = writeIntervalMs > 0 ? new HeartbeatWrites(writeIntervalMs) : undefined;
    // A stored check-in may trail the host's last heartbeat by up to the write interval, so a
    // host is expired that much later: one that heartbeats on time, through any replica, never is.
    this.expiry = { hostTtlMs: options.hostTtlSeconds * 1000 + writeIntervalMs, protection: options.expiryProtection };
    this.lists = new HostLists({
      cacheEnabled: options.cacheType === 'simple',
      cacheTtlMs: options.cacheTtlSeconds * 1000,
      staleReadMaxMs: (options.staleReadMaxSeconds ?? 0) * 1000,
    });
    this.servable = new ServableRecords(options.log);
    this.ownedExpiries = options.expiryOwner;
    this.retries = options.freshness?.retries ?? new ReadRetries(options.log);
  }

  /** Seconds without a heartbeat after which a host is expired. */
  get hostTtlSeconds(): number {
    return this.options.hostTtlSeconds;
  }

  /** Milliseconds a host lives without a written heartbeat: HOST_TTL plus HEARTBEAT_WRITE_INTERVAL. */
  get hostLifetimeMs(): number {
    return this.expiry.hostTtlMs;
  }

  /**
   * Called with a service name whenever what a proxy routes on may have changed for it
   * (a host added, removed, expired, re-weighted or re-tagged). Returns an unsubscribe function.
   */
  onServiceChanged(listener: ServiceChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Like `onServiceChanged`, but only for changes this process wrote (registrations, deletes,
   * weights, status overrides, expired hosts it removed): what the change feed tells the other
   * replicas. Not for changes it learned of from them or noticed on a read.
   */
  onLocalChange(listener: ServiceChangeListener): () => void {
    this.localListeners.add(listener);
    return () => this.localListeners.delete(listener);
  }

  /** Called when anything may have changed (`resync`): every list built is to be read again. */
  onResync(listener: () => void): () => void {
    this.resyncListeners.add(listener);
    return () => this.resyncListeners.delete(listener);
  }

  /**
   * Another replica changed these services (the change feed says so): what was built for them is
   * dropped and the listeners told, so the next read, and every watcher, reads them again.
   */
  applyRemoteChanges(services: Iterable<string>): void {
    for (const service of services) {
      this.lists.forget(service);
      this.emit(service);
    }
  }

  /**
   * Anything may have changed without a word in the feed (a replica left, perhaps between a write
   * and its record): every list is read again on its next read, and the listeners re-read theirs.
   */
  resync(): void {
    this.lists.forgetAll();
    for (const listener of this.resyncListeners) {
      try {
        listener();
      } catch (error) {
        this.log.error({ err: error }, 're-sync listener failed');
      }
    }
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
    this.closed = true;
    this.ownedExpiries?.close();
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
      this.stats.heartbeat(input.service, 'success');
      this.heartbeatRate.record(startedAt);
      return unwritten;
    }
    let result: HeartbeatResult;
    try {
      result = await this.store.heartbeat({ ...input, last_check_in: formatCheckIn(startedAt) });
    } catch (error) {
      this.stats.heartbeat(input.service, 'failure');
      throw error;
    }
    const { previous, current } = result;
    if (writeKey !== undefined) writes?.written(writeKey, input, current, startedAt);
    this.ownedExpiries?.track(
      heartbeatWriteKey(input.service, instanceKeyOf(this.instanceKeyMode, input)),
      input.service,
      startedAt + this.expiry.hostTtlMs,
    );
    this.stats.heartbeat(input.service, 'success');
    if (previous === undefined)
      this.audit(requester, { service: input.service, ip: current.ip_address, port: current.port }, 'host registered');
    this.heartbeatRate.record(this.clock.now());
    if (
      previous === undefined ||
      isExpired(previous, this.clock.now(), this.expiry.hostTtlMs) ||
      routingChanged(previous, current)
    ) {
      this.changed(input.service);
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

  /** Counts a heartbeat a front end refused before it reached the domain (its request check or parsing). */
  countRejectedHeartbeat(service: string): void {
    this.stats.heartbeat(service, 'failure');
  }

  /**
   * The list `listByService` would answer now, when it is known without reading storage: still
   * fresh in the cache, or the store says synchronously that nothing has changed since it was
   * built. Undefined otherwise. Lets the hot read answer without a promise or a storage call.
   */
  knownListByService(service: string): HostSnapshot | undefined {
    const known = this.lists.knownService(service, this.clock.now(), this.store.currentChangeToken?.(service));
    if (known) this.stats.cacheLookup('hit');
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
      this.stats.cacheLookup('hit');
      return unchanged;
    }
    this.stats.cacheLookup('miss');
    const selection = await this.judge(this.servable.of(listed.hosts, { service }), now);
    // Protection ends when its hosts are judged again; a service with none left is never judged.
    if (selection.hosts.length === 0 && this.protectedServices.delete(service))
      this.log.info({ service }, 'expiry protection ended: the service has no hosts left');
    const kept = this.lists.keepService(service, snapshotOf(selection, byIp), now, listed.changeToken);
    if (kept.routingChanged) this.emit(service);
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
    const selection = await this.judge(this.servable.of(hosts, { repo }), now);
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

  /**
   * Removes the instances at an address: with `port`, the one instance `ip:port` (in `ip` mode
   * only when the host at `ip` listens on `port`); without, every instance at `ip` (in `ip`
   * mode there is one). A 400 when the address is not valid or nothing is there, as the
   * original answered.
   */
  async deregister(service: string, ipText: string, requester?: Requester, port?: number): Promise<void> {
    const ip = canonicalIp(ipText);
    if (ip === undefined)
      throw new InvalidInputError(`Invalid parameter 'ip_address': '${ipText}' is not an IPv4 or IPv6 address.`);
    const address = port === undefined ? ip : `${ip} port ${port}`;
    let removed = 0;
    if ((this.instanceKeyMode === 'ip') === (port === undefined)) {
      // The address is one key (an IP in ip mode, ip:port in ip_port mode): one write, no read first.
      const key = instanceKey(this.instanceKeyMode, ip, port ?? 0);
      this.forgetInstance(service, key);
      if (await this.store.delete(service, key)) removed++;
    } else {
      const stored = await this.instancesAt(service, ip, port);
      if (stored.mismatch) throw new InvalidInputError(stored.mismatch);
      for (const host of stored.hosts) {
        const key = instanceKeyOf(this.instanceKeyMode, host);
        this.forgetInstance(service, key);
        if (await this.store.delete(service, key)) removed++;
      }
    }
    if (removed === 0) throw new InvalidInputError(`Host ${address} of service '${service}' not found.`);
    for (let count = 0; count < removed; count++) this.stats.hostRemoved(service, 'deleted');
    this.audit(
      requester,
      { service, ip, ...(port === undefined ? {} : { port }), instances: removed },
      'host deregistered',
    );
    this.changed(service);
  }

  /**
   * Sets `tags.load_balancing_weight` on the live instances at `ipText` (one with `port`, in
   * `ip` mode only when the host listens on it), or on every live host of the service when
   * `ipText` is undefined. Only the tag is written, so a heartbeat landing meanwhile is kept.
   */
  async setWeight(
    service: string,
    ipText: string | undefined,
    weight: number,
    requester?: Requester,
    port?: number,
  ): Promise<void> {
    const now = this.clock.now();
    if (ipText !== undefined) {
      const ip = canonicalIp(ipText);
      const stored = ip === undefined ? { hosts: [] } : await this.instancesAt(service, ip, port);
      if (stored.mismatch) throw new InvalidInputError(stored.mismatch);
      const live = stored.hosts.filter((host) => !isExpired(host, now, this.expiry.hostTtlMs));
      if (live.length === 0) throw new NotFoundError('Host not found');
      let updated = 0;
      for (const host of live) {
        const key = instanceKeyOf(this.instanceKeyMode, host);
        if (await this.store.updateTags(service, key, { load_balancing_weight: weight })) updated++;
      }
      if (updated === 0) throw new NotFoundError('Host not found');
      this.audit(requester, { service, ip, ...(port === undefined ? {} : { port }), weight }, 'weight set');
      this.changed(service);
      return;
    }
    const { hosts } = await this.store.listByService(service);
    const live = hosts.filter((host) => !isExpired(host, now, this.expiry.hostTtlMs));
    // Nothing to weight is no error: the original answered 204 and created nothing.
    if (live.length === 0) return;
    let updated = 0;
    try {
      for (const host of live) {
        await this.store.updateTags(service, instanceKeyOf(this.instanceKeyMode, host), {
          load_balancing_weight: weight,
        });
        updated++;
      }
    } catch (error) {
      // One write per host, so a failure part-way leaves the first ones weighted: what readers
      // see must follow what was written, and the answer says so. Retrying sets the same weight.
      if (updated > 0) {
        this.audit(
          requester,
          { service, weight, hosts: updated, of: live.length },
          'weight set on part of the service',
        );
        this.changed(service);
      }
      if (error instanceof StorageUnavailableError) {
        throw new StorageUnavailableError(
          `${error.message} The weight was set on ${updated} of ${live.length} hosts; retry to set it on all.`,
          { cause: error },
        );
      }
      throw error;
    }
    this.audit(requester, { service, weight, hosts: updated }, 'weight set on every live host');
    this.changed(service);
  }

  /**
   * Sets the operator's status override on the live instances at `ipText` (one with `port`,
   * in `ip` mode only when the host listens on it; `status` undefined clears it). Only the
   * override is written, so heartbeats keep it, and it wins over the host's own word until
   * cleared. An unknown, expired or unparsable address is a 404, as for a weight; a port the
   * host at that IP does not listen on (`ip` mode) is a 400, as for a weight.
   */
  async setStatusOverride(
    service: string,
    ipText: string,
    port: number | undefined,
    status: InstanceStatus | undefined,
    requester?: Requester,
  ): Promise<void> {
    const now = this.clock.now();
    const ip = canonicalIp(ipText);
    const stored = ip === undefined ? { hosts: [] } : await this.instancesAt(service, ip, port);
    if (stored.mismatch) throw new InvalidInputError(stored.mismatch);
    const live = stored.hosts.filter((host) => !isExpired(host, now, this.expiry.hostTtlMs));
    if (live.length === 0) throw new NotFoundError('Host not found');
    let updated = 0;
    let statusChanged = false;
    for (const host of live) {
      const written = await this.store.setStatusOverride(service, instanceKeyOf(this.instanceKeyMode, host), status);
      if (!written) continue;
      updated++;
      if (effectiveStatus(host) !== effectiveStatus(written)) statusChanged = true;
    }
    if (updated === 0) throw new NotFoundError('Host not found');
    this.audit(
      requester,
      { service, ip, ...(port === undefined ? {} : { port }), status: status ?? null, instances: updated },
      status === undefined ? 'status override cleared' : 'status override set',
    );
    if (statusChanged) this.changed(service);
  }

  /**
   * The stored instances an address names. `ip` mode: the one host at `ip`, and with `port` a
   * mismatch when it listens on another port. `ip_port` mode: with `port` the one instance,
   * without every instance at `ip` (read from the service's records).
   */
  private async instancesAt(
    service: string,
    ip: string,
    port: number | undefined,
  ): Promise<{ readonly hosts: readonly Host[]; readonly mismatch?: string }> {
    if (this.instanceKeyMode === 'ip' || port !== undefined) {
      const host = await this.store.get(service, instanceKey(this.instanceKeyMode, ip, port ?? 0));
      if (host === undefined) return { hosts: [] };
      if (port !== undefined && host.port !== port) {
        return {
          hosts: [],
          mismatch: `Host ${ip} of service '${service}' listens on port ${host.port}, not ${port} (INSTANCE_KEY=ip keeps one instance per IP).`,
        };
      }
      return { hosts: [host] };
    }
    const { hosts } = await this.store.listByService(service);
    return { hosts: hosts.filter((host) => host.ip_address === ip) };
  }

  /** One info line per write that changes what is registered: what, and who asked. */
  private audit(requester: Requester | undefined, what: Record<string, unknown>, message: string): void {
    this.log.info(
      requester === undefined
        ? what
        : { ...what, reqId: requester.requestId, client: requester.address, role: requester.role() },
      message,
    );
  }

  /** A stale list while storage is unavailable (when allowed and young enough), else the error. */
  private staleOrThrow(stale: () => HostSnapshot, key: string, error: unknown): HostSnapshot {
    const snapshot = stale();
    this.log.debug(
      { key, ageSeconds: snapshot.staleAgeSeconds, err: error },
      'storage unavailable: serving the last list read',
    );
    return snapshot;
  }

  /**
   * Applies the expiry rules to stored hosts: logs where protection starts and ends, counts the
   * reads it holds for, and removes the expired hosts no protection keeps. Each removal is
   * conditional on the `last_check_in` judged expired, so a heartbeat that lands meanwhile
   * survives; a failed removal is logged, not thrown (the host stays out, the next read retries).
   */
  private async judge(hosts: readonly Host[], now: number): Promise<Selection> {
    const selection = selectLive(hosts, now, this.expiry);
    for (const judged of selection.services) {
      const { service, hosts: total, expired } = judged;
      if (judged.protected) {
        if (!this.protectedServices.has(service)) {
          this.protectedServices.add(service);
          this.log.warn(
            { service, expired, hosts: total, threshold: this.expiry.protection?.threshold },
            'expiry protection active: too many hosts of this service stopped heartbeating at once; keeping them',
          );
        }
        this.stats.expiryProtected(service);
      } else if (this.protectedServices.delete(service)) {
        this.log.info({ service, expired, hosts: total }, 'expiry protection ended: heartbeats are back');
      }
    }
    if (selection.toSweep.length > 0) await Promise.all(selection.toSweep.map((host) => this.sweep(host)));
    return selection;
  }

  private async sweep(host: Host): Promise<void> {
    try {
      const key = instanceKeyOf(this.instanceKeyMode, host);
      const removed = await this.store.deleteIfCheckInIs(host.service, key, host.last_check_in);
      if (!removed) return;
      this.forgetInstance(host.service, key);
      this.stats.hostRemoved(host.service, 'expired');
      this.log.debug(
        { service: host.service, ip: host.ip_address, last_check_in: host.last_check_in },
        'expired host removed',
      );
      this.changed(host.service);
    } catch (error) {
      this.log.warn({ err: error, service: host.service, ip: host.ip_address }, 'could not remove expired host');
    }
  }

  /** What this process keeps about one instance's writes, dropped when the instance is removed. */
  private forgetInstance(service: string, key: string): void {
    const writeKey = heartbeatWriteKey(service, key);
    this.heartbeatWrites?.forget(writeKey);
    this.ownedExpiries?.forget(writeKey);
  }

  /**
   * Hosts whose check-in this process wrote are due (the expiry owner says so): their services
   * are read afresh and judged by the same rules as every read (expiry protection included),
   * which removes the expired ones and so reports them. A read that fails is never given up on:
   * nothing else reads a quiet service under the change feed, so it is retried (ReadRetries)
   * until one succeeds.
   */
  judgeDue(services: ReadonlySet<string>): void {
    if (this.closed) return;
    for (const service of services) {
      if (this.dueReads.has(service)) continue;
      this.dueReads.add(service);
      const key = `due:${service}`;
      this.lists.forget(service);
      this.listByService(service)
        .then((snapshot) => {
          // Served stale while storage is down: nothing was judged, so try again.
          if (snapshot.staleAgeSeconds !== undefined) throw new StorageUnavailableError('storage unavailable');
          this.retries.succeeded(key);
          // Expiry protection keeps expired hosts for now: judged again when the snapshot says
          // (its next re-check, or the end of the protection), so they go when it ends.
          if (this.protectedServices.has(service) && Number.isFinite(snapshot.nextExpiryAt)) {
            const delay = Math.max(PROTECTION_RECHECK_MIN_MS, snapshot.nextExpiryAt - this.clock.now());
            setTimeout(() => this.judgeDue(new Set([service])), delay).unref();
          }
        })
        .catch((error: unknown) => {
          if (this.closed) return;
          this.log.debug({ err: error, service }, 'could not judge hosts due to expire; retrying');
          this.retries.failed(key, () => this.judgeDue(new Set([service])), error);
        })
        .finally(() => this.dueReads.delete(service));
    }
  }

  /** A local write changed `service`: drop what was built for it and tell the listeners, the feed's too. */
  private changed(service: string): void {
    this.lists.forget(service);
    this.emit(service);
    for (const listener of this.localListeners) {
      try {
        listener(service);
      } catch (error) {
        this.log.error({ err: error, service }, 'local change listener failed');
      }
    }
  }

  private emit(service: string): void {
    for (const listener of this.listeners) {
      try {
        listener(service);
      } catch (error) {
        this.log.error({ err: error, service }, 'service change listener failed');
      }
    }
  }
}
