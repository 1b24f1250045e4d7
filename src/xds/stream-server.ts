import {
  ProtocolStream,
  StreamError,
  type ClientStatus,
  type NodeInfo,
  type StreamServerOptions,
  type TypeStatus,
  type WatchedType,
} from './protocol-stream.js';
import { TYPE_URL, type ResourceTypeUrl } from './protos.js';
import { isServiceName, resourceSetVersion, type XdsResource } from './resources.js';
import { WatchLimitError } from './snapshot-cache.js';
import { XdsDeltaStream, type DeltaStreamKind, type DeltaStreamTransport } from './delta-stream.js';

export {
  StreamError,
  type ClientStatus,
  type NodeInfo,
  type StreamServerOptions,
  type TypeStatus,
} from './protocol-stream.js';

/** The fields of an `envoy.service.discovery.v3.DiscoveryRequest` the server reads. */
export interface DiscoveryRequest {
  readonly version_info: string;
  readonly node?: NodeInfo | null;
  readonly resource_names: readonly string[];
  readonly type_url: string;
  readonly response_nonce: string;
  readonly error_detail?: { readonly code?: number; readonly message?: string } | null;
}

/** A response to write: the transport encodes it as a `DiscoveryResponse`. */
export interface DiscoveryResponse {
  readonly version_info: string;
  readonly resources: readonly XdsResource[];
  readonly type_url: ResourceTypeUrl;
  readonly nonce: string;
}

/** How a stream reaches its client; implemented over a grpc-js duplex call, or by tests. */
export interface StreamTransport {
  /** Where the client connects from, for logs and the admin view. */
  readonly peer: string;
  send(response: DiscoveryResponse): void;
  /** Ends the stream: cleanly (OK) without an error, else with the error's status. */
  end(error?: StreamError): void;
}

export type StreamKind = 'ads' | 'eds';

const SUPPORTED_TYPES: readonly ResourceTypeUrl[] = [
  TYPE_URL.listener,
  TYPE_URL.routeConfiguration,
  TYPE_URL.cluster,
  TYPE_URL.clusterLoadAssignment,
];
/** Types whose every response must list every subscribed resource (an omitted one counts as deleted). */
const FULL_STATE_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);
/** Types a client may subscribe to as a whole; for the others an empty name list means "nothing". */
const WILDCARD_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);
/** A request naming more resources than this is refused, so one client cannot make the server build unbounded sets. */
const MAX_RESOURCE_NAMES = 10_000;

/**
 * The state-of-the-world xDS protocol over any transport, for ADS (every type on one stream) and
 * EDS alone. Per stream and type it keeps the subscription, the version and nonce last sent,
 * the version last ACKed and the last NACK. It answers:
 * - the first request of a type on a stream, always (a client that reconnects gets the state);
 * - a change of the subscribed content (a push from the cache, or new names), once per change;
 * - never an ACK or a NACK whose content is unchanged: clients ACK every response, so answering
 *   them would loop; after a NACK the client keeps its last good version until content changes.
 * A request whose nonce is not the last one sent is stale (a newer response crossed it) and is
 * ignored. Versions are hashes of content, so replicas and restarts agree on them.
 */
export class XdsStreamServer {
  private readonly streams = new Map<number, XdsStream | XdsDeltaStream>();
  private nextStreamId = 1;
  private closing = false;

  constructor(private readonly options: StreamServerOptions) {}

  /** Starts the protocol for one new stream; the caller feeds it requests and tells it when the client left. */
  openStream(kind: StreamKind, transport: StreamTransport): XdsStream {
    const id = this.nextStreamId++;
    const stream = new XdsStream(id, kind, transport, this.options, () => this.streams.delete(id));
    if (this.closing) {
      stream.shutdown();
      return stream;
    }
    this.streams.set(id, stream);
    return stream;
  }

  /** The same for a stream of the incremental protocol (DeltaAggregatedResources, DeltaEndpoints). */
  openDeltaStream(kind: DeltaStreamKind, transport: DeltaStreamTransport): XdsDeltaStream {
    const id = this.nextStreamId++;
    const stream = new XdsDeltaStream(id, kind, transport, this.options, () => this.streams.delete(id));
    if (this.closing) {
      stream.shutdown();
      return stream;
    }
    this.streams.set(id, stream);
    return stream;
  }

  /** Every open stream, oldest first. */
  clients(): ClientStatus[] {
    return [...this.streams.values()].map((stream) => stream.status());
  }

  /** Ends every stream cleanly (clients reconnect, to another replica if this one is going away) and refuses new ones. */
  closeAll(): void {
    this.closing = true;
    for (const stream of [...this.streams.values()]) stream.shutdown();
  }
}

interface TypeState extends WatchedType {
  readonly typeUrl: ResourceTypeUrl;
  wildcard: boolean;
  names: Set<string>;
  /** The names that can be services, sorted: what `desired` reads, computed when the subscription changes. */
  serviceNames: readonly string[];
  /** Name -> version of what the client holds after the last response (EDS: only the names sent). */
  sent: Map<string, string>;
  versionSent: string | undefined;
  nonceSent: string | undefined;
  versionAcked: string | undefined;
  nackCount: number;
  lastNack: TypeStatus['last_nack'];
  readonly onChange: () => void;
  unwatchNames: (() => void) | undefined;
  /** A push is queued and not yet started; later pushes fold into it. */
  pushQueued: boolean;
}

/** One client stream of the state-of-the-world protocol. Requests and pushes run one at a time, in arrival order. */
export class XdsStream extends ProtocolStream<DiscoveryRequest, TypeState> {
  private nonceCounter = 0;

  constructor(
    id: number,
    kind: StreamKind,
    private readonly transport: StreamTransport,
    options: StreamServerOptions,
    onClosed: () => void,
  ) {
    super(id, kind, transport, options, onClosed);
  }

  protected typeStatus(state: TypeState): TypeStatus {
    return {
      type_url: state.typeUrl,
      wildcard: state.wildcard,
      resource_names: [...state.names].sort(),
      version_sent: state.versionSent ?? null,
      nonce_sent: state.nonceSent ?? null,
      version_acked: state.versionAcked ?? null,
      up_to_date: state.versionSent !== undefined && state.versionAcked === state.versionSent,
      nack_count: state.nackCount,
      last_nack: state.lastNack,
    };
  }

  protected handle(request: DiscoveryRequest): void | Promise<void> {
    this.noteNode(request.node);
    const typeUrl = this.typeOf(request);
    if (typeUrl === undefined) return;
    if (request.resource_names.length > MAX_RESOURCE_NAMES) {
      throw new StreamError(`too many resource names (${request.resource_names.length} > ${MAX_RESOURCE_NAMES})`, 3);
    }
    let state = this.types.get(typeUrl);
    const first = state === undefined;
    if (!state) {
      const created: TypeState = {
        typeUrl,
        wildcard: false,
        names: new Set(),
        serviceNames: [],
        sent: new Map(),
        versionSent: undefined,
        nonceSent: undefined,
        versionAcked: undefined,
        nackCount: 0,
        lastNack: null,
        onChange: () => this.push(created),
        unwatchNames: undefined,
        pushQueued: false,
      };
      state = created;
      this.types.set(typeUrl, state);
    }
    const nonce = request.response_nonce;
    if (nonce !== '' && nonce !== state.nonceSent) {
      this.options.log.debug(
        { stream: this.id, type: typeUrl, nonce, current: state.nonceSent },
        'xds: stale request ignored',
      );
      return;
    }
    if (nonce !== '') {
      if (request.error_detail) {
        state.nackCount++;
        state.lastNack = {
          error: request.error_detail.message ?? '',
          nonce,
          version_kept: request.version_info,
          at: new Date().toISOString(),
        };
        this.options.stats.xds('nack');
        this.options.log.warn(
          {
            stream: this.id,
            node: this.node?.id,
            type: typeUrl,
            nonce,
            versionKept: request.version_info,
            error: request.error_detail.message,
          },
          'xds: client rejected a response (NACK)',
        );
      } else {
        // The string sent, not the request's copy of it, is what 10,000 streams then share.
        state.versionAcked = request.version_info === state.versionSent ? state.versionSent : request.version_info;
      }
    }
    const changed = this.subscribe(state, request.resource_names, first);
    // An ACK or NACK that keeps the subscription has nothing to answer: what changes later is
    // pushed by the cache's watchers, and the client keeps what it was sent.
    if (nonce !== '' && !changed) return;
    return this.respond(state, nonce === '');
  }

  private typeOf(request: DiscoveryRequest): ResourceTypeUrl | undefined {
    const typeUrl = request.type_url === '' && this.kind === 'eds' ? TYPE_URL.clusterLoadAssignment : request.type_url;
    if (this.kind === 'eds' && typeUrl !== TYPE_URL.clusterLoadAssignment) {
      throw new StreamError(`the EDS service serves only ${TYPE_URL.clusterLoadAssignment}, not '${typeUrl}'`, 3);
    }
    if (!(SUPPORTED_TYPES as readonly string[]).includes(typeUrl)) {
      // Nothing of that type exists here; the client's own timeout tells it so.
      this.options.log.info(
        { stream: this.id, type: typeUrl },
        'xds: request for an unsupported resource type ignored',
      );
      return undefined;
    }
    // The constant, not the request's copy: one string for every stream.
    return SUPPORTED_TYPES.find((known) => known === typeUrl);
  }

  protected watchedEndpoints(state: TypeState): Iterable<string> {
    return state.typeUrl === TYPE_URL.clusterLoadAssignment ? state.serviceNames : [];
  }

  /**
   * Applies a request's names. An empty list on the first request of a wildcard type, or the
   * name `*`, subscribes to everything; a later empty list keeps a wildcard and otherwise means
   * "nothing" (the legacy rule Envoy and gRPC follow). True when the subscription changed.
   */
  private subscribe(state: TypeState, requested: readonly string[], first: boolean): boolean {
    const wildcardType = WILDCARD_TYPES.has(state.typeUrl);
    const wildcard = wildcardType && (requested.includes('*') || (requested.length === 0 && (first || state.wildcard)));
    // Clients repeat their names on every ACK: the common case changes nothing.
    if (!first && wildcard === state.wildcard && sameNames(requested, state.names)) return false;
    const names = new Set(requested.filter((name) => name !== '*'));
    if (wildcard && !state.unwatchNames) {
      state.unwatchNames = this.options.cache.watchServiceNames(state.onChange);
    } else if (!wildcard && state.unwatchNames) {
      state.unwatchNames();
      state.unwatchNames = undefined;
    }
    state.wildcard = wildcard;
    let kept = names;
    if (state.typeUrl === TYPE_URL.clusterLoadAssignment) {
      // Watched: exactly state.serviceNames (the names that can be services).
      const cache = this.options.cache;
      for (const name of state.serviceNames) if (!names.has(name)) cache.unwatchEndpoints(name, state.onChange);
      const added: string[] = [];
      for (const name of names) {
        if (state.names.has(name) || !isServiceName(name)) continue;
        try {
          cache.watchEndpoints(name, state.onChange);
        } catch (error) {
          // The names kept are dropped with the stream; these are not in them.
          for (const watched of added) cache.unwatchEndpoints(watched, state.onChange);
          if (error instanceof WatchLimitError) throw new StreamError(error.message, 8);
          throw error;
        }
        added.push(name);
      }
      // The cache's copy of each name, not this request's: every stream then holds the same strings.
      kept = new Set([...names].map((name) => cache.knownName(name)));
    }
    // A name the client dropped is forgotten, so subscribing to it again sends it again.
    for (const name of state.sent.keys()) if (!kept.has(name) && !wildcard) state.sent.delete(name);
    state.names = kept;
    state.serviceNames = sharedNames([...kept].filter(isServiceName).sort());
    return true;
  }

  /** The cache changed something this type subscribes to: answer once, after queued requests. */
  private push(state: TypeState): void {
    if (this.closed || state.pushQueued) return;
    state.pushQueued = true;
    void this.enqueue(() => {
      state.pushQueued = false;
      return this.respond(state, false);
    });
  }

  /**
   * What the subscription names, when every resource is at hand (not a wildcard, every service
   * read already): the common case, answered without waiting. Undefined otherwise.
   */
  private desiredNow(state: TypeState): XdsResource[] | undefined {
    if (state.wildcard) return undefined;
    const names = state.serviceNames;
    const resources = new Array<XdsResource>(names.length);
    for (let index = 0; index < names.length; index++) {
      const name = names[index]!;
      if (state.typeUrl === TYPE_URL.clusterLoadAssignment) {
        const resource = this.options.cache.endpointsNow(name, this.node?.locality);
        if (resource === undefined) return undefined;
        resources[index] = resource;
      } else {
        resources[index] = this.options.cache.staticResource(state.typeUrl, name);
      }
    }
    return resources;
  }

  /** Every resource the subscription names that exists now, sorted by name. */
  private async desired(state: TypeState): Promise<XdsResource[]> {
    const names = new Set(state.serviceNames);
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
    return [...resources.values()];
  }

  private respond(state: TypeState, initial: boolean): void | Promise<void> {
    const now = this.desiredNow(state);
    if (now) return this.send(state, now, initial, state.serviceNames);
    return this.desired(state).then((desired) => {
      if (!this.closed) this.send(state, desired, initial, undefined);
    });
  }

  /**
   * Sends what the client lacks of `desired` (sorted by name), if anything. `names`: the shared
   * subscription `desired` was read for, in order, when it holds every one of them.
   */
  private send(
    state: TypeState,
    desired: readonly XdsResource[],
    initial: boolean,
    names: readonly string[] | undefined,
  ): void {
    let resources: XdsResource[];
    if (initial || FULL_STATE_TYPES.has(state.typeUrl)) {
      const version = setVersion(desired, names);
      if (!initial && version === state.versionSent && sameVersions(state.sent, desired)) return;
      resources = [...desired];
      state.sent = new Map(resources.map((resource) => [resource.name, resource.version]));
      state.versionSent = version;
    } else {
      // EDS and RDS: only what changed need be sent; the client keeps the rest.
      resources = [];
      for (const resource of desired) if (state.sent.get(resource.name) !== resource.version) resources.push(resource);
      if (resources.length === 0) return;
      for (const resource of resources) state.sent.set(resource.name, resource.version);
      state.versionSent = setVersion(desired, names);
    }
    const version = state.versionSent;
    state.nonceSent = `${this.id}-${++this.nonceCounter}`;
    this.transport.send({ version_info: version, resources, type_url: state.typeUrl, nonce: state.nonceSent });
    this.options.stats.xds('push');
  }
}

/** Whether a request's names are exactly the names subscribed (a repeated or `*` name counts as a change). */
function sameNames(requested: readonly string[], names: ReadonlySet<string>): boolean {
  if (requested.length !== names.size) return false;
  for (const name of requested) if (!names.has(name)) return false;
  return true;
}

function sameVersions(sent: ReadonlyMap<string, string>, desired: readonly XdsResource[]): boolean {
  if (sent.size !== desired.length) return false;
  for (const resource of desired) if (sent.get(resource.name) !== resource.version) return false;
  return true;
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

/** The last set sent for each shared subscription, and its version. */
const lastSetOf = new WeakMap<
  readonly string[],
  { readonly resources: readonly XdsResource[]; readonly version: string }
>();

/** `resourceSetVersion(desired)`; when `desired` was read for the shared subscription `names` and is the set its last caller had, that caller's result. */
function setVersion(desired: readonly XdsResource[], names: readonly string[] | undefined): string {
  if (names === undefined) return resourceSetVersion(desired);
  const last = lastSetOf.get(names);
  if (
    last &&
    last.resources.length === desired.length &&
    last.resources.every((resource, index) => resource === desired[index])
  ) {
    return last.version;
  }
  const version = resourceSetVersion(desired);
  lastSetOf.set(names, { resources: desired, version });
  return version;
}
