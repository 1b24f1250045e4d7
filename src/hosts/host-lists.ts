import { createHash } from 'node:crypto';
import { StorageUnavailableError } from '../errors.js';
import type { Selection } from './expiry.js';
import { effectiveStatus, sortedKeys, type Host } from './model.js';
import { RecentMap } from './recent-map.js';

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
  /**
   * Set only on a list read with `?status=` (status-views.ts): each host is written with its
   * effective `status`. Absent on every list of the domain itself.
   */
  readonly listsStatus?: true;
}

export type HostOrder = (a: Host, b: Host) => number;

/** By IP, then (several instances at one IP, INSTANCE_KEY=ip_port) by port. */
export const byIp: HostOrder = (a, b) =>
  a.ip_address < b.ip_address ? -1 : a.ip_address > b.ip_address ? 1 : a.port - b.port;

export const byServiceThenIp: HostOrder = (a, b) => {
  if (a.service !== b.service) return a.service < b.service ? -1 : 1;
  return byIp(a, b);
};

/**
 * The list of every service and repo without live hosts: one shared object, so a name nobody
 * registered costs no snapshot of its own. What differs by name (the body's `service` field,
 * an xDS resource's name) is derived by name, never memoised on this object.
 */
export const EMPTY_SNAPSHOT: HostSnapshot = Object.freeze({
  hosts: Object.freeze([]),
  version: createHash('sha1').digest('base64url').slice(0, 22),
  nextExpiryAt: Infinity,
  protectedHosts: 0,
});

/** The snapshot of what `selectLive` chose, sorted by `order`. */
export function snapshotOf(selection: Pick<Selection, 'hosts' | 'protectedHosts' | 'validUntil'>, order: HostOrder) {
  if (selection.hosts.length === 0) return EMPTY_SNAPSHOT;
  const live = [...selection.hosts].sort(order);
  return Object.freeze({
    hosts: Object.freeze(live),
    version: versionOf(live),
    nextExpiryAt: selection.validUntil,
    protectedHosts: selection.protectedHosts,
  });
}

/**
 * The hash of what proxies route on in `hosts` (in their order). A status other than `UP` is
 * part of it, `UP` is not: a list of UP hosts hashes exactly as it did before statuses existed,
 * so its ETag is unchanged.
 */
export function versionOf(hosts: readonly Host[]): string {
  const hash = createHash('sha1');
  for (const host of hosts) {
    const fields: unknown[] = [
      host.service,
      host.ip_address,
      host.port,
      host.revision,
      host.service_repo_name,
      sortedKeys(host.tags),
    ];
    const status = effectiveStatus(host);
    if (status !== 'UP') fields.push(status);
    hash.update(JSON.stringify(fields));
    hash.update('\n');
  }
  return hash.digest('base64url').slice(0, 22);
}

interface CachedList {
  readonly snapshot: HostSnapshot;
  readonly builtAt: number;
  /** The store's change token the list was built from; undefined for stores that give none. */
  readonly changeToken: number | undefined;
}

interface LastRead {
  readonly snapshot: HostSnapshot;
  readonly readAt: number;
}

/** How many service and repo lists are remembered for stale reads; beyond it the least recently read are forgotten. */
const LAST_READS_MAX = 10_000;

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

export interface HostListsOptions {
  /** `CACHE_TYPE=simple`: a list is served for `cacheTtlMs` without reading storage again. */
  readonly cacheEnabled: boolean;
  readonly cacheTtlMs: number;
  /**
   * While storage is unavailable, a list read from it at most this long ago is served (marked
   * stale) instead of failing; 0 fails the read.
   */
  readonly staleReadMaxMs: number;
}

/**
 * The lists this replica has built, by service and by repo: reused while storage says nothing
 * changed (or, with the cache on, for CACHE_TTL), handed out as the same object while their
 * content holds, and the last ones read kept for stale reads while storage is unavailable.
 * It holds lists; what goes in them is the caller's (`selectLive`).
 */
export class HostLists {
  private readonly services = new Lists(SNAPSHOTS_GENERATION);
  private readonly repos = new Lists(REPO_SNAPSHOTS_GENERATION);

  constructor(private readonly options: HostListsOptions) {}

  /**
   * The list of `service` when it is known right now without reading storage: fresh in the
   * cache, or built from the store's `currentToken` (a store that can tell synchronously).
   */
  knownService(service: string, now: number, currentToken: number | undefined): HostSnapshot | undefined {
    const cached = this.services.get(service);
    if (!cached) return undefined;
    if (this.fresh(cached, now)) return cached.snapshot;
    if (cached.changeToken !== undefined && cached.changeToken === currentToken && now <= cached.snapshot.nextExpiryAt)
      return cached.snapshot;
    return undefined;
  }

  /** The list built from the records with this `changeToken`, while it still holds at `now`. */
  unchangedService(service: string, changeToken: number | undefined, now: number): HostSnapshot | undefined {
    const cached = this.services.get(service);
    if (!cached || changeToken === undefined || changeToken !== cached.changeToken) return undefined;
    return now <= cached.snapshot.nextExpiryAt ? cached.snapshot : undefined;
  }

  /**
   * Files a list just built for `service`; returns the one to hand out (the kept object when
   * nothing in it changed) and whether what proxies route on changed since the last one.
   */
  keepService(
    service: string,
    built: HostSnapshot,
    now: number,
    changeToken: number | undefined,
  ): { snapshot: HostSnapshot; routingChanged: boolean } {
    return this.services.keep(service, built, now, changeToken, this.options.staleReadMaxMs > 0);
  }

  freshRepo(repo: string, now: number): HostSnapshot | undefined {
    const cached = this.repos.get(repo);
    return cached && this.fresh(cached, now) ? cached.snapshot : undefined;
  }

  keepRepo(repo: string, built: HostSnapshot, now: number): HostSnapshot {
    return this.repos.keep(repo, built, now, undefined, this.options.staleReadMaxMs > 0).snapshot;
  }

  /**
   * Storage failed a read: the list last read for `service` if it is young enough, as it was
   * read, marked stale; otherwise (or for any other failure) the error.
   */
  staleService(service: string, now: number, error: unknown): HostSnapshot {
    return this.stale(this.services.lastRead(service), now, error);
  }

  staleRepo(repo: string, now: number, error: unknown): HostSnapshot {
    return this.stale(this.repos.lastRead(repo), now, error);
  }

  /** A write changed `service`: its list, and every repo list (one may include it), are rebuilt on their next read. */
  forget(service: string): void {
    this.services.forget(service);
    this.repos.forgetAll();
  }

  /** Anything may have changed (a re-sync): every list is rebuilt on its next read; the last reads stay for stale reads. */
  forgetAll(): void {
    this.services.forgetAll();
    this.repos.forgetAll();
  }

  private fresh(cached: CachedList, now: number): boolean {
    return (
      this.options.cacheEnabled && now < cached.builtAt + this.options.cacheTtlMs && now <= cached.snapshot.nextExpiryAt
    );
  }

  /**
   * The last list read, exactly as it was read, marked with its age. Never filtered by the
   * check-ins it recorded: those are only as new as the last read, and a replica that follows the
   * change feed reads a service only when it changes, so hosts that heartbeat on time elsewhere
   * would look expired and a stale list would be emptier than the truth (and emptier than the
   * last good list). A failed read never replaces what was last known good.
   */
  private stale(last: LastRead | undefined, now: number, error: unknown): HostSnapshot {
    if (!(error instanceof StorageUnavailableError) || !last || now - last.readAt > this.options.staleReadMaxMs)
      throw error;
    return Object.freeze({ ...last.snapshot, staleAgeSeconds: Math.max(0, Math.floor((now - last.readAt) / 1000)) });
  }

  /**
   * When the cached list of `service` was read from storage (the read's start), while it is kept
   * and served without asking storage (`CACHE_TYPE=simple`); otherwise undefined: a list that is
   * re-read on every request keeps nothing that could fall behind.
   */
  cachedReadAt(service: string): number | undefined {
    return this.options.cacheEnabled ? this.services.peek(service)?.builtAt : undefined;
  }

  /** Services whose lists are cached (`CACHE_TYPE=simple`); none otherwise. */
  cachedServices(): Iterable<string> {
    return this.options.cacheEnabled ? this.services.keys() : [];
  }
}

/** One kind of list (by service or by repo): names with hosts, the (fewer) names without, and the last reads. */
class Lists {
  private readonly withHosts: RecentMap<string, CachedList>;
  private readonly empty = new RecentMap<string, CachedList>(EMPTY_SNAPSHOTS_GENERATION);
  private readonly lastReads = new Map<string, LastRead>();

  constructor(generation: number) {
    this.withHosts = new RecentMap(generation);
  }

  get(key: string): CachedList | undefined {
    return this.withHosts.get(key) ?? this.empty.get(key);
  }

  peek(key: string): CachedList | undefined {
    return this.withHosts.peek(key) ?? this.empty.peek(key);
  }

  lastRead(key: string): LastRead | undefined {
    return this.lastReads.get(key);
  }

  keep(
    key: string,
    built: HostSnapshot,
    now: number,
    changeToken: number | undefined,
    rememberReads: boolean,
  ): { snapshot: HostSnapshot; routingChanged: boolean } {
    const previous = this.get(key)?.snapshot;
    // The kept object only when all it says is still true: the same hosts and check-ins can be
    // live one moment and kept past HOST_TTL by expiry protection the next (its count and re-check
    // time then differ, and so do the answer's header and how long the list holds).
    const reused =
      previous !== undefined &&
      previous.version === built.version &&
      previous.nextExpiryAt === built.nextExpiryAt &&
      previous.protectedHosts === built.protectedHosts &&
      sameCheckIns(previous, built);
    const snapshot = reused ? previous : built;
    const cached: CachedList = { snapshot, builtAt: now, changeToken };
    // Filed with the names that have hosts or with the empty ones, never both.
    if (snapshot.hosts.length > 0) {
      this.empty.delete(key);
      this.withHosts.set(key, cached);
    } else {
      this.withHosts.delete(key);
      this.empty.set(key, cached);
    }
    if (rememberReads) this.rememberRead(key, snapshot, now);
    return { snapshot, routingChanged: previous !== undefined && previous.version !== snapshot.version };
  }

  /** Every name with a list kept (with hosts or without). */
  *keys(): Iterable<string> {
    yield* this.withHosts.keys();
    yield* this.empty.keys();
  }

  forget(key: string): void {
    this.withHosts.delete(key);
    this.empty.delete(key);
  }

  forgetAll(): void {
    this.withHosts.clear();
    this.empty.clear();
  }

  private rememberRead(key: string, snapshot: HostSnapshot, now: number): void {
    this.lastReads.delete(key); // re-inserted last: the Map's order is then least recently read first
    // An empty list is not worth serving stale, and strangers reading endless unknown names
    // must not push the real services' last lists out.
    if (snapshot.hosts.length === 0) return;
    this.lastReads.set(key, { snapshot, readAt: now });
    if (this.lastReads.size > LAST_READS_MAX) {
      const oldest = this.lastReads.keys().next();
      if (!oldest.done) this.lastReads.delete(oldest.value);
    }
  }
}

function sameCheckIns(a: HostSnapshot, b: HostSnapshot): boolean {
  if (a.hosts.length !== b.hosts.length) return false;
  return a.hosts.every((host, index) => host.last_check_in === b.hosts[index]?.last_check_in);
}
