import type { Clock } from '../clock.js';
import { InvalidInputError, StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { RegistryStats } from '../stats.js';
import { isExpired } from './expiry.js';
import type { ExpiryJudge } from './expiry-judge.js';
import type { HostEvents } from './host-events.js';
import type { HostStore } from './host-store.js';
import { instanceKeyOf, type InstanceKeyMode } from './instance-keys.js';
import { LiveInstances } from './live-instances.js';
import { effectiveStatus, type InstanceStatus, type Requester } from './model.js';

export interface OperatorWritesOptions {
  readonly store: HostStore;
  readonly instanceKey: InstanceKeyMode;
  /** Milliseconds a host lives without a written heartbeat (HOST_TTL plus HEARTBEAT_WRITE_INTERVAL). */
  readonly hostLifetimeMs: number;
  readonly expiry: Pick<ExpiryJudge, 'forgetInstance'>;
  readonly events: Pick<HostEvents, 'publishLocalChange'>;
  readonly clock: Clock;
  readonly stats: RegistryStats;
  readonly log: Log;
}

/**
 * An operator's writes to instances named by address: delete, weight and status override. The
 * address arrives parsed at the edge (a canonical IP, a port); which instances it names is
 * LiveInstances' rule. Each write is audited and published as a local change.
 */
export class OperatorWrites {
  private readonly instances: LiveInstances;

  constructor(private readonly options: OperatorWritesOptions) {
    this.instances = new LiveInstances(options);
  }

  /**
   * Removes the instances at an address (`ip` canonical, parsed at the edge): with `port`, the
   * one instance `ip:port` (in `ip` mode only when the host at `ip` listens on `port`); without,
   * every instance at `ip` (in `ip` mode there is one). A 400 when nothing is there, as the
   * original answered.
   */
  async deregister(service: string, ip: string, requester?: Requester, port?: number): Promise<void> {
    let removed = 0;
    for (const key of await this.instances.keysAt(service, ip, port)) {
      this.options.expiry.forgetInstance(service, key);
      if (await this.options.store.delete(service, key)) removed++;
    }
    const address = port === undefined ? ip : `${ip} port ${port}`;
    if (removed === 0) throw new InvalidInputError(`Host ${address} of service '${service}' not found.`);
    for (let count = 0; count < removed; count++) this.options.stats.hostRemoved(service, 'deleted');
    audit(
      this.options.log,
      requester,
      { service, ip, ...(port === undefined ? {} : { port }), instances: removed },
      'host deregistered',
    );
    this.options.events.publishLocalChange(service);
  }

  /**
   * Sets `tags.load_balancing_weight` on the live instances at `ip` (one with `port`, in
   * `ip` mode only when the host listens on it), or on every live host of the service when
   * `ip` is undefined. Only the tag is written, so a heartbeat landing meanwhile is kept.
   */
  async setWeight(
    service: string,
    ip: string | undefined,
    weight: number,
    requester?: Requester,
    port?: number,
  ): Promise<void> {
    const now = this.options.clock.now();
    if (ip !== undefined) {
      await this.instances.writeLive(service, ip, port, now, (key) =>
        this.options.store.updateTags(service, key, { load_balancing_weight: weight }),
      );
      audit(
        this.options.log,
        requester,
        { service, ip, ...(port === undefined ? {} : { port }), weight },
        'weight set',
      );
      this.options.events.publishLocalChange(service);
      return;
    }
    const { hosts } = await this.options.store.listByService(service);
    const live = hosts.filter((host) => !isExpired(host, now, this.options.hostLifetimeMs));
    // Nothing to weight is no error: the original answered 204 and created nothing.
    if (live.length === 0) return;
    let updated = 0;
    try {
      for (const host of live) {
        await this.options.store.updateTags(service, instanceKeyOf(this.options.instanceKey, host), {
          load_balancing_weight: weight,
        });
        updated++;
      }
    } catch (error) {
      // One write per host, so a failure part-way leaves the first ones weighted: what readers
      // see must follow what was written, and the answer says so. Retrying sets the same weight.
      if (updated > 0) {
        audit(
          this.options.log,
          requester,
          { service, weight, hosts: updated, of: live.length },
          'weight set on part of the service',
        );
        this.options.events.publishLocalChange(service);
      }
      if (error instanceof StorageUnavailableError) {
        throw new StorageUnavailableError(
          `${error.message} The weight was set on ${updated} of ${live.length} hosts; retry to set it on all.`,
          { cause: error },
        );
      }
      throw error;
    }
    audit(this.options.log, requester, { service, weight, hosts: updated }, 'weight set on every live host');
    this.options.events.publishLocalChange(service);
  }

  /**
   * Sets the operator's status override on the live instances at `ip` (one with `port`,
   * in `ip` mode only when the host listens on it; `status` undefined clears it). Only the
   * override is written, so heartbeats keep it, and it wins over the host's own word until
   * cleared. An unknown or expired address is a 404 (one that is no address is the edge's 404), as for a weight; a port the host at that
   * IP does not listen on (`ip` mode) is a 400, as for a weight.
   */
  async setStatusOverride(
    service: string,
    ip: string,
    port: number | undefined,
    status: InstanceStatus | undefined,
    requester?: Requester,
  ): Promise<void> {
    const written = await this.instances.writeLive(service, ip, port, this.options.clock.now(), (key) =>
      this.options.store.setStatusOverride(service, key, status),
    );
    audit(
      this.options.log,
      requester,
      { service, ip, ...(port === undefined ? {} : { port }), status: status ?? null, instances: written.length },
      status === undefined ? 'status override cleared' : 'status override set',
    );
    if (written.some(({ before, after }) => effectiveStatus(before) !== effectiveStatus(after)))
      this.options.events.publishLocalChange(service);
  }
}

/** One info line per write that changes what is registered: what, and who asked. */
export function audit(
  log: Log,
  requester: Requester | undefined,
  what: Record<string, unknown>,
  message: string,
): void {
  log.info(
    requester === undefined
      ? what
      : { ...what, reqId: requester.requestId, client: requester.address, role: requester.role() },
    message,
  );
}
