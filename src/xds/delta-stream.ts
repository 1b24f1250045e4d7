import { TYPE_URL, type ResourceTypeUrl } from './protos.js';
import { isServiceName, type XdsResource } from './resources.js';
import { MAX_RESOURCE_NAMES, setVersion, Subscription } from './subscription.js';
import {
  ProtocolStream,
  StreamError,
  type ProtocolRequest,
  type ProtocolResponse,
  type ProtocolTransport,
} from './protocol-stream.js';

/** The fields of an `envoy.service.discovery.v3.DeltaDiscoveryRequest` the server reads. */
export interface DeltaDiscoveryRequest extends ProtocolRequest {
  readonly resource_names_subscribe: readonly string[];
  readonly resource_names_unsubscribe: readonly string[];
  /** What a reconnecting client already holds: name -> version (first request of a type only). */
  readonly initial_resource_versions: Readonly<Record<string, string>>;
}

/** A response to write: the transport encodes it as a `DeltaDiscoveryResponse`. */
export interface DeltaDiscoveryResponse extends ProtocolResponse {
  readonly system_version_info: string;
  readonly removed_resources: readonly string[];
}

/** How a delta stream reaches its client; implemented over a grpc-js duplex call, or by tests. */
export type DeltaStreamTransport = ProtocolTransport<DeltaDiscoveryResponse>;

export type DeltaStreamKind = 'delta-ads' | 'delta-eds';

/** A delta subscription also remembers which names the client was told do not exist, and the version of each nonce. */
class DeltaSubscription extends Subscription {
  /** Names the client was told do not exist, so it is not told again until they do. */
  readonly toldMissing = new Set<string>();
  /** System version of each nonce still unanswered, so an ACK names the version it accepts. */
  readonly versionOfNonce = new Map<string, string>();

  protected override dropped(name: string): void {
    this.toldMissing.delete(name);
  }
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
export class XdsDeltaStream extends ProtocolStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse, DeltaSubscription> {
  protected handle(request: DeltaDiscoveryRequest): void | Promise<void> {
    this.noteNode(request.node);
    const typeUrl = this.typeOf(request.type_url, 'xds: delta request for an unsupported type ignored');
    if (typeUrl === undefined) return;
    const subscribe = request.resource_names_subscribe;
    const unsubscribe = request.resource_names_unsubscribe;
    if (subscribe.length + unsubscribe.length > MAX_RESOURCE_NAMES) {
      throw new StreamError(`too many resource names in one request (> ${MAX_RESOURCE_NAMES})`, 3);
    }
    const first = !this.types.has(typeUrl);
    const state = this.subscriptionOf(typeUrl);
    if (first) {
      for (const [name, version] of Object.entries(request.initial_resource_versions ?? {})) {
        if (state.returned.size >= MAX_RESOURCE_NAMES) break;
        state.returned.set(name, version);
      }
    }
    this.recordAnswer(state, request);
    const changed = state.update(subscribe, unsubscribe, first);
    // A request that only ACKs or NACKs is not answered: the client holds what it was sent.
    if (first || changed) return this.respond(state, first);
  }

  /** An ACK or NACK of an earlier response: recorded for the admin view and the counters. */
  private recordAnswer(state: DeltaSubscription, request: DeltaDiscoveryRequest): void {
    const nonce = request.response_nonce;
    if (nonce === '') return;
    const version = state.versionOfNonce.get(nonce);
    if (version === undefined) return; // stale or unknown: a newer response crossed it
    state.versionOfNonce.delete(nonce);
    if (request.error_detail) {
      const message = 'xds: client rejected a delta response (NACK)';
      this.nacked(state, nonce, request.error_detail, state.versionAcked ?? '', message);
    } else {
      state.versionAcked = version;
    }
  }

  /**
   * Sends the resources whose version differs from what the client holds, and the names it
   * holds that no longer exist or were asked for and never can, if any.
   */
  protected send(
    state: DeltaSubscription,
    current: readonly XdsResource[],
    _initial: boolean,
    names: readonly string[] | undefined,
  ): void {
    const resources = current.filter((resource) => state.returned.get(resource.name) !== resource.version);
    const removed: string[] = [];
    const existing = new Set(current.map((resource) => resource.name));
    const endpoints = state.typeUrl === TYPE_URL.clusterLoadAssignment;
    // What the client holds that no longer exists (a service gone from the wildcard set).
    for (const name of state.returned.keys()) {
      if (existing.has(name)) continue;
      if (state.names.has(name) && isServiceName(name) && endpoints) continue;
      removed.push(name);
    }
    // Names asked for that can never exist (not a service name): said once, so the client does not wait.
    for (const name of state.names) {
      if (!isServiceName(name) && !state.toldMissing.has(name) && !state.returned.has(name)) removed.push(name);
    }
    if (resources.length === 0 && removed.length === 0) return;
    for (const resource of resources) state.returned.set(resource.name, resource.version);
    for (const name of removed) {
      state.returned.delete(name);
      if (state.names.has(name)) state.toldMissing.add(name);
    }
    for (const resource of resources) state.toldMissing.delete(resource.name);
    const systemVersion = setVersion(current, names);
    const nonce = this.nextNonce('d');
    state.versionSent = systemVersion;
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

  protected newSubscription(typeUrl: ResourceTypeUrl, onChange: () => void): DeltaSubscription {
    return new DeltaSubscription(typeUrl, this.options.cache, onChange);
  }
}
