import type { Clock } from '../clock.js';

/**
 * Past this many tracked hosts the one due soonest is dropped (its service is judged when next
 * read or re-synced instead): the map follows what this process wrote, and must stay bounded
 * even if that is far more than the 100,000 hosts the registry is sized for.
 */
export const OWNED_EXPIRIES_MAX = 500_000;

/** Expiry is "now > check-in + TTL": judging a little after the instant finds the host expired. */
const DUE_MARGIN_MS = 20;
/** setTimeout's longest delay; a later deadline is re-armed when this fires. */
const MAX_TIMER_MS = 2_147_483_647;

export interface OwnedExpiriesOptions {
  readonly clock: Clock;
  /** Called with the services that have a host due; the caller reads and judges them. */
  readonly onDue: (services: ReadonlySet<string>) => void;
  readonly max?: number;
}

/**
 * When replicas share a store and learn of changes from the change feed instead of re-reading
 * what they serve, a host that stops heartbeating changes nothing anyone would read: someone has
 * to look when it is due. This process looks after the hosts whose last check-in it wrote (it
 * alone knows that cheaply): one deadline per host, renewed with each write, and one timer for
 * the soonest. A host whose heartbeats moved to another replica is that replica's from its next
 * write on; here its deadline costs one read that finds it live.
 *
 * Deadlines are check-in + a fixed TTL, and check-ins are written in time order, so the map's
 * insertion order (a renewed key moves to the end) is deadline order: the head is the soonest.
 */
export class OwnedExpiries {
  private readonly deadlines = new Map<string, { readonly service: string; readonly dueAt: number }>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: OwnedExpiriesOptions) {}

  /** The host under `key` (of `service`) is expired after `expiresAt` unless tracked again. */
  track(key: string, service: string, expiresAt: number): void {
    if (this.closed) return;
    this.deadlines.delete(key);
    this.deadlines.set(key, { service, dueAt: expiresAt + DUE_MARGIN_MS });
    if (this.deadlines.size > (this.options.max ?? OWNED_EXPIRIES_MAX)) {
      const soonest = this.deadlines.keys().next();
      if (!soonest.done) this.deadlines.delete(soonest.value);
    }
    if (this.timer === undefined) this.arm();
  }

  /** The host was removed (or its deadline is someone else's business now). */
  forget(key: string): void {
    this.deadlines.delete(key);
  }

  /** Hosts tracked now (for tests and the admin view). */
  get size(): number {
    return this.deadlines.size;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.deadlines.clear();
  }

  private arm(): void {
    const head = this.deadlines.values().next();
    if (head.done || this.closed) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, head.value.dueAt - this.options.clock.now()));
    this.timer = setTimeout(() => this.fire(), delay);
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    const now = this.options.clock.now();
    const due = new Set<string>();
    for (const [key, deadline] of this.deadlines) {
      if (deadline.dueAt > now) break;
      this.deadlines.delete(key);
      due.add(deadline.service);
    }
    this.arm();
    if (due.size > 0) this.options.onDue(due);
  }
}
