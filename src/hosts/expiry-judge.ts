import type { Clock } from '../clock.js';
import { StorageUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { RegistryStats } from '../stats.js';
import { selectLive, type ExpiryRules, type Selection } from './expiry.js';
import type { ReadRetries } from './freshness.js';
import type { HostEvents } from './host-events.js';
import type { HostSnapshot } from './host-lists.js';
import type { HostStore } from './host-store.js';
import { heartbeatWriteKey, type HeartbeatWrites } from './heartbeat-writes.js';
import { instanceKeyOf, type InstanceKeyMode } from './instance-keys.js';
import type { Host } from './model.js';

/** Who keeps the expiry deadlines of the hosts this process wrote (set by compose.ts under the change feed). */
export interface ExpiryOwner {
  /** The host under `key` (of `service`) is expired after `expiresAt` unless tracked again. */
  track(key: string, service: string, expiresAt: number): void;
  /** The host was removed. */
  forget(key: string): void;
  close(): void;
}

/** While expiry protection holds a service, its hosts are judged again at least this far apart. */
const PROTECTION_RECHECK_MIN_MS = 5_000;

export interface ExpiryJudgeOptions {
  readonly store: Pick<HostStore, 'deleteIfCheckInIs'>;
  readonly instanceKey: InstanceKeyMode;
  readonly clock: Clock;
  readonly stats: RegistryStats;
  readonly log: Log;
  readonly rules: ExpiryRules;
  /** Where a removed expired host is published, as a local change. */
  readonly events: HostEvents;
  /** Where failed reads of due hosts wait to be retried. */
  readonly retries: ReadRetries;
  /**
   * Reads `service` afresh from storage (not from a kept list) and judges it by the same rules
   * as every read: HostService's read, passed in so this module does not import it.
   */
  readonly reread: (service: string) => Promise<HostSnapshot>;
  /** Heartbeats not written yet, forgotten when their instance is removed. */
  readonly heartbeatWrites?: HeartbeatWrites;
  /** Set under the change feed: see `ExpiryOwner`. */
  readonly expiryOwner?: ExpiryOwner;
}

/**
 * Decides which stored hosts are removed for missing heartbeats, and removes them: applies the
 * expiry rules (expiry.ts) to what a read found, tracks which services expiry protection holds
 * (logging its start and end once each), and, under the change feed, judges the hosts this
 * process wrote when their deadline passes.
 */
export class ExpiryJudge {
  /** Services under expiry protection now, so its start and end are logged once each. */
  private readonly protectedNow = new Set<string>();
  /** Services with a due host being read now, so many hosts due at once cost one read. */
  private readonly dueReads = new Set<string>();
  private closed = false;

  constructor(private readonly options: ExpiryJudgeOptions) {}

  /** Services expiry protection holds now, sorted. */
  protectedServices(): string[] {
    return [...this.protectedNow].sort();
  }

  /**
   * Applies the expiry rules to stored hosts: logs where protection starts and ends, counts the
   * reads it holds for, and removes the expired hosts no protection keeps. Each removal is
   * conditional on the `last_check_in` judged expired, so a heartbeat that lands meanwhile
   * survives; a failed removal is logged, not thrown (the host stays out, the next read retries).
   */
  async judge(hosts: readonly Host[], now: number): Promise<Selection> {
    const { log, stats, rules } = this.options;
    const selection = selectLive(hosts, now, rules);
    for (const judged of selection.services) {
      const { service, hosts: total, expired } = judged;
      if (judged.protected) {
        if (!this.protectedNow.has(service)) {
          this.protectedNow.add(service);
          log.warn(
            { service, expired, hosts: total, threshold: rules.protection?.threshold },
            'expiry protection active: too many hosts of this service stopped heartbeating at once; keeping them',
          );
        }
        stats.expiryProtected(service);
      } else if (this.protectedNow.delete(service)) {
        log.info({ service, expired, hosts: total }, 'expiry protection ended: heartbeats are back');
      }
    }
    if (selection.toSweep.length > 0) await Promise.all(selection.toSweep.map((host) => this.sweep(host)));
    return selection;
  }

  /** Judges the stored hosts of one service; protection ends for a service with none left (it is never judged again). */
  async judgeService(service: string, hosts: readonly Host[], now: number): Promise<Selection> {
    const selection = await this.judge(hosts, now);
    if (selection.hosts.length === 0 && this.protectedNow.delete(service))
      this.options.log.info({ service }, 'expiry protection ended: the service has no hosts left');
    return selection;
  }

  /** What this process keeps about one instance's writes, dropped when the instance is removed. */
  forgetInstance(service: string, key: string): void {
    const writeKey = heartbeatWriteKey(service, key);
    this.options.heartbeatWrites?.forget(writeKey);
    this.options.expiryOwner?.forget(writeKey);
  }

  /**
   * Hosts whose check-in this process wrote are due (the expiry owner says so): their services
   * are read afresh and judged by the same rules as every read (expiry protection included),
   * which removes the expired ones and so reports them. A read that fails is never given up on:
   * nothing else reads a quiet service under the change feed, so it is retried (ReadRetries)
   * until one succeeds.
   */
  judgeDue(services: ReadonlySet<string>): void {
    if (this.closed) return;
    const { retries, log, clock } = this.options;
    for (const service of services) {
      if (this.dueReads.has(service)) continue;
      this.dueReads.add(service);
      const key = `due:${service}`;
      this.options
        .reread(service)
        .then((snapshot) => {
          // Served stale while storage is down: nothing was judged, so try again.
          if (snapshot.staleAgeSeconds !== undefined) throw new StorageUnavailableError('storage unavailable');
          retries.succeeded(key);
          // Expiry protection keeps expired hosts for now: judged again when the snapshot says
          // (its next re-check, or the end of the protection), so they go when it ends.
          if (this.protectedNow.has(service) && Number.isFinite(snapshot.nextExpiryAt)) {
            const delay = Math.max(PROTECTION_RECHECK_MIN_MS, snapshot.nextExpiryAt - clock.now());
            setTimeout(() => this.judgeDue(new Set([service])), delay).unref();
          }
        })
        .catch((error: unknown) => {
          if (this.closed) return;
          log.debug({ err: error, service }, 'could not judge hosts due to expire; retrying');
          retries.failed(key, () => this.judgeDue(new Set([service])), error);
        })
        .finally(() => this.dueReads.delete(service));
    }
  }

  /** Stops judging due hosts and the expiry owner's timers. */
  close(): void {
    this.closed = true;
    this.options.expiryOwner?.close();
  }

  private async sweep(host: Host): Promise<void> {
    const { store, instanceKey, stats, log, events } = this.options;
    try {
      const key = instanceKeyOf(instanceKey, host);
      const removed = await store.deleteIfCheckInIs(host.service, key, host.last_check_in);
      if (!removed) return;
      this.forgetInstance(host.service, key);
      stats.hostRemoved(host.service, 'expired');
      log.debug(
        { service: host.service, ip: host.ip_address, last_check_in: host.last_check_in },
        'expired host removed',
      );
      events.publishLocalChange(host.service);
    } catch (error) {
      log.warn({ err: error, service: host.service, ip: host.ip_address }, 'could not remove expired host');
    }
  }
}
