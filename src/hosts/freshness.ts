import type { Log } from '../logger.js';

/** The first retry of a failed read comes this soon; each failure after doubles it, up to RETRY_MAX_MS. */
export const RETRY_MIN_MS = 250;
/**
 * The longest a view whose read failed waits for its next try while storage keeps failing, so
 * once storage answers again a view is right within this (plus one read), even if nothing tells
 * it storage is back. Each failing view costs one read per this interval: for 1,000 watched
 * services, 500 reads a second at most against a store that is failing anyway.
 */
export const RETRY_MAX_MS = 2_000;

interface Pending {
  readonly retry: () => void;
  readonly delayMs: number;
  /** Set while the retry waits; undefined while it runs. */
  timer: NodeJS.Timeout | undefined;
}

/**
 * The one freshness rule for everything a process keeps that it derived from storage (xDS
 * resources, the expiry deadlines it owns, the service names wildcard subscribers see): a
 * view whose read failed keeps what it last read right (a failed read never replaces what was
 * last known good) and stays marked here until a read succeeds. Its read is retried with
 * back-off (RETRY_MIN_MS doubling to RETRY_MAX_MS) while storage fails, and at once when storage
 * answers another read (`answered`), so a view is never left waiting for a change or a poll that
 * may not come.
 *
 * Each key is one view of one thing (`xds:<service>`, `due:<service>`); a retry ends in
 * `succeeded(key)`, `failed(key, ...)` again, or `forget(key)` when the view is gone.
 */
export class ReadRetries {
  private readonly pending = new Map<string, Pending>();
  private lastAnsweredRunAt = -Infinity;
  private closed = false;

  constructor(private readonly log: Log) {}

  /** The read behind `key` failed: `retry` runs after a back-off, and again after each failure, until `succeeded(key)`. */
  failed(key: string, retry: () => void, error?: unknown): void {
    if (this.closed) return;
    const previous = this.pending.get(key);
    if (previous?.timer) clearTimeout(previous.timer);
    const delayMs = previous ? Math.min(RETRY_MAX_MS, previous.delayMs * 2) : RETRY_MIN_MS;
    if (this.pending.size === 0)
      this.log.warn(
        { err: error, view: key },
        'storage reads are failing: views keep what they last read and are read again until storage answers',
      );
    const entry: Pending = { retry, delayMs, timer: undefined };
    this.pending.set(key, entry);
    this.schedule(key, entry, delayMs);
  }

  /** The read behind `key` succeeded: nothing more to retry. */
  succeeded(key: string): void {
    const entry = this.pending.get(key);
    if (!entry) return;
    if (entry.timer) clearTimeout(entry.timer);
    this.pending.delete(key);
    if (this.pending.size === 0) this.log.info({}, 'storage reads succeed again: every view is read afresh');
  }

  /** The view behind `key` is gone (nobody watches it): its retry is dropped. */
  forget(key: string): void {
    const entry = this.pending.get(key);
    if (entry?.timer) clearTimeout(entry.timer);
    this.pending.delete(key);
  }

  /**
   * Storage answered a read: every waiting retry runs now instead of at the end of its back-off
   * (at most once per RETRY_MIN_MS, so a store that answers some reads and fails others is not
   * hammered). Cheap when nothing waits: called on every successful read.
   */
  answered(): void {
    if (this.pending.size === 0 || this.closed) return;
    const now = performance.now();
    if (now - this.lastAnsweredRunAt < RETRY_MIN_MS) return;
    this.lastAnsweredRunAt = now;
    for (const [key, entry] of this.pending) {
      if (entry.timer === undefined) continue;
      clearTimeout(entry.timer);
      this.schedule(key, entry, 0);
    }
  }

  /** Views marked now (for tests, metrics and the admin view). */
  get size(): number {
    return this.pending.size;
  }

  /** Whether the view behind `key` is waiting for a successful read. */
  isPending(key: string): boolean {
    return this.pending.has(key);
  }

  close(): void {
    this.closed = true;
    for (const entry of this.pending.values()) if (entry.timer) clearTimeout(entry.timer);
    this.pending.clear();
  }

  private schedule(key: string, entry: Pending, delayMs: number): void {
    entry.timer = setTimeout(() => {
      if (this.pending.get(key) !== entry || this.closed) return;
      entry.timer = undefined;
      try {
        entry.retry();
      } catch (error) {
        this.log.error({ err: error, view: key }, 'retrying a failed read threw');
      }
    }, delayMs);
    entry.timer.unref();
  }
}

/**
 * Something a process keeps per service that it built from a read of storage, asked by the
 * change feed's anti-entropy check whether it was read after a change it knows of.
 */
export interface KeptView {
  /** Epoch ms (this process's clock) when the read the kept `service` was built from began; undefined when not kept. */
  keptReadAt(service: string): number | undefined;
  /** Every service kept now. */
  keptServices(): Iterable<string>;
}

/**
 * How this process keeps its views of storage right, chosen once (compose.ts) and asked by every
 * view instead of each carrying its own flag:
 * - `poll`: nobody says what changed (a store of one process sees its own writes; DynamoDB with
 *   CHANGE_FEED=false): views re-read on their own timers (xDS polls its watched services and
 *   times each service's next expiry).
 * - `feed`: replicas share the store and the change feed says what changed: views re-read on its
 *   word alone, the feed's anti-entropy check catches a view it finds behind the log, and each
 *   host's expiry is judged by the replica that wrote its check-in.
 * Either way a failed read is retried through `retries` until one succeeds.
 */
export interface Freshness {
  readonly kind: 'poll' | 'feed';
  readonly retries: ReadRetries;
}
