import type { Clock } from '../clock.js';
import { ReadRetries, type Freshness, type KeptView } from '../hosts/freshness.js';
import type { HostEvents } from '../hosts/host-events.js';
import type { HostService } from '../hosts/host-service.js';
import type { HostSnapshot } from '../hosts/host-lists.js';
import type { Log } from '../logger.js';
import { LocalityIndex, classKey, type NodeLocality } from './locality-classes.js';
import { TYPE_URL } from './protos.js';
import { clusterLoadAssignment, isServiceName, staticResource, toResource, type XdsResource } from './resources.js';

/** What the cache reads of the domain. */
export type SnapshotSource = Pick<HostService, 'listByService' | 'listServiceNames'>;

export interface SnapshotCacheOptions {
  readonly hostService: SnapshotSource;
  /** Where the domain publishes what changed (compose.ts passes the one publisher). */
  readonly events: Pick<HostEvents, 'onServiceChanged' | 'onResync'>;
  readonly clock: Clock;
  readonly log: Log;
  /**
   * Milliseconds between re-reads of every watched service, which is how changes written by
   * another replica (a shared DynamoDB table) reach this one's subscribers. Only watched
   * services are read; never a scan.
   */
  readonly pollIntervalMs: number;
  /**
   * Milliseconds between re-reads of the list of service names, done only while some client
   * subscribes to every Listener or Cluster (a wildcard). Listing names can be a table scan on
   * DynamoDB, hence its own, longer interval; local changes update the list at once.
   */
  readonly wildcardPollIntervalMs: number;
  /** At most this many distinct names watched at once, over every stream (default WATCHED_NAMES_MAX). */
  readonly maxWatchedNames?: number;
  /**
   * `XDS_LOCALITY_PRIORITY`: a proxy that states its locality gets its own zone's endpoints at
   * priority 0, the rest of its region at 1, other regions at 2 (default false: every proxy gets
   * the same single-priority assignment).
   */
  readonly localityPriority?: boolean;
  /**
   * How the cache stays right (compose.ts chooses). `poll`: watched services are re-read every
   * `pollIntervalMs` and at their next expiry. `feed`: replicas tell each other of changes
   * through the change feed, which reaches this cache as `onServiceChanged` events (and
   * `onResync` when anything may have changed); nothing is polled, and no timer re-reads a
   * service at its next expiry (the replica that wrote the host's check-in judges it then, and
   * the feed says what it removed). Either way a read that fails keeps the last good resource
   * and is retried through `freshness.retries` until one succeeds. Default: `poll`, with retries
   * of its own.
   */
  readonly freshness?: Freshness;
}

/**
 * Distinct service names watched at once, across every stream: twice the 10,000 services the
 * registry is sized for. Each stream may name 10,000 per request, but streams are not counted,
 * and every watched name is kept (an entry and its resource) and re-read on every poll, so
 * without a bound a few clients naming services that do not exist could fill memory and the
 * poll. Past it, the stream asking for more is ended with RESOURCE_EXHAUSTED.
 */
export const WATCHED_NAMES_MAX = 20_000;

/** Watching one more name would pass `maxWatchedNames`. */
export class WatchLimitError extends Error {
  override readonly name = 'WatchLimitError';
}

/** Called when a watched resource changed; the cache already holds the new one. */
export type ChangeWatcher = () => void;

interface EndpointEntry {
  readonly name: string;
  readonly watchers: Set<ChangeWatcher>;
  resource: XdsResource | undefined;
  /** The snapshot `resource` was built from; the per-locality resources are built from it too. */
  snapshot: HostSnapshot | undefined;
  /** When the read `resource` was built from began (epoch ms); what the anti-entropy check compares. */
  readAt: number | undefined;
  /** The read in flight, if any; a change seen meanwhile sets `dirty` so it runs once more. */
  refreshing: Promise<void> | undefined;
  dirty: boolean;
  expiryTimer: NodeJS.Timeout | undefined;
  /** The resource while the service has no hosts: the domain's empty snapshot is shared by every name, so it is memoised here. */
  emptyResource: XdsResource | undefined;
  /** Counts changes applied; a pass over the watchers stops when a newer one began. */
  generation: number;
}

/**
 * Watchers told of a change per event-loop turn. Streams answer synchronously and their bytes
 * leave only when the loop turns, so telling 10,000 in one pass would hold every response until
 * the last is written; in turns of this many, the first clients receive (and ACK) while later
 * streams are still being written, and other requests are served in between.
 */
const WATCHERS_PER_TURN = 1_000;
/** Refreshes of watched services run this many at a time, so a poll does not burst the store. */
const POLL_CONCURRENCY = 16;
/**
 * Expiry is "now > last_check_in + TTL", so the timer fires a little after the instant; the
 * margin also absorbs timer and clock jitter. A service whose first host has not expired yet
 * when the timer fires is re-armed at least this far ahead, never in a tight loop.
 */
const EXPIRY_MARGIN_MS = 5;
/** setTimeout's longest delay; a later expiry is re-armed when this one fires. */
const MAX_TIMER_MS = 2_147_483_647;
/** Static resources are cheap to rebuild; this bounds the memo against clients naming endless services. */
const STATIC_MEMO_MAX = 10_000;

/**
 * Which xDS resources exist and at which version, kept apart from how they are streamed (the
 * shape of go-control-plane's LinearCache): one entry per watched service name holding its
 * current `ClusterLoadAssignment`, and only the watchers of a name that changed are told.
 *
 * It learns of changes from the domain, never from storage: `onServiceChanged` events (local
 * writes, sweeps, remote changes a read detected or the change feed reported), and, unless it
 * follows the change feed, a timer at each watched service's next expiry and a poll of the
 * watched services for writes made through other replicas. Listener, Cluster
 * and RouteConfiguration depend only on the name, so they have no entry; what can change for
 * them is the set of service names a wildcard subscriber sees.
 */
export class XdsSnapshotCache implements KeptView {
  private readonly entries = new Map<string, EndpointEntry>();
  private readonly staticMemo = new Map<string, XdsResource>();
  private readonly endpointMemo = new WeakMap<HostSnapshot, XdsResource>();
  /** Per snapshot: its locality classes and the assignment built for each class asked for so far. */
  private readonly localityMemo = new WeakMap<
    HostSnapshot,
    { readonly index: LocalityIndex; readonly byClass: Map<string, XdsResource> }
  >();
  private readonly nameWatchers = new Set<ChangeWatcher>();
  private serviceNameSet: Set<string> | undefined;
  private serviceNamesLoading: Promise<Set<string>> | undefined;
  private readonly unsubscribe: () => void;
  private readonly unsubscribeResync: () => void;
  private pollTimer: NodeJS.Timeout | undefined;
  private wildcardTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly freshness: Freshness;

  constructor(private readonly options: SnapshotCacheOptions) {
    this.freshness = options.freshness ?? { kind: 'poll', retries: new ReadRetries(options.log) };
    this.unsubscribe = options.events.onServiceChanged((service) => this.serviceChanged(service));
    if (this.freshness.kind === 'feed') {
      this.unsubscribeResync = options.events.onResync(() => this.resync());
    } else {
      this.unsubscribeResync = () => undefined;
      this.schedulePoll();
    }
  }

  /**
   * Starts watching the endpoints of `name`: `watcher` is called each time its
   * ClusterLoadAssignment changes, until `unwatchEndpoints(name, watcher)`. The first watcher of
   * a name makes the cache read it, arm its expiry timer and include it in polls. Watching a
   * name twice with the same function is watching it once.
   */
  watchEndpoints(name: string, watcher: ChangeWatcher): void {
    let entry = this.entries.get(name);
    if (!entry) {
      const max = this.options.maxWatchedNames ?? WATCHED_NAMES_MAX;
      if (this.entries.size >= max) throw new WatchLimitError(`${max} services are watched already; no more can be`);
      entry = {
        name,
        watchers: new Set(),
        resource: undefined,
        snapshot: undefined,
        readAt: undefined,
        refreshing: undefined,
        dirty: false,
        expiryTimer: undefined,
        emptyResource: undefined,
        generation: 0,
      };
      this.entries.set(name, entry);
      void this.refresh(entry);
    }
    entry.watchers.add(watcher);
  }

  /** Stops `watcher` watching `name`; the last watcher gone, the name is forgotten. A watcher not watching it: nothing. */
  unwatchEndpoints(name: string, watcher: ChangeWatcher): void {
    const entry = this.entries.get(name);
    if (!entry?.watchers.delete(watcher) || entry.watchers.size > 0) return;
    clearTimeout(entry.expiryTimer);
    this.entries.delete(name);
    this.freshness.retries.forget(retryKey(name));
  }

  /**
   * The cache's own copy of `name` while it is watched, else `name`: streams keep this one, so
   * 10,000 streams naming a service hold one string, not 10,000 decoded from their requests.
   */
  knownName(name: string): string {
    return this.entries.get(name)?.name ?? name;
  }

  /**
   * The current ClusterLoadAssignment of `name` for a proxy at `node`: the watched one, or, for a
   * name nobody watches (a REST request), one read now. With `localityPriority` and a `node`
   * locality that some host shares, the one of that proxy's locality class, built once per
   * class and content and shared by every caller; otherwise the single-priority one. Rejects
   * when the domain cannot read the service.
   */
  async endpoints(name: string, node?: NodeLocality | null): Promise<XdsResource> {
    const now = this.endpointsNow(name, node);
    if (now) return now;
    const entry = this.entries.get(name);
    if (entry) {
      if (entry.resource === undefined) await (entry.refreshing ?? this.refresh(entry));
      if (entry.resource !== undefined && entry.snapshot !== undefined) {
        return this.forProxy(name, entry.snapshot, entry.resource, node);
      }
    }
    const snapshot = await this.options.hostService.listByService(name);
    return this.forProxy(name, snapshot, this.endpointResource(name, snapshot), node);
  }

  /** What `endpoints` resolves with, when `name` is watched and read already; else undefined (no read is started). */
  endpointsNow(name: string, node?: NodeLocality | null): XdsResource | undefined {
    const entry = this.entries.get(name);
    if (entry?.resource === undefined || entry.snapshot === undefined) return undefined;
    return this.forProxy(name, entry.snapshot, entry.resource, node);
  }

  /** How many per-locality assignments of watched service `name` are built and kept (for tests: bounded by the hosts' localities). */
  localityResourceCount(name: string): number {
    const snapshot = this.entries.get(name)?.snapshot;
    return snapshot ? (this.localityMemo.get(snapshot)?.byClass.size ?? 0) : 0;
  }

  /** The Listener, RouteConfiguration or Cluster named `name`: derived from the name alone. */
  staticResource(
    typeUrl: typeof TYPE_URL.listener | typeof TYPE_URL.routeConfiguration | typeof TYPE_URL.cluster,
    name: string,
  ): XdsResource {
    const key = `${typeUrl}\n${name}`;
    let resource = this.staticMemo.get(key);
    if (!resource) {
      if (this.staticMemo.size >= STATIC_MEMO_MAX) this.staticMemo.clear();
      resource = staticResource(typeUrl, name);
      this.staticMemo.set(key, resource);
    }
    return resource;
  }

  /** Calls `watcher` when the set of service names changes; for wildcard subscribers. */
  watchServiceNames(watcher: ChangeWatcher): () => void {
    this.nameWatchers.add(watcher);
    this.scheduleWildcardPoll();
    return () => {
      this.nameWatchers.delete(watcher);
      if (this.nameWatchers.size === 0) {
        clearTimeout(this.wildcardTimer);
        this.wildcardTimer = undefined;
      }
    };
  }

  /** Every service with hosts, sorted, as far as this replica knows (see `wildcardPollIntervalMs`). */
  async serviceNames(): Promise<readonly string[]> {
    const names = this.serviceNameSet ?? (await this.loadServiceNames());
    return [...names].sort();
  }

  /** Names currently watched for endpoints, for the admin view and tests. */
  watchedServices(): readonly string[] {
    return [...this.entries.keys()].sort();
  }

  /** Stops every timer and the domain subscription. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.unsubscribeResync();
    clearTimeout(this.pollTimer);
    clearTimeout(this.wildcardTimer);
    for (const entry of this.entries.values()) clearTimeout(entry.expiryTimer);
    this.entries.clear();
    this.nameWatchers.clear();
  }

  private endpointResource(name: string, snapshot: HostSnapshot): XdsResource {
    const build = () => toResource(TYPE_URL.clusterLoadAssignment, name, clusterLoadAssignment(name, snapshot));
    if (snapshot.hosts.length === 0) {
      // One snapshot stands for every service without hosts; its resource carries the name.
      const entry = this.entries.get(name);
      return entry ? (entry.emptyResource ??= build()) : build();
    }
    let resource = this.endpointMemo.get(snapshot);
    if (!resource) {
      resource = build();
      this.endpointMemo.set(snapshot, resource);
    }
    return resource;
  }

  private forProxy(
    name: string,
    snapshot: HostSnapshot,
    base: XdsResource,
    node: NodeLocality | null | undefined,
  ): XdsResource {
    if (!this.options.localityPriority || !node || snapshot.hosts.length === 0) return base;
    let memo = this.localityMemo.get(snapshot);
    if (!memo) {
      memo = { index: new LocalityIndex(snapshot), byClass: new Map() };
      this.localityMemo.set(snapshot, memo);
    }
    const near = memo.index.classOf(node);
    if (!near) return base;
    const key = classKey(near);
    let resource = memo.byClass.get(key);
    if (!resource) {
      resource = toResource(TYPE_URL.clusterLoadAssignment, name, clusterLoadAssignment(name, snapshot, near));
      memo.byClass.set(key, resource);
    }
    return resource;
  }

  private serviceChanged(service: string): void {
    if (this.closed) return;
    const entry = this.entries.get(service);
    if (entry) {
      void this.refresh(entry);
    } else if (this.nameWatchers.size > 0 && this.serviceNameSet && isServiceName(service)) {
      // Nobody watches its endpoints, but a wildcard subscriber sees whether it exists. A stale
      // list says nothing new; a failed read leaves the set to be listed again until it succeeds.
      this.options.hostService.listByService(service).then(
        (snapshot) => {
          if (snapshot.staleAgeSeconds === undefined) this.noteMembership(service, snapshot);
          else this.reloadServiceNames();
        },
        () => this.reloadServiceNames(),
      );
    }
  }

  /**
   * Reads `entry`'s service again; at most one read per name in flight, and none lost. A read
   * that fails, or that storage could answer only with a stale list, changes nothing: streams
   * keep the last good resource (a stale list is never pushed as a change, nor a first resource
   * a stream waits for), and the read is retried until one succeeds.
   */
  private refresh(entry: EndpointEntry): Promise<void> {
    if (entry.refreshing) {
      entry.dirty = true;
      return entry.refreshing;
    }
    entry.refreshing = (async () => {
      do {
        entry.dirty = false;
        const readAt = this.options.clock.now();
        let snapshot: HostSnapshot;
        try {
          snapshot = await this.options.hostService.listByService(entry.name);
          if (snapshot.staleAgeSeconds !== undefined)
            throw new Error(`storage unavailable: only a list read ${snapshot.staleAgeSeconds} s ago`);
        } catch (error) {
          if (this.closed || this.entries.get(entry.name) !== entry) return;
          this.options.log.debug(
            { err: error, service: entry.name },
            'xds: could not read a watched service; retrying',
          );
          this.freshness.retries.failed(retryKey(entry.name), () => void this.refresh(entry), error);
          return;
        }
        if (this.closed || this.entries.get(entry.name) !== entry) return;
        this.freshness.retries.succeeded(retryKey(entry.name));
        entry.readAt = readAt;
        this.apply(entry, snapshot);
      } while (entry.dirty);
    })().finally(() => {
      entry.refreshing = undefined;
    });
    return entry.refreshing;
  }

  /** When the resource of watched `service` was read (KeptView). */
  keptReadAt(service: string): number | undefined {
    return this.entries.get(service)?.readAt;
  }

  keptServices(): Iterable<string> {
    return this.entries.keys();
  }

  private apply(entry: EndpointEntry, snapshot: HostSnapshot): void {
    this.armExpiry(entry, snapshot.nextExpiryAt);
    this.noteMembership(entry.name, snapshot);
    const resource = this.endpointResource(entry.name, snapshot);
    // Same content, same locality classes: keep the snapshot whose per-locality resources are built.
    if (entry.resource?.version === resource.version) return;
    entry.resource = resource;
    entry.snapshot = snapshot;
    this.notify(entry, [...entry.watchers], 0, ++entry.generation);
  }

  /**
   * Tells the watchers of `entry` from `from` on, WATCHERS_PER_TURN per event-loop turn, unless
   * a newer change started its own pass (which tells every watcher) or the cache closed.
   */
  private notify(entry: EndpointEntry, watchers: readonly ChangeWatcher[], from: number, generation: number): void {
    if (this.closed || entry.generation !== generation) return;
    const to = Math.min(watchers.length, from + WATCHERS_PER_TURN);
    for (let index = from; index < to; index++) {
      const watcher = watchers[index]!;
      // One that stopped watching since the pass began is not told.
      if (from > 0 && !entry.watchers.has(watcher)) continue;
      try {
        watcher();
      } catch (error) {
        this.options.log.error({ err: error, service: entry.name }, 'xds: endpoint watcher failed');
      }
    }
    if (to < watchers.length) setImmediate(() => this.notify(entry, watchers, to, generation));
  }

  private armExpiry(entry: EndpointEntry, nextExpiryAt: number): void {
    clearTimeout(entry.expiryTimer);
    entry.expiryTimer = undefined;
    if (!Number.isFinite(nextExpiryAt) || this.freshness.kind === 'feed') return;
    const delay = Math.min(
      MAX_TIMER_MS,
      Math.max(EXPIRY_MARGIN_MS, nextExpiryAt - this.options.clock.now() + EXPIRY_MARGIN_MS),
    );
    entry.expiryTimer = setTimeout(() => {
      entry.expiryTimer = undefined;
      if (this.entries.get(entry.name) === entry) void this.refresh(entry);
    }, delay);
    entry.expiryTimer.unref();
  }

  private noteMembership(service: string, snapshot: HostSnapshot): void {
    const names = this.serviceNameSet;
    if (!names) return;
    const present = snapshot.hosts.length > 0;
    if (present === names.has(service)) return;
    if (present) names.add(service);
    else names.delete(service);
    this.notifyNameWatchers();
  }

  private notifyNameWatchers(): void {
    for (const watcher of [...this.nameWatchers]) {
      try {
        watcher();
      } catch (error) {
        this.options.log.error({ err: error }, 'xds: service-name watcher failed');
      }
    }
  }

  private loadServiceNames(): Promise<Set<string>> {
    this.serviceNamesLoading ??= this.options.hostService
      .listServiceNames()
      .then((names) => {
        const loaded = new Set(names.filter(isServiceName));
        const previous = this.serviceNameSet;
        this.serviceNameSet = loaded;
        if (previous && !sameSet(previous, loaded)) this.notifyNameWatchers();
        return loaded;
      })
      .finally(() => {
        this.serviceNamesLoading = undefined;
      });
    return this.serviceNamesLoading;
  }

  /** Anything may have changed (the change feed could not say what): every watched service is read again. */
  private resync(): void {
    if (this.closed) return;
    void this.pollWatched();
    this.reloadServiceNames();
  }

  /** Lists the service names again for wildcard subscribers, retried until it succeeds. */
  private reloadServiceNames(): void {
    if (this.closed || this.nameWatchers.size === 0) {
      this.freshness.retries.forget(NAMES_RETRY_KEY);
      return;
    }
    this.loadServiceNames().then(
      () => this.freshness.retries.succeeded(NAMES_RETRY_KEY),
      (error: unknown) => this.freshness.retries.failed(NAMES_RETRY_KEY, () => this.reloadServiceNames(), error),
    );
  }

  private schedulePoll(): void {
    if (this.closed) return;
    this.pollTimer = setTimeout(() => {
      void this.pollWatched().finally(() => this.schedulePoll());
    }, this.options.pollIntervalMs);
    this.pollTimer.unref();
  }

  private async pollWatched(): Promise<void> {
    const queue = [...this.entries.values()];
    const worker = async () => {
      for (let entry = queue.shift(); entry; entry = queue.shift()) {
        if (this.entries.get(entry.name) === entry) await this.refresh(entry);
      }
    };
    await Promise.all(Array.from({ length: Math.min(POLL_CONCURRENCY, queue.length) }, worker));
  }

  private scheduleWildcardPoll(): void {
    if (this.closed || this.wildcardTimer || this.nameWatchers.size === 0) return;
    this.wildcardTimer = setTimeout(() => {
      this.loadServiceNames()
        .catch((error: unknown) => this.options.log.warn({ err: error }, 'xds: could not list services'))
        .finally(() => {
          this.wildcardTimer = undefined;
          this.scheduleWildcardPoll();
        });
    }, this.options.wildcardPollIntervalMs);
    this.wildcardTimer.unref();
  }
}

/** The key of the service-name list's read in ReadRetries. */
const NAMES_RETRY_KEY = 'xds-names';

/** The key of a watched service's read in ReadRetries. */
function retryKey(service: string): string {
  return `xds:${service}`;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const item of a) if (!b.has(item)) return false;
  return true;
}
