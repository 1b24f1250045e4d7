import type { NodeLocality } from './locality-classes.js';
import { TYPE_URL, type ResourceTypeUrl } from './protos.js';
import { isServiceName, resourceSetVersion, type XdsResource } from './resources.js';
import { WatchLimitError, type XdsSnapshotCache } from './snapshot-cache.js';

/**
 * What one client subscribes to of one resource type, and the rules every way of serving xDS
 * reads it by, written once (the shape of go-control-plane's `stream.Subscription` with its
 * cache's resolution): the state-of-the-world stream (stream-server.ts), the incremental stream
 * (delta-stream.ts) and REST EDS (http/xds-routes.ts). Each protocol keeps only what it owns:
 * nonce-gated ACKs and full-state sends; per-resource versions and `removed_resources`.
 */

/** A protocol violation that ends the stream with a gRPC status code. */
export class StreamError extends Error {
  override readonly name = 'StreamError';
  constructor(
    message: string,
    /** gRPC status code: 3 INVALID_ARGUMENT, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE (shutting down). */
    readonly code: number,
  ) {
    super(message);
  }
}

/** What `GET /v1/xds/clients` shows per resource type of a stream. */
export interface TypeStatus {
  readonly type_url: string;
  /** True when the client subscribes to every resource of the type. */
  readonly wildcard: boolean;
  readonly resource_names: readonly string[];
  readonly version_sent: string | null;
  readonly nonce_sent: string | null;
  readonly version_acked: string | null;
  /** Whether the client acknowledged the last response sent. */
  readonly up_to_date: boolean;
  readonly nack_count: number;
  readonly last_nack: {
    readonly error: string;
    readonly nonce: string;
    readonly version_kept: string;
    readonly at: string;
  } | null;
}

const SUPPORTED_TYPES: readonly ResourceTypeUrl[] = [
  TYPE_URL.listener,
  TYPE_URL.routeConfiguration,
  TYPE_URL.cluster,
  TYPE_URL.clusterLoadAssignment,
];
/** Types a client may subscribe to as a whole (`*`, or an empty first subscription: the legacy rule). */
const WILDCARD_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);
/**
 * Names one request may carry, and one subscription may hold: a bound on what one client can
 * make the server build. A request past it is refused; a subscription past it ends the stream.
 */
export const MAX_RESOURCE_NAMES = 10_000;

/**
 * The type a request asks for, as the shared constant (one string for every stream), or
 * undefined when nothing of that type exists here (the client's own timeout tells it so). An
 * EDS-only endpoint reads an empty type as ClusterLoadAssignment and refuses any other with
 * the error `refuse` makes of it.
 */
export function requestedType(
  typeUrl: string,
  edsOnly: boolean,
  refuse: (typeUrl: string) => Error,
): ResourceTypeUrl | undefined {
  const asked = typeUrl === '' && edsOnly ? TYPE_URL.clusterLoadAssignment : typeUrl;
  if (edsOnly && asked !== TYPE_URL.clusterLoadAssignment) throw refuse(asked);
  return SUPPORTED_TYPES.find((known) => known === asked);
}

/** The names of `names` that can be services, once each, sorted: the only names any resource exists for. */
export function serviceNamesOf(names: Iterable<string>): string[] {
  return [...new Set(names)].filter(isServiceName).sort();
}

/**
 * The resources of `typeUrl` named by `names` (sorted service names) for a proxy at `locality`,
 * when each is at hand (every service read already): the common case, answered with no promise.
 * Undefined when a read is still to come.
 */
export function resourcesNow(
  cache: XdsSnapshotCache,
  typeUrl: ResourceTypeUrl,
  names: readonly string[],
  locality: NodeLocality | null | undefined,
): XdsResource[] | undefined {
  const resources = new Array<XdsResource>(names.length);
  for (let index = 0; index < names.length; index++) {
    const name = names[index]!;
    if (typeUrl === TYPE_URL.clusterLoadAssignment) {
      const resource = cache.endpointsNow(name, locality);
      if (resource === undefined) return undefined;
      resources[index] = resource;
    } else {
      resources[index] = cache.staticResource(typeUrl, name);
    }
  }
  return resources;
}

/**
 * The resources of `typeUrl` named by `names` (sorted service names) for a proxy at `locality`,
 * reading the services not at hand. A service whose read fails is given to `unavailable`, which
 * throws to fail the whole (REST answers with the error) or returns to leave it out.
 */
export async function resourcesOf(
  cache: XdsSnapshotCache,
  typeUrl: ResourceTypeUrl,
  names: readonly string[],
  locality: NodeLocality | null | undefined,
  unavailable: (service: string, error: unknown) => void,
): Promise<XdsResource[]> {
  const resources: XdsResource[] = [];
  for (const name of names) {
    if (typeUrl === TYPE_URL.clusterLoadAssignment) {
      try {
        resources.push(await cache.endpoints(name, locality));
      } catch (error) {
        unavailable(name, error);
      }
    } else {
      resources.push(cache.staticResource(typeUrl, name));
    }
  }
  return resources;
}

/** Distinct subscriptions kept shared; past this the table starts again (sharing is lost, nothing else). */
const SHARED_NAMES_MAX = 4_096;
const sharedNameLists = new Map<string, readonly string[]>();

/**
 * One array for every stream subscribed to the same sorted names, so the version of what they
 * are sent is worked out once per subscription and change (`setVersion`), not once per stream.
 */
function sharedNames(names: readonly string[]): readonly string[] {
  const key = names.join('\n');
  let shared = sharedNameLists.get(key);
  if (!shared) {
    if (sharedNameLists.size >= SHARED_NAMES_MAX) sharedNameLists.clear();
    shared = Object.freeze([...names]);
    sharedNameLists.set(key, shared);
  }
  return shared;
}

/** The last set resolved for each shared subscription, and its version. */
const lastSetOf = new WeakMap<
  readonly string[],
  { readonly resources: readonly XdsResource[]; readonly version: string }
>();

/**
 * `resourceSetVersion(resources)`. When `resources` were resolved for the shared subscription
 * `names` (a Subscription's `serviceNames`) and are the set its last caller had, that caller's
 * result: 10,000 streams pushed one change hash it once.
 */
export function setVersion(resources: readonly XdsResource[], names: readonly string[] | undefined): string {
  if (names === undefined) return resourceSetVersion(resources);
  const last = lastSetOf.get(names);
  if (
    last &&
    last.resources.length === resources.length &&
    last.resources.every((resource, index) => resource === resources[index])
  ) {
    return last.version;
  }
  const version = resourceSetVersion(resources);
  lastSetOf.set(names, { resources, version });
  return version;
}

/**
 * One stream's subscription to one resource type: which names (and whether every one, the
 * wildcard), the cache watches that follow them, what the client holds, and what was sent, ACKed
 * and NACKed. The client sets it whole (`replace`, state of the world) or by deltas (`update`);
 * either way the same wildcard rule, limits and watches apply, and `resolve` gives the resources
 * it names for a node.
 */
export class Subscription {
  wildcard = false;
  /** Names subscribed explicitly (besides the wildcard); the cache's copy of each watched one. */
  names = new Set<string>();
  /** The names that can be services, sorted and shared between equal subscriptions: what `resolve` reads. */
  serviceNames: readonly string[] = [];
  /** Name -> version the client holds: what it said it had (delta), then what it was sent. */
  returned = new Map<string, string>();
  versionSent: string | undefined = undefined;
  nonceSent: string | undefined = undefined;
  versionAcked: string | undefined = undefined;
  nackCount = 0;
  lastNack: TypeStatus['last_nack'] = null;
  /** A push is queued and not yet started; later pushes fold into it. */
  pushQueued = false;
  private unwatchNames: (() => void) | undefined = undefined;

  constructor(
    readonly typeUrl: ResourceTypeUrl,
    private readonly cache: XdsSnapshotCache,
    /**
     * The one watcher this subscription registers with the cache, for every name it watches and
     * for the service names when a wildcard: one function per stream and type, not one per name.
     */
    readonly onChange: () => void,
  ) {}

  /**
   * State of the world: the request's names are the whole subscription. An empty list on the
   * first request of a wildcard type, or the name `*`, subscribes to everything; a later empty
   * list keeps a wildcard and otherwise means "nothing" (the legacy rule Envoy and gRPC follow).
   * A name dropped is forgotten, so subscribing to it again sends it again. True when the
   * subscription changed. On a StreamError nothing this request would have watched stays watched.
   */
  replace(requested: readonly string[], first: boolean): boolean {
    const wildcard =
      WILDCARD_TYPES.has(this.typeUrl) &&
      (requested.includes('*') || (requested.length === 0 && (first || this.wildcard)));
    // Clients repeat their names on every ACK: the common case changes nothing.
    if (!first && wildcard === this.wildcard && sameNames(requested, this.names)) return false;
    const names = new Set(requested.filter((name) => name !== '*'));
    this.setWildcard(wildcard);
    let kept = names;
    if (this.typeUrl === TYPE_URL.clusterLoadAssignment) {
      // Watched: exactly the names that can be services.
      for (const name of this.serviceNames) if (!names.has(name)) this.cache.unwatchEndpoints(name, this.onChange);
      const added: string[] = [];
      for (const name of names) {
        if (this.names.has(name) || !isServiceName(name)) continue;
        try {
          this.watch(name);
        } catch (error) {
          // The names kept are released with the stream; these are not in them.
          for (const watched of added) this.cache.unwatchEndpoints(watched, this.onChange);
          throw error;
        }
        added.push(name);
      }
      kept = new Set([...names].map((name) => this.cache.knownName(name)));
    }
    for (const name of this.returned.keys()) if (!kept.has(name) && !wildcard) this.returned.delete(name);
    this.names = kept;
    this.serviceNames = sharedNames(serviceNamesOf(kept));
    return true;
  }

  /**
   * Incremental: names are added and dropped. `*` subscribes to everything (as does an empty
   * first subscription of a wildcard type) until `*` is unsubscribed. A name dropped while not a
   * wildcard is forgotten, so subscribing to it again sends it again. True when the subscription
   * changed. Past MAX_RESOURCE_NAMES names, a StreamError (RESOURCE_EXHAUSTED).
   */
  update(subscribe: readonly string[], unsubscribe: readonly string[], first: boolean): boolean {
    let wildcard = this.wildcard;
    if (WILDCARD_TYPES.has(this.typeUrl) && ((first && subscribe.length === 0) || subscribe.includes('*'))) {
      wildcard = true;
    }
    if (unsubscribe.includes('*')) wildcard = false;
    let changed = wildcard !== this.wildcard;
    this.setWildcard(wildcard);
    const endpoints = this.typeUrl === TYPE_URL.clusterLoadAssignment;
    for (const name of unsubscribe) {
      if (name === '*' || !this.names.delete(name)) continue;
      changed = true;
      if (endpoints && isServiceName(name)) this.cache.unwatchEndpoints(name, this.onChange);
      if (!this.wildcard) this.returned.delete(name);
      this.dropped(name);
    }
    for (const name of subscribe) {
      if (name === '*' || this.names.has(name)) continue;
      if (this.names.size >= MAX_RESOURCE_NAMES) {
        throw new StreamError(`too many resources subscribed (> ${MAX_RESOURCE_NAMES})`, 8);
      }
      changed = true;
      if (endpoints && isServiceName(name)) {
        this.watch(name);
        this.names.add(this.cache.knownName(name));
      } else {
        this.names.add(name);
      }
    }
    if (changed) this.serviceNames = sharedNames(serviceNamesOf(this.names));
    return changed;
  }

  /** Called by `update` for each name the client unsubscribed from; a protocol may forget more of it. */
  protected dropped(_name: string): void {}

  /**
   * What the subscription names, when every resource is at hand (not a wildcard, every service
   * read already): the common case, answered without waiting. Undefined otherwise.
   */
  resolveNow(locality: NodeLocality | null | undefined): XdsResource[] | undefined {
    if (this.wildcard) return undefined;
    return resourcesNow(this.cache, this.typeUrl, this.serviceNames, locality);
  }

  /**
   * Every resource the subscription names (with the wildcard, every service) that exists now,
   * sorted by name. A service that cannot be read is left out, given to `unavailable`: the
   * cache retries its read until one succeeds, and that pushes it.
   */
  async resolve(
    locality: NodeLocality | null | undefined,
    unavailable: (service: string, error: unknown) => void,
  ): Promise<XdsResource[]> {
    const names = this.wildcard
      ? serviceNamesOf([...this.serviceNames, ...(await this.cache.serviceNames())])
      : this.serviceNames;
    return resourcesOf(this.cache, this.typeUrl, names, locality, unavailable);
  }

  /** The client rejected the response `nonce` and keeps `versionKept`: counted and shown in the admin view. */
  recordNack(nonce: string, error: string | undefined, versionKept: string): void {
    this.nackCount++;
    this.lastNack = { error: error ?? '', nonce, version_kept: versionKept, at: new Date().toISOString() };
  }

  /** Drops every watch (the stream closed). Idempotent. */
  release(): void {
    if (this.typeUrl === TYPE_URL.clusterLoadAssignment) {
      for (const name of this.names) if (isServiceName(name)) this.cache.unwatchEndpoints(name, this.onChange);
    }
    this.unwatchNames?.();
    this.unwatchNames = undefined;
  }

  status(): TypeStatus {
    return {
      type_url: this.typeUrl,
      wildcard: this.wildcard,
      resource_names: [...this.names].sort(),
      version_sent: this.versionSent ?? null,
      nonce_sent: this.nonceSent ?? null,
      version_acked: this.versionAcked ?? null,
      up_to_date: this.versionSent !== undefined && this.versionAcked === this.versionSent,
      nack_count: this.nackCount,
      last_nack: this.lastNack,
    };
  }

  /** A wildcard follows the set of service names, through one watch. */
  private setWildcard(wildcard: boolean): void {
    if (wildcard && !this.unwatchNames) {
      this.unwatchNames = this.cache.watchServiceNames(this.onChange);
    } else if (!wildcard && this.unwatchNames) {
      this.unwatchNames();
      this.unwatchNames = undefined;
    }
    this.wildcard = wildcard;
  }

  /** Watches the endpoints of service `name`; past the cache's bound, a StreamError (RESOURCE_EXHAUSTED). */
  private watch(name: string): void {
    try {
      this.cache.watchEndpoints(name, this.onChange);
    } catch (error) {
      if (error instanceof WatchLimitError) throw new StreamError(error.message, 8);
      throw error;
    }
  }
}

/** Whether a request's names are exactly the names subscribed (a repeated or `*` name counts as a change). */
function sameNames(requested: readonly string[], names: ReadonlySet<string>): boolean {
  if (requested.length !== names.size) return false;
  for (const name of requested) if (!names.has(name)) return false;
  return true;
}
