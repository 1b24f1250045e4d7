import { parseCheckIn, type Host } from './model.js';

/**
 * Expiry protection: when more than `threshold` of one service's hosts are past HOST_TTL at
 * once (and the service has at least `minHosts`), that looks like a partition between the hosts
 * and discovery rather than hosts dying, so the hosts are kept and served, for at most `maxSeconds`
 * past their expiry, until heartbeats return. Eureka's self-preservation, but per service.
 */
export interface ExpiryProtection {
  readonly enabled: boolean;
  readonly threshold: number;
  readonly minHosts: number;
  readonly maxSeconds: number;
}

/** The rules that decide which stored hosts are still served. */
export interface ExpiryRules {
  readonly hostTtlMs: number;
  readonly protection?: ExpiryProtection;
}

/** While protection holds, a protected list is re-judged this often, so it ends soon after heartbeats return. */
export const PROTECTION_RECHECK_MS = 1000;

/** Epoch ms after which `host` is expired unless it heartbeats again. */
export function expiresAt(host: Host, hostTtlMs: number): number {
  return parseCheckIn(host.last_check_in) + hostTtlMs;
}

export function isExpired(host: Host, now: number, hostTtlMs: number): boolean {
  return now > expiresAt(host, hostTtlMs);
}

/** Whether protection holds for a service with `total` stored hosts of which `expired` are past HOST_TTL. */
export function protectionHolds(protection: ExpiryProtection | undefined, total: number, expired: number): boolean {
  return (
    protection !== undefined &&
    protection.enabled &&
    total >= protection.minHosts &&
    total > 0 &&
    expired / total > protection.threshold
  );
}

/** How one service's hosts were judged. */
export interface ServiceJudgement {
  readonly service: string;
  readonly hosts: number;
  readonly expired: number;
  /** Protection holds for the service: its expired hosts (up to `maxSeconds` past expiry) are served. */
  readonly protected: boolean;
}

export interface Selection {
  /** The hosts to serve: live ones and the expired ones protection keeps, in storage order. */
  readonly hosts: Host[];
  readonly protectedHosts: number;
  /** Epoch ms until which this selection stays right without new writes (Infinity when it has no hosts). */
  readonly validUntil: number;
  /** Expired hosts no protection keeps: to be removed from storage. */
  readonly toSweep: Host[];
  /** One per service met, in the order first met. */
  readonly services: ServiceJudgement[];
}

/**
 * Judges stored hosts (of one service, or of the several a repo spans) at `now`: which are
 * served, which are to be removed, and for how long that holds. Pure: logging, counting and the
 * removals themselves are the caller's.
 */
export function selectLive(hosts: readonly Host[], now: number, rules: ExpiryRules): Selection {
  const byService = new Map<string, { live: Host[]; expired: Host[] }>();
  for (const host of hosts) {
    let group = byService.get(host.service);
    if (!group) byService.set(host.service, (group = { live: [], expired: [] }));
    (isExpired(host, now, rules.hostTtlMs) ? group.expired : group.live).push(host);
  }
  const selected: Host[] = [];
  const toSweep: Host[] = [];
  const services: ServiceJudgement[] = [];
  let protectedHosts = 0;
  let validUntil = Infinity;
  for (const [service, { live, expired }] of byService) {
    selected.push(...live);
    for (const host of live) validUntil = Math.min(validUntil, expiresAt(host, rules.hostTtlMs));
    const total = live.length + expired.length;
    const holds = protectionHolds(rules.protection, total, expired.length);
    services.push({ service, hosts: total, expired: expired.length, protected: holds });
    if (!holds || rules.protection === undefined) {
      toSweep.push(...expired);
      continue;
    }
    const limitMs = rules.hostTtlMs + rules.protection.maxSeconds * 1000;
    let kept = 0;
    for (const host of expired) {
      if (now - parseCheckIn(host.last_check_in) > limitMs) {
        toSweep.push(host);
        continue;
      }
      selected.push(host);
      kept++;
      validUntil = Math.min(validUntil, parseCheckIn(host.last_check_in) + limitMs);
    }
    protectedHosts += kept;
    if (kept > 0) validUntil = Math.min(validUntil, now + PROTECTION_RECHECK_MS);
  }
  return { hosts: selected, protectedHosts, validUntil, toSweep, services };
}
