import { createHash } from 'node:crypto';
import type { HostSnapshot } from '../hosts/host-lists.js';
import { effectiveStatus, WEIGHT_MAX, WEIGHT_MIN, type Host } from '../hosts/model.js';
import { isName } from '../hosts/names.js';
import { TYPE_URL, encodeMessage, packAny, type ResourceTypeUrl } from './protos.js';

/**
 * One xDS resource ready to send: its name, a version derived from its encoded bytes (so two
 * replicas, or two builds of the same content, agree), and the bytes of its `google.protobuf.Any`
 * value. Immutable; shared by every stream that sends it.
 */
export interface XdsResource {
  readonly typeUrl: ResourceTypeUrl;
  readonly name: string;
  readonly version: string;
  readonly body: Uint8Array;
}

/** Weight of a host without a valid `tags.load_balancing_weight`. */
export const DEFAULT_ENDPOINT_WEIGHT = 1;
/** Envoy's default; the cluster needs one, discovery has no better value to offer. */
const CONNECT_TIMEOUT_SECONDS = 5;

/**
 * Whether `name` can name a service. Anything else (an `xdstp://` name, an empty or over-long
 * name) is an unknown resource: it is never sent, and a client waiting for it declares it missing.
 */
export function isServiceName(name: string): boolean {
  return isName(name);
}

/** `tags.load_balancing_weight` when it is an integer in WEIGHT_MIN..WEIGHT_MAX (a number or its decimal text), else 1: a record written before the bounds, or by a plugin store, still routes. */
export function endpointWeight(host: Host): number {
  const raw = host.tags.load_balancing_weight;
  const value = typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : raw;
  return typeof value === 'number' && Number.isInteger(value) && value >= WEIGHT_MIN && value <= WEIGHT_MAX
    ? value
    : DEFAULT_ENDPOINT_WEIGHT;
}

/** The metadata namespace Envoy's subset load balancer reads endpoint labels from. */
export const LB_METADATA_NAMESPACE = 'envoy.lb';
/** Longest tag value copied into endpoint metadata; a longer one is left out (labels are short, and every proxy holds them). */
export const LB_METADATA_VALUE_MAX = 256;

/**
 * The endpoint's labels for subset load balancing (`filter_metadata["envoy.lb"]`): `revision`,
 * then every tag whose value is a string (up to LB_METADATA_VALUE_MAX characters), a finite
 * number or a boolean, by its own key; objects, arrays and nulls are left out. `canary` is
 * always a boolean (a tag of `"true"` counts, as it always has). The host's `revision` wins
 * over a tag of that name. Keys are sorted, so equal hosts encode to equal bytes. Tags are at
 * most TAG_COUNT_MAX keys of bounded length, so the metadata is bounded too.
 */
export function lbMetadataFields(host: Host): Record<string, Record<string, unknown>> {
  // google.protobuf.Value's fields are spelt in camelCase by protobufjs's bundled copy.
  const fields: Record<string, Record<string, unknown>> = {};
  for (const key of Object.keys(host.tags).sort()) {
    if (key === 'revision' || key === 'canary') continue;
    const value = host.tags[key];
    if (typeof value === 'string') {
      if (value.length <= LB_METADATA_VALUE_MAX) fields[key] = { stringValue: value };
    } else if (typeof value === 'number') {
      if (Number.isFinite(value)) fields[key] = { numberValue: value };
    } else if (typeof value === 'boolean') {
      fields[key] = { boolValue: value };
    }
  }
  fields.canary = { boolValue: isCanary(host) };
  if (host.revision.length <= LB_METADATA_VALUE_MAX) fields.revision = { stringValue: host.revision };
  return Object.fromEntries(Object.entries(fields).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The endpoint's `health_status` for a served host: a `DRAINING` one is `DRAINING` (Envoy and
 * gRPC send it no new requests and let open ones finish), every other `HEALTHY`. An
 * `OUT_OF_SERVICE` host is not served at all (isServed).
 */
export function endpointHealth(host: Host): 'HEALTHY' | 'DRAINING' {
  return effectiveStatus(host) === 'DRAINING' ? 'DRAINING' : 'HEALTHY';
}

/** Whether a live host is an endpoint: every status but `OUT_OF_SERVICE`. */
export function isServed(host: Host): boolean {
  return effectiveStatus(host) !== 'OUT_OF_SERVICE';
}

function isCanary(host: Host): boolean {
  const canary = host.tags.canary;
  return canary === true || (typeof canary === 'string' && canary.trim().toLowerCase() === 'true');
}

/** The locality a host is served in: (`tags.region`, `tags.az`), each `''` when absent. */
export function hostLocality(host: Host): ProxyLocality {
  return { region: tagText(host, 'region'), zone: tagText(host, 'az') };
}

function tagText(host: Host, key: string): string {
  const value = host.tags[key];
  return typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value);
}

/**
 * The `ClusterLoadAssignment` of service `service` as a plain object (proto field names): one
 * locality per (`tags.region`, `tags.az`), sorted, each weighted with the sum of its hosts'
 * weights (gRPC clients drop a locality without a weight); one `LbEndpoint` per host at
 * `ip_address:port`, weighted with `tags.load_balancing_weight`; canary hosts carry
 * `metadata.filter_metadata["envoy.lb"].canary = true`. The snapshot holds only live hosts;
 * an `OUT_OF_SERVICE` one is left out and a `DRAINING` one is sent as `health_status: DRAINING`.
 *
 * With `near` (a proxy's locality, see `locality-classes.ts`), each locality also gets a
 * `priority`: the proxy's own zone first, then the rest of its region, then other regions,
 * numbered 0, 1, 2 over the ranks that have hosts (gRPC rejects a priority N without N - 1).
 * Without it every locality is at priority 0, which proto3 leaves out: today's bytes.
 */
export function clusterLoadAssignment(
  service: string,
  snapshot: HostSnapshot,
  near?: ProxyLocality,
): Record<string, unknown> {
  const localities = new Map<string, { region: string; zone: string; hosts: Host[] }>();
  for (const host of snapshot.hosts) {
    if (!isServed(host)) continue;
    const { region, zone } = hostLocality(host);
    const key = JSON.stringify([region, zone]);
    let locality = localities.get(key);
    if (!locality) {
      locality = { region, zone, hosts: [] };
      localities.set(key, locality);
    }
    locality.hosts.push(host);
  }
  const ordered = [...localities.values()].sort((a, b) =>
    a.region !== b.region ? (a.region < b.region ? -1 : 1) : a.zone < b.zone ? -1 : a.zone > b.zone ? 1 : 0,
  );
  const priorityOf = localityPriorities(ordered, near);
  return {
    cluster_name: service,
    endpoints: ordered.map((locality) => {
      let total = 0;
      const lbEndpoints = locality.hosts.map((host) => {
        const weight = endpointWeight(host);
        total += weight;
        const lbEndpoint: Record<string, unknown> = {
          // TCP is the default protocol; proto3 defaults are left out so the bytes match a re-encoding.
          endpoint: { address: { socket_address: { address: host.ip_address, port_value: host.port } } },
          health_status: endpointHealth(host),
          load_balancing_weight: { value: weight },
        };
        lbEndpoint.metadata = { filter_metadata: { [LB_METADATA_NAMESPACE]: { fields: lbMetadataFields(host) } } };
        return lbEndpoint;
      });
      const priority = priorityOf(locality);
      return {
        locality: { region: locality.region, zone: locality.zone },
        lb_endpoints: lbEndpoints,
        load_balancing_weight: { value: total },
        // Priority 0 is proto3's default: left out, so the bytes match today's.
        ...(priority > 0 ? { priority } : {}),
      };
    }),
  };
}

/** Where a proxy says it runs (its xDS `node.locality`), as the hosts' `tags.region` / `tags.az` name it. */
export interface ProxyLocality {
  readonly region: string;
  readonly zone: string;
}

/**
 * The priority of each locality for a proxy at `near`: rank 0 its own zone, 1 the rest of its
 * region, 2 every other region; then the ranks that occur are renumbered 0, 1, 2 in order, so
 * the priorities are contiguous whichever ranks are empty.
 */
function localityPriorities(
  localities: readonly { region: string; zone: string }[],
  near: ProxyLocality | undefined,
): (locality: { region: string; zone: string }) => number {
  if (!near) return () => 0;
  const rank = (locality: { region: string; zone: string }) =>
    locality.region !== near.region ? 2 : near.zone !== '' && locality.zone === near.zone ? 0 : 1;
  const present = [...new Set(localities.map(rank))].sort((a, b) => a - b);
  return (locality) => present.indexOf(rank(locality));
}

/**
 * The `Cluster` named `service`: endpoints by EDS over the same ADS stream, round robin (the
 * default `lb_policy`; gRPC clients run it under `xds_wrr_locality`, which honours locality
 * weights, while Envoy also honours each endpoint's weight).
 */
export function cluster(service: string): Record<string, unknown> {
  return {
    name: service,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: service },
    connect_timeout: { seconds: CONNECT_TIMEOUT_SECONDS },
    // lb_policy is left at its default, ROUND_ROBIN.
  };
}

/** The `RouteConfiguration` named `service`: every request to cluster `service`. */
export function routeConfiguration(service: string): Record<string, unknown> {
  return {
    name: service,
    virtual_hosts: [
      { name: service, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: service } }] },
    ],
  };
}

/**
 * The `Listener` named `service`, for proxyless gRPC clients dialling `xds:///service`: an
 * `api_listener` holding an `HttpConnectionManager` with the route configuration inline (no RDS
 * round trip) and the router filter, which gRPC requires as the last filter.
 */
export function listener(service: string): Record<string, unknown> {
  const httpConnectionManager = {
    stat_prefix: service,
    route_config: routeConfiguration(service),
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: packAny(TYPE_URL.router, {}) }],
  };
  return {
    name: service,
    api_listener: { api_listener: packAny(TYPE_URL.httpConnectionManager, httpConnectionManager) },
  };
}

/** Encodes a translated resource and derives its version from the bytes. */
export function toResource(typeUrl: ResourceTypeUrl, name: string, value: Record<string, unknown>): XdsResource {
  const body = encodeMessage(typeUrl, value);
  return Object.freeze({ typeUrl, name, version: contentVersion([body]), body });
}

/** The resource of type `typeUrl` that does not depend on hosts (Listener, RouteConfiguration, Cluster). */
export function staticResource(
  typeUrl: Exclude<ResourceTypeUrl, typeof TYPE_URL.clusterLoadAssignment>,
  service: string,
): XdsResource {
  switch (typeUrl) {
    case TYPE_URL.listener:
      return toResource(typeUrl, service, listener(service));
    case TYPE_URL.routeConfiguration:
      return toResource(typeUrl, service, routeConfiguration(service));
    case TYPE_URL.cluster:
      return toResource(typeUrl, service, cluster(service));
  }
}

/** Set versions kept; past this the memo starts again (a fleet has far fewer distinct subscriptions than streams). */
const SET_VERSION_MEMO_MAX = 4_096;
const setVersionMemo = new Map<string, string>();

/**
 * The version of a set of resources, in order: `contentVersion` of their `name:version`. Streams
 * with the same subscription ask for the same set, 10,000 times per change at scale, so the
 * hash is computed once per distinct set and content.
 */
export function resourceSetVersion(resources: Iterable<XdsResource>): string {
  let key = '';
  for (const resource of resources) key += `${resource.name}:${resource.version}\n`;
  let version = setVersionMemo.get(key);
  if (version === undefined) {
    if (setVersionMemo.size >= SET_VERSION_MEMO_MAX) setVersionMemo.clear();
    const hash = createHash('sha256');
    hash.update(key);
    version = hash.digest('base64url').slice(0, 16);
    setVersionMemo.set(key, version);
  }
  return version;
}

/** A short stable hash of some bytes or strings: the version of a resource or of a set of them. */
export function contentVersion(parts: readonly (Uint8Array | string)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) {
    hash.update(part);
    hash.update('\n');
  }
  return hash.digest('base64url').slice(0, 16);
}
