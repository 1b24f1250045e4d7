import type { Clock } from '../clock.js';
import type { RegistryStats } from '../stats.js';
import type { ExpiryProtection } from './expiry.js';
import { HeartbeatRate } from './heartbeat-rate.js';

/** What expiry protection is set to, and which services it holds now (for the dashboard). */
export interface ExpiryProtectionStatus extends ExpiryProtection {
  /** Services whose last read kept hosts past HOST_TTL, sorted. */
  readonly protectedServices: readonly string[];
}

export interface HostReadoutsOptions {
  readonly clock: Clock;
  readonly stats: RegistryStats;
  readonly expiryProtection?: ExpiryProtection;
  /** The services expiry protection holds now, sorted (ExpiryJudge knows). */
  readonly protectedServices: () => readonly string[];
}

/**
 * What an operator reads of this process's heartbeat traffic (the dashboard's server panel and
 * the heartbeat counters): heartbeats taken in the last minute, heartbeats counted as failed
 * (refused by a front end or by storage), and expiry protection's state. Read-only for the
 * dashboard; written by the heartbeat path.
 */
export class HostReadouts {
  private readonly rate = new HeartbeatRate();

  constructor(private readonly options: HostReadoutsOptions) {}

  /** A heartbeat of `service` was recorded at `now` (epoch ms), written or not. */
  heartbeatTaken(service: string, now: number): void {
    this.options.stats.heartbeat(service, 'success');
    this.rate.record(now);
  }

  /**
   * A heartbeat of `service` failed: a front end refused it before it reached the domain (its
   * request check or parsing), or storage did.
   */
  heartbeatFailed(service: string): void {
    this.options.stats.heartbeat(service, 'failure');
  }

  /** Heartbeats this process recorded in the last minute. */
  heartbeatsLastMinute(): number {
    return this.rate.lastMinute(this.options.clock.now());
  }

  /** Expiry protection's settings and the services it holds now. */
  expiryProtectionStatus(): ExpiryProtectionStatus {
    const settings = this.options.expiryProtection ?? { enabled: false, threshold: 0, minHosts: 0, maxSeconds: 0 };
    return {
      enabled: settings.enabled,
      threshold: settings.threshold,
      minHosts: settings.minHosts,
      maxSeconds: settings.maxSeconds,
      protectedServices: this.options.protectedServices(),
    };
  }
}
