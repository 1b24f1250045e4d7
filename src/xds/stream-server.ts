import {
  ProtocolStream,
  StreamError,
  type ClientStatus,
  type ProtocolRequest,
  type ProtocolResponse,
  type ProtocolTransport,
  type StreamServerOptions,
} from './protocol-stream.js';
import { TYPE_URL, type ResourceTypeUrl } from './protos.js';
import type { XdsResource } from './resources.js';
import { MAX_RESOURCE_NAMES, setVersion, Subscription } from './subscription.js';
import { XdsDeltaStream, type DeltaStreamKind, type DeltaStreamTransport } from './delta-stream.js';

export {
  StreamError,
  type ClientStatus,
  type NodeInfo,
  type StreamServerOptions,
  type TypeStatus,
} from './protocol-stream.js';

/** The fields of an `envoy.service.discovery.v3.DiscoveryRequest` the server reads. */
export interface DiscoveryRequest extends ProtocolRequest {
  readonly version_info: string;
  readonly resource_names: readonly string[];
}

/** A response to write: the transport encodes it as a `DiscoveryResponse`. */
export interface DiscoveryResponse extends ProtocolResponse {
  readonly version_info: string;
}

/** How a stream reaches its client; implemented over a grpc-js duplex call, or by tests. */
export type StreamTransport = ProtocolTransport<DiscoveryResponse>;

export type StreamKind = 'ads' | 'eds';

/** Types whose every response must list every subscribed resource (an omitted one counts as deleted). */
const FULL_STATE_TYPES = new Set<string>([TYPE_URL.listener, TYPE_URL.cluster]);

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
    return this.opened(new XdsStream(id, kind, transport, this.options, () => this.streams.delete(id)));
  }

  /** The same for a stream of the incremental protocol (DeltaAggregatedResources, DeltaEndpoints). */
  openDeltaStream(kind: DeltaStreamKind, transport: DeltaStreamTransport): XdsDeltaStream {
    const id = this.nextStreamId++;
    return this.opened(new XdsDeltaStream(id, kind, transport, this.options, () => this.streams.delete(id)));
  }

  /** Keeps `stream` among the open ones; while closing, ends it at once instead. */
  private opened<Stream extends XdsStream | XdsDeltaStream>(stream: Stream): Stream {
    if (this.closing) stream.shutdown();
    else this.streams.set(stream.id, stream);
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

/** One client stream of the state-of-the-world protocol. Requests and pushes run one at a time, in arrival order. */
export class XdsStream extends ProtocolStream<DiscoveryRequest, DiscoveryResponse, Subscription> {
  protected newSubscription(typeUrl: ResourceTypeUrl, onChange: () => void): Subscription {
    return new Subscription(typeUrl, this.options.cache, onChange);
  }

  protected handle(request: DiscoveryRequest): void | Promise<void> {
    this.noteNode(request.node);
    const typeUrl = this.typeOf(request.type_url, 'xds: request for an unsupported resource type ignored');
    if (typeUrl === undefined) return;
    if (request.resource_names.length > MAX_RESOURCE_NAMES) {
      throw new StreamError(`too many resource names (${request.resource_names.length} > ${MAX_RESOURCE_NAMES})`, 3);
    }
    const first = !this.types.has(typeUrl);
    const state = this.subscriptionOf(typeUrl);
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
        this.nacked(state, nonce, request.error_detail, request.version_info, 'xds: client rejected a response (NACK)');
      } else {
        // The string sent, not the request's copy of it, is what 10,000 streams then share.
        state.versionAcked = request.version_info === state.versionSent ? state.versionSent : request.version_info;
      }
    }
    const changed = state.replace(request.resource_names, first);
    // An ACK or NACK that keeps the subscription has nothing to answer: what changes later is
    // pushed by the cache's watchers, and the client keeps what it was sent.
    if (nonce !== '' && !changed) return;
    return this.respond(state, nonce === '');
  }

  /**
   * Sends what the client lacks: every resource for Listener and Cluster (and for any type's
   * first answer), only what changed for EDS and RDS; nothing when the client has it all.
   */
  protected send(
    state: Subscription,
    desired: readonly XdsResource[],
    initial: boolean,
    names: readonly string[] | undefined,
  ): void {
    let resources: XdsResource[];
    if (initial || FULL_STATE_TYPES.has(state.typeUrl)) {
      const version = setVersion(desired, names);
      if (!initial && version === state.versionSent && sameVersions(state.returned, desired)) return;
      resources = [...desired];
      state.returned = new Map(resources.map((resource) => [resource.name, resource.version]));
      state.versionSent = version;
    } else {
      // EDS and RDS: only what changed need be sent; the client keeps the rest.
      resources = [];
      for (const resource of desired) {
        if (state.returned.get(resource.name) !== resource.version) resources.push(resource);
      }
      if (resources.length === 0) return;
      for (const resource of resources) state.returned.set(resource.name, resource.version);
      state.versionSent = setVersion(desired, names);
    }
    const version = state.versionSent;
    state.nonceSent = this.nextNonce('');
    this.transport.send({ version_info: version, resources, type_url: state.typeUrl, nonce: state.nonceSent });
    this.options.stats.xds('push');
  }
}

function sameVersions(sent: ReadonlyMap<string, string>, desired: readonly XdsResource[]): boolean {
  if (sent.size !== desired.length) return false;
  for (const resource of desired) if (sent.get(resource.name) !== resource.version) return false;
  return true;
}
