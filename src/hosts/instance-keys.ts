import { isIP } from 'node:net';
import { StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { ChangeLog } from './change-log.js';
import type { HeartbeatResult, HostStore, ServiceHosts } from './host-store.js';
import { PORT_MAX, PORT_MIN, type Heartbeat, type Host, type InstanceStatus } from './model.js';

/**
 * What makes an instance of a service distinct (INSTANCE_KEY). `ip`: one instance per IP, the
 * original's model (a heartbeat from a known IP updates it, whatever its port). `ip_port`: each
 * `ip:port` is an instance of its own, as Envoy sees endpoints, so a node runs several
 * instances of a service on different ports.
 */
export type InstanceKeyMode = 'ip' | 'ip_port';

export const INSTANCE_KEY_MODES: readonly InstanceKeyMode[] = ['ip', 'ip_port'];

/**
 * The key a store files an instance under, in the slot where the original kept the IP (the
 * DynamoDB range key `ip_address`, the InFile journal's `ip_address`): the IP itself in `ip`
 * mode; `ip:port` in `ip_port` mode, an IPv6 address in brackets (`[2001:db8::1]:8080`), so a
 * key says which mode wrote it and a bare IP never reads as an `ip_port` key.
 */
export function instanceKey(mode: InstanceKeyMode, ip: string, port: number): string {
  if (mode === 'ip') return ip;
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The key `host` is filed under in `mode`. */
export function instanceKeyOf(mode: InstanceKeyMode, host: Pick<Host, 'ip_address' | 'port'>): string {
  return instanceKey(mode, host.ip_address, host.port);
}

const PORT_SUFFIX = /^(.+):([0-9]{1,5})$/;

/**
 * What a stored key says: an IP alone (written in `ip` mode), an IP with its port (written in
 * `ip_port` mode), or neither (damage, or a writer that is not this service).
 */
export function parseInstanceKey(
  key: string,
):
  | { readonly mode: 'ip'; readonly ip: string }
  | { readonly mode: 'ip_port'; readonly ip: string; readonly port: number }
  | undefined {
  if (isIP(key) !== 0) return { mode: 'ip', ip: key };
  const match = PORT_SUFFIX.exec(key);
  if (!match) return undefined;
  const [, address = '', digits = ''] = match;
  const bracketed = address.startsWith('[') && address.endsWith(']');
  const ip = bracketed ? address.slice(1, -1) : address;
  // IPv6 only in brackets and IPv4 never: one spelling per key, so one instance has one key.
  if (isIP(ip) !== (bracketed ? 6 : 4)) return undefined;
  const port = Number(digits);
  if (port < PORT_MIN || port > PORT_MAX || String(port) !== digits) return undefined;
  return { mode: 'ip_port', ip, port };
}

/**
 * A store seen through `ip_port` keys: the wrapped store keeps records keyed by (`service`,
 * `ip_address`) as always, and this puts each instance's `ip:port` key in `ip_address` on the
 * way in and the IP back on the way out, so no backend (nor a plugin) has to know the modes.
 * Methods that address one record take its key (`instanceKey`). Records whose key is not an
 * `ip:port` key are passed through unchanged, for the domain's record check to refuse.
 */
export class PortKeyedStore implements HostStore {
  readonly currentChangeToken?: (service: string) => number | undefined;
  readonly ping?: () => Promise<void>;
  /** Change records name services, not instances: the wrapped store's log as it is. */
  readonly changeLog?: ChangeLog;

  constructor(private readonly inner: HostStore) {
    if (inner.currentChangeToken) this.currentChangeToken = (service) => inner.currentChangeToken?.(service);
    if (inner.ping) this.ping = () => inner.ping!();
    if (inner.changeLog) this.changeLog = inner.changeLog;
  }

  async heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    const { previous, current } = await this.inner.heartbeat({
      ...heartbeat,
      ip_address: instanceKeyOf('ip_port', heartbeat),
    });
    return { previous: previous && hostOfStored(previous), current: hostOfStored(current) };
  }

  async get(service: string, key: string): Promise<Host | undefined> {
    const host = await this.inner.get(service, key);
    return host && hostOfStored(host);
  }

  async listByService(service: string): Promise<ServiceHosts> {
    const listed = await this.inner.listByService(service);
    return { ...listed, hosts: listed.hosts.map(hostOfStored) };
  }

  async listByRepo(repo: string): Promise<readonly Host[]> {
    return (await this.inner.listByRepo(repo)).map(hostOfStored);
  }

  listServices(): Promise<readonly string[]> {
    return this.inner.listServices();
  }

  async delete(service: string, key: string): Promise<Host | undefined> {
    const host = await this.inner.delete(service, key);
    return host && hostOfStored(host);
  }

  deleteIfCheckInIs(service: string, key: string, lastCheckIn: string): Promise<boolean> {
    return this.inner.deleteIfCheckInIs(service, key, lastCheckIn);
  }

  async updateTags(service: string, key: string, tags: Readonly<Record<string, unknown>>): Promise<Host | undefined> {
    const host = await this.inner.updateTags(service, key, tags);
    return host && hostOfStored(host);
  }

  async setStatusOverride(service: string, key: string, status: InstanceStatus | undefined): Promise<Host | undefined> {
    const host = await this.inner.setStatusOverride(service, key, status);
    return host && hostOfStored(host);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A stored record with its `ip:port` key turned back into the IP; any other record as it is. */
export function hostOfStored<T extends Pick<Host, 'ip_address'>>(stored: T): T {
  const parsed = parseInstanceKey(stored.ip_address);
  return parsed?.mode === 'ip_port' ? { ...stored, ip_address: parsed.ip } : stored;
}

/** How many stored records start-up samples to tell which mode wrote them. */
const SAMPLED_SERVICES_MAX = 16;

/**
 * Refuses to start in `mode` on records written in the other one: an `ip` registry read in
 * `ip_port` mode would serve every old record beside its new `ip:port` twin until both expire,
 * and the other way round it would serve none of the `ip:port` records at all. Records are not
 * rewritten: hosts re-register within one heartbeat interval, so the remedy is an empty store
 * (a new table or APPLICATION_DIR) or the old mode, which the message says. Reads a few
 * services of the store as it is (not through PortKeyedStore).
 */
export async function checkStoredInstanceKeys(
  store: HostStore,
  mode: InstanceKeyMode,
  where: string,
  log: Log,
): Promise<void> {
  let sample: Array<{ service: string; hosts: readonly Host[] }>;
  try {
    const services = (await store.listServices()).slice(0, SAMPLED_SERVICES_MAX);
    sample = [];
    for (const service of services) sample.push({ service, hosts: (await store.listByService(service)).hosts });
  } catch (error) {
    // A replica may start while storage is down (it serves once storage is back, and says it
    // is not ready meanwhile); it cannot check then, and says so.
    if (!(error instanceof StorageUnavailableError)) throw error;
    log.warn(
      { err: error, instanceKey: mode },
      `storage unavailable at start-up: not checked that ${where} was written with INSTANCE_KEY=${mode}`,
    );
    return;
  }
  for (const { service, hosts } of sample) {
    const other = hosts.find((host) => {
      const written = parseInstanceKey(host.ip_address)?.mode;
      return written !== undefined && written !== mode;
    });
    if (!other) continue;
    const otherMode = mode === 'ip' ? 'ip_port' : 'ip';
    throw new InstanceKeyMismatchError(
      `INSTANCE_KEY=${mode}, but ${where} holds hosts written with INSTANCE_KEY=${otherMode} ` +
        `(service '${service}' has a host keyed '${other.ip_address}'). Start with INSTANCE_KEY=${otherMode}, ` +
        `or point this server at an empty store (a new table or APPLICATION_DIR): hosts register again with ` +
        `their next heartbeat (docs/instances.md).`,
    );
  }
}

/** Start-up refused: the store was written in the other INSTANCE_KEY mode. */
export class InstanceKeyMismatchError extends Error {
  override name = 'InstanceKeyMismatchError';
}
