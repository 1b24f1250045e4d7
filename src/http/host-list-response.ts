import type { HostSnapshot } from '../hosts/host-lists.js';
import { effectiveStatus, sortedKeys, type Host } from '../hosts/model.js';

/**
 * The v1 GET body, byte for byte what the original's Flask `jsonify` wrote: keys sorted at
 * every depth. Bytes are memoised per snapshot and each host's JSON per record, so a read
 * whose hosts have not changed costs no serialisation at all.
 */
export class HostListEncoder {
  private readonly bodies = new WeakMap<HostSnapshot, Buffer>();
  private readonly hostJson = new WeakMap<Host, string>();
  /** The same with the effective `status` as its last key (sorted: it follows `service_repo_name`, precedes `tags`). */
  private readonly hostJsonWithStatus = new WeakMap<Host, string>();
  private readonly envJson: string;

  constructor(env: string) {
    this.envJson = JSON.stringify(env);
  }

  /**
   * `{"env": …, "hosts": […], "<keyName>": <keyValue>}`. An empty list is one snapshot shared by
   * every name without hosts, so its body is made per call (small, and never kept: names
   * nobody registered must not fill memory).
   */
  encode(snapshot: HostSnapshot, keyName: 'service' | 'service_repo_name', keyValue: string): Buffer {
    if (snapshot.hosts.length === 0)
      return Buffer.from(`{"env":${this.envJson},"hosts":[],"${keyName}":${JSON.stringify(keyValue)}}`);
    const memo = this.bodies.get(snapshot);
    if (memo) return memo;
    const parts = snapshot.listsStatus
      ? snapshot.hosts.map((host) => this.encodeHostWithStatus(host))
      : snapshot.hosts.map((host) => this.encodeHost(host));
    const body = Buffer.from(
      `{"env":${this.envJson},"hosts":[${parts.join(',')}],"${keyName}":${JSON.stringify(keyValue)}}`,
    );
    this.bodies.set(snapshot, body);
    return body;
  }

  private encodeHost(host: Host): string {
    let json = this.hostJson.get(host);
    if (json === undefined) {
      json =
        `{"ip_address":${JSON.stringify(host.ip_address)},"last_check_in":${JSON.stringify(host.last_check_in)},` +
        `"port":${JSON.stringify(host.port)},"revision":${JSON.stringify(host.revision)},"service":${JSON.stringify(host.service)},` +
        `"service_repo_name":${JSON.stringify(host.service_repo_name)},"tags":${JSON.stringify(sortedKeys(host.tags))}}`;
      this.hostJson.set(host, json);
    }
    return json;
  }

  private encodeHostWithStatus(host: Host): string {
    let json = this.hostJsonWithStatus.get(host);
    if (json === undefined) {
      json =
        `{"ip_address":${JSON.stringify(host.ip_address)},"last_check_in":${JSON.stringify(host.last_check_in)},` +
        `"port":${JSON.stringify(host.port)},"revision":${JSON.stringify(host.revision)},"service":${JSON.stringify(host.service)},` +
        `"service_repo_name":${JSON.stringify(host.service_repo_name)},"status":${JSON.stringify(effectiveStatus(host))},` +
        `"tags":${JSON.stringify(sortedKeys(host.tags))}}`;
      this.hostJsonWithStatus.set(host, json);
    }
    return json;
  }
}

/** Set while expiry protection keeps hosts that missed their heartbeats in the list. */
export const EXPIRY_PROTECTION_HEADER = 'x-discovery-expiry-protection';

/** The headers of a host-list answer besides its content type and length: ETag, and the expiry-protection and stale markers. */
export function hostListHeaders(snapshot: HostSnapshot): Record<string, string> & { etag: string } {
  const headers: Record<string, string> & { etag: string } = { etag: `W/"${snapshot.version}"` };
  if (snapshot.protectedHosts > 0)
    headers[EXPIRY_PROTECTION_HEADER] = `${snapshot.protectedHosts} hosts past HOST_TTL kept`;
  if (snapshot.staleAgeSeconds !== undefined) {
    // Storage is unavailable and this is the last list this replica read; Age says how old it is.
    headers['x-discovery-stale'] = 'true';
    headers.age = String(snapshot.staleAgeSeconds);
  }
  return headers;
}
