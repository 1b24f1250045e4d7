import { TYPE_URL, type ResourceTypeUrl } from './protos.js';
import { isServiceName, resourceSetVersion, type XdsResource } from './resources.js';
import { WatchLimitError } from './snapshot-cache.js';
import {
  ProtocolStream,
  StreamError,
  type NodeInfo,
  type StreamServerOptions,
  type TypeStatus,
  type WatchedType,
} from './protocol-stream.js';

/** The fields of an `envoy.service.discovery.v3.DeltaDiscoveryRequest` the server reads. */
export interface DeltaDiscoveryRequest {
  readonly node?: NodeInfo | null;
  readonly type_url: string;
  readonly resource_names_subscribe: readonly string[];
  readonly resource_names_unsubscribe: readonly string[];
  /** What a reconnecting client already holds: name -> version (first request of a type only). */
  readonly initial_resource_versions: Readonly<Record<string, string>>;
  readonly response_nonce: string;
  readonly error_detail?: { readonly code?: number; readonly message?: string } | null;
}

/** A response to write: the transport encodes it as a `DeltaDiscoveryResponse`. */
export interface DeltaDiscoveryResponse {
  readonly system_version_info: string;
  readonly resources: readonly XdsResource[];
  readonly type_url: ResourceTypeUrl;
  readonly removed_resources: readonly string[];
  readonly nonce: string;
}

/** How a delta stream reaches its client; implemented over a grpc-js duplex call, or by tests. */
export interface DeltaStreamTransport {
  readonly peer: string;
  send(response: DeltaDiscoveryResponse): void;
  end(error?: StreamError): void;
}

export type DeltaStreamKind = 'delta-ads' | 'delta-eds';

const SUPPORTED_TYPES: readonly ResourceTypeUrl[] = [
  TYPE_URL.listener,
  TYPE_URL.routeConfiguration,
  TYPE_URL.cluster,
  TYPE_URL.clusterLoadAssignment,
];
/** Types a client may subscribe to as a whole (`*`, or an empty first subscription: the legacy rule). */
const WILDCARD_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);
/** Names one request may add or drop, and one stream may hold per type: a bound on what a client can make the server build. */
const MAX_RESOURCE_NAMES = 10_000;

interface DeltaTypeState extends WatchedType {
  readonly typeUrl: ResourceTypeUrl;
  wildcard: boolean;
  /** Names subscribed explicitly (besides the wildcard). */
  readonly names: Set<string>;
  /** Name -> version the client holds: what it said it had, then what was sent to it. */
  readonly held: Map<string, string>;
  /** Names the client was told do not exist, so it is not told again until they do. */
  readonly toldMissing: Set<string>;
  systemVersionSent: string | undefined;
  nonceSent: string | undefined;
  versionAcked: string | undefined;
  /** System version of each nonce still unanswered, so an ACK names the version it accepts. */
  readonly versionOfNonce: Map<string, string>;
  nackCount: number;
  lastNack: TypeStatus['last_nack'];
  readonly onChange: () => void;
  unwatchNames: (() => void) | undefined;
  pushQueued: boolean;
}

/** Nonces remembered per type for ACKs that arrive late; older ones are forgotten. */
const NONCES_REMEMBERED = 16;

/**
 * Envoy's incremental xDS ("delta") protocol on one stream, for ADS (every type) and EDS alone:
 * per resource versions, subscribe and unsubscribe as deltas, `removed_resources`, nonces,
 * ACK/NACK and the wildcard. A response carries only the resources whose version differs
 * from what the client holds (it said so in `initial_resource_versions` when it reconnected,
 * or it was sent them), and the names that stopped existing; a client watching 1,000 clusters
 * gets one resource when one changes. The resources and their versions are the ones the
 * state-of-the-world streams serve (the same cache), so both protocols agree.
 *
 * Subscription changes are applied whatever nonce they carry (they are deltas: dropping one
 * would lose it); an ACK or NACK alone is recorded and never answered.
 */
export class XdsDeltaStream extends ProtocolStream<DeltaDiscoveryRequest, DeltaTypeState> {
  private nonceCounter = 0;

  constructor(
    id: number,
    kind: DeltaStreamKind,
    private readonly transport: DeltaStreamTransport,
    options: StreamServerOptions,
    onClosed: () => void,
  ) {
    super(id, kind, transport, options, onClosed);
  }

  protected typeStatus(state: DeltaTypeState): TypeStatus {
    return {
      type_url: state.typeUrl,
      wildcard: state.wildcard,
      resource_names: [...state.names].sort(),
      version_sent: state.systemVersionSent ?? null,
      nonce_sent: state.nonceSent ?? null,
      version_acked: state.versionAcked ?? null,
      up_to_date: state.systemVersionSent !== undefined && state.versionAcked === state.systemVersionSent,
      nack_count: state.nackCount,
      last_nack: state.lastNack,
    };
  }

  protected handle(request: DeltaDiscoveryRequest): void | Promise<void> {
    this.noteNode(request.node);
    const typeUrl = this.typeOf(request);
    if (typeUrl === undefined) return;
    const subscribe = request.resource_names_subscribe;
    const unsubscribe = request.resource_names_unsubscribe;
    if (subscribe.length + unsubscribe.length > MAX_RESOURCE_NAMES) {
      throw new StreamError(`too many resource names in one request (> ${MAX_RESOURCE_NAMES})`, 3);
    }
    let state = this.types.get(typeUrl);
    const first = state === undefined;
    if (!state) {
      const created: DeltaTypeState = {
        typeUrl,
        wildcard: false,
        names: new Set(),
        held: new Map(),
        toldMissing: new Set(),
        systemVersionSent: undefined,
        nonceSent: undefined,
        versionAcked: undefined,
        versionOfNonce: new Map(),
        nackCount: 0,
        lastNack: null,
        onChange: () => this.push(created),
        unwatchNames: undefined,
        pushQueued: false,
      };
      state = created;
      this.types.set(typeUrl, state);
      for (const [name, version] of Object.entries(request.initial_resource_versions ?? {})) {
        if (state.held.size >= MAX_RESOURCE_NAMES) break;
        state.held.set(name, version);
      }
    }
    this.recordAnswer(state, request);
    const changed = this.subscribe(state, subscribe, unsubscribe, first);
    // A request that only ACKs or NACKs is not answered: the client holds what it was sent.
    if (first || changed) return this.respond(state);
  }

  private typeOf(request: DeltaDiscoveryRequest): ResourceTypeUrl | undefined {
    const typeUrl =
      request.type_url === '' && this.kind === 'delta-eds' ? TYPE_URL.clusterLoadAssignment : request.type_url;
    if (this.kind === 'delta-eds' && typeUrl !== TYPE_URL.clusterLoadAssignment) {
      throw new StreamError(`the EDS service serves only ${TYPE_URL.clusterLoadAssignment}, not '${typeUrl}'`, 3);
    }
    if (!(SUPPORTED_TYPES as readonly string[]).includes(typeUrl)) {
      this.options.log.info({ stream: this.id, type: typeUrl }, 'xds: delta request for an unsupported type ignored');
      return undefined;
    }
    return SUPPORTED_TYPES.find((known) => known === typeUrl);
  }

  protected watchedEndpoints(state: DeltaTypeState): Iterable<string> {
    return state.typeUrl === TYPE_URL.clusterLoadAssignment ? [...state.names].filter(isServiceName) : [];
  }

  /** An ACK or NACK of an earlier response: recorded for the admin view and the counters. */
  private recordAnswer(state: DeltaTypeState, request: DeltaDiscoveryRequest): void {
    const nonce = request.response_nonce;
    if (nonce === '') return;
    const version = state.versionOfNonce.get(nonce);
    if (version === undefined) return; // stale or unknown: a newer response crossed it
    state.versionOfNonce.delete(nonce);
    if (request.error_detail) {
      state.nackCount++;
      state.lastNack = {
        error: request.error_detail.message ?? '',
        nonce,
        version_kept: state.versionAcked ?? '',
        at: new Date().toISOString(),
      };
      this.options.stats.xds('nack');
      this.options.log.warn(
        { stream: this.id, node: this.node?.id, type: state.typeUrl, nonce, error: request.error_detail.message },
        'xds: client rejected a delta response (NACK)',
      );
    } else {
      state.versionAcked = version;
    }
  }

  /** Applies the deltas; true when the subscription changed (so an answer is due). */
  private subscribe(
    state: DeltaTypeState,
    subscribe: readonly string[],
    unsubscribe: readonly string[],
    first: boolean,
  ): boolean {
    const wildcardType = WILDCARD_TYPES.has(state.typeUrl);
    let changed = false;
    let wildcard = state.wildcard;
    if (wildcardType && ((first && subscribe.length === 0) || subscribe.includes('*'))) wildcard = true;
    if (unsubscribe.includes('*')) wildcard = false;
    if (wildcard !== state.wildcard) {
      changed = true;
      state.wildcard = wildcard;
      if (wildcard) state.unwatchNames = this.options.cache.watchServiceNames(state.onChange);
      else {
        state.unwatchNames?.();
        state.unwatchNames = undefined;
      }
    }
    for (const name of unsubscribe) {
      if (name === '*' || !state.names.delete(name)) continue;
      changed = true;
      if (state.typeUrl === TYPE_URL.clusterLoadAssignment && isServiceName(name)) {
        this.options.cache.unwatchEndpoints(name, state.onChange);
      }
      // Dropped, so subscribing again sends it again.
      if (!state.wildcard) state.held.delete(name);
      state.toldMissing.delete(name);
    }
    for (const name of subscribe) {
      if (name === '*' || state.names.has(name)) continue;
      if (state.names.size >= MAX_RESOURCE_NAMES) {
        throw new StreamError(`too many resources subscribed (> ${MAX_RESOURCE_NAMES})`, 8);
      }
      changed = true;
      if (state.typeUrl === TYPE_URL.clusterLoadAssignment && isServiceName(name)) {
        try {
          this.options.cache.watchEndpoints(name, state.onChange);
        } catch (error) {
          if (error instanceof WatchLimitError) throw new StreamError(error.message, 8);
          throw error;
        }
        // The cache's copy of the name: every stream holds the same string.
        state.names.add(this.options.cache.knownName(name));
      } else {
        state.names.add(name);
      }
    }
    return changed;
  }

  private push(state: DeltaTypeState): void {
    if (this.closed || state.pushQueued) return;
    state.pushQueued = true;
    void this.enqueue(() => {
      state.pushQueued = false;
      return this.respond(state);
    });
  }

  /** `current` when every resource is at hand (not a wildcard, every service read already); else undefined. */
  private currentNow(state: DeltaTypeState): Map<string, XdsResource> | undefined {
    if (state.wildcard) return undefined;
    const names = [...state.names].filter(isServiceName).sort();
    const resources = new Map<string, XdsResource>();
    for (const name of names) {
      if (state.typeUrl === TYPE_URL.clusterLoadAssignment) {
        const resource = this.options.cache.endpointsNow(name, this.node?.locality);
        if (resource === undefined) return undefined;
        resources.set(name, resource);
      } else {
        resources.set(name, this.options.cache.staticResource(state.typeUrl, name));
      }
    }
    return resources;
  }

  /** Every resource the subscription names that exists now, by name. */
  private async current(state: DeltaTypeState): Promise<Map<string, XdsResource>> {
    const names = new Set([...state.names].filter(isServiceName));
    if (state.wildcard) for (const name of await this.options.cache.serviceNames()) names.add(name);
    const resources = new Map<string, XdsResource>();
    for (const name of [...names].sort()) {
      if (state.typeUrl === TYPE_URL.clusterLoadAssignment) {
        try {
          resources.set(name, await this.options.cache.endpoints(name, this.node?.locality));
        } catch (error) {
          // Not sent now: the cache retries its read until one succeeds, and that pushes it.
          this.options.log.warn({ err: error, service: name }, 'xds: endpoints unavailable');
        }
      } else {
        resources.set(name, this.options.cache.staticResource(state.typeUrl, name));
      }
    }
    return resources;
  }

  private respond(state: DeltaTypeState): void | Promise<void> {
    const now = this.currentNow(state);
    if (now) return this.send(state, now);
    return this.current(state).then((current) => {
      if (!this.closed) this.send(state, current);
    });
  }

  private send(state: DeltaTypeState, current: ReadonlyMap<string, XdsResource>): void {
    const resources = [...current.values()].filter((resource) => state.held.get(resource.name) !== resource.version);
    const removed: string[] = [];
    // What the client holds that no longer exists (a service gone from the wildcard set).
    for (const name of state.held.keys()) {
      if (current.has(name)) continue;
      if (state.names.has(name) && isServiceName(name) && state.typeUrl === TYPE_URL.clusterLoadAssignment) continue;
      removed.push(name);
    }
    // Names asked for that can never exist (not a service name): said once, so the client does not wait.
    for (const name of state.names) {
      if (!isServiceName(name) && !state.toldMissing.has(name) && !state.held.has(name)) removed.push(name);
    }
    if (resources.length === 0 && removed.length === 0) return;
    for (const resource of resources) state.held.set(resource.name, resource.version);
    for (const name of removed) {
      state.held.delete(name);
      if (state.names.has(name)) state.toldMissing.add(name);
    }
    for (const resource of resources) state.toldMissing.delete(resource.name);
    const systemVersion = resourceSetVersion(current.values());
    const nonce = `d${this.id}-${++this.nonceCounter}`;
    state.systemVersionSent = systemVersion;
    state.nonceSent = nonce;
    state.versionOfNonce.set(nonce, systemVersion);
    if (state.versionOfNonce.size > NONCES_REMEMBERED) {
      const oldest = state.versionOfNonce.keys().next().value;
      if (oldest !== undefined) state.versionOfNonce.delete(oldest);
    }
    this.transport.send({
      system_version_info: systemVersion,
      resources,
      type_url: state.typeUrl,
      removed_resources: removed.sort(),
      nonce,
    });
    this.options.stats.xds('push');
  }
}
