import { InvalidInputError, NotFoundError } from '../errors.js';
import { isExpired } from './expiry.js';
import type { HostStore } from './host-store.js';
import { instanceKey, instanceKeyOf, type InstanceKeyMode } from './instance-keys.js';
import type { Host } from './model.js';

export interface LiveInstancesOptions {
  readonly store: Pick<HostStore, 'get' | 'listByService'>;
  readonly instanceKey: InstanceKeyMode;
  /** Milliseconds a host lives without a written heartbeat (HOST_TTL plus HEARTBEAT_WRITE_INTERVAL). */
  readonly hostLifetimeMs: number;
}

/**
 * Which stored instances an operator's address names, for delete, weight and status: in `ip`
 * mode the one host at the IP (with a port, only when it listens on that port, else a 400); in
 * `ip_port` mode with a port the one instance, without every instance at the IP. The IP arrives
 * canonical (parsed at the edge, ip-address.ts).
 */
export class LiveInstances {
  constructor(private readonly options: LiveInstancesOptions) {}

  /**
   * The keys to remove for the address, live or expired. When the address is one key (an IP in
   * `ip` mode, ip:port in `ip_port` mode) that key, with no read first; otherwise the keys of
   * the stored instances there (none when nothing is).
   */
  async keysAt(service: string, ip: string, port: number | undefined): Promise<string[]> {
    const mode = this.options.instanceKey;
    if ((mode === 'ip') === (port === undefined)) return [instanceKey(mode, ip, port ?? 0)];
    return (await this.storedAt(service, ip, port)).map((host) => instanceKeyOf(mode, host));
  }

  /**
   * Writes each live instance at the address with `write` (given its key and stored record) and
   * returns the records written and what each write answered. A 404 when no live instance is
   * there or no write found its record (removed meanwhile).
   */
  async writeLive<T>(
    service: string,
    ip: string,
    port: number | undefined,
    now: number,
    write: (key: string, host: Host) => Promise<T | undefined>,
  ): Promise<Array<{ readonly before: Host; readonly after: T }>> {
    const live = (await this.storedAt(service, ip, port)).filter(
      (host) => !isExpired(host, now, this.options.hostLifetimeMs),
    );
    const written: Array<{ readonly before: Host; readonly after: T }> = [];
    for (const host of live) {
      const after = await write(instanceKeyOf(this.options.instanceKey, host), host);
      if (after !== undefined) written.push({ before: host, after });
    }
    if (written.length === 0) throw new NotFoundError('Host not found');
    return written;
  }

  /** The stored instances at the address (expired ones included); a 400 for a port the host at `ip` does not listen on (`ip` mode). */
  private async storedAt(service: string, ip: string, port: number | undefined): Promise<readonly Host[]> {
    const mode = this.options.instanceKey;
    if (mode === 'ip' || port !== undefined) {
      const host = await this.options.store.get(service, instanceKey(mode, ip, port ?? 0));
      if (host === undefined) return [];
      if (port !== undefined && host.port !== port) {
        throw new InvalidInputError(
          `Host ${ip} of service '${service}' listens on port ${host.port}, not ${port} (INSTANCE_KEY=ip keeps one instance per IP).`,
        );
      }
      return [host];
    }
    const { hosts } = await this.options.store.listByService(service);
    return hosts.filter((host) => host.ip_address === ip);
  }
}
