/** What `GET /readyz` answers: ready, or why not. */
export type ReadinessReport =
  { readonly status: 'ready' } | { readonly status: 'unavailable'; readonly reason: string };

/** Where in its life the process is: only `serving` can be ready. */
export type ReadinessPhase = 'starting' | 'serving' | 'draining';

export interface ReadinessOptions {
  /** Resolves when storage answers, throws when it does not (the store's `ping`). */
  readonly probe: () => Promise<void>;
  /** Monotonic milliseconds; real time by default (tests move it by hand). */
  readonly now?: () => number;
  readonly probeIntervalMs?: number;
  readonly probeTimeoutMs?: number;
}

/**
 * A storage result is reused for this long, so however many load balancers and replicas of
 * Kubernetes probe every second, storage sees at most one call per replica per interval.
 */
const PROBE_INTERVAL_MS = 2_000;
/**
 * A probe not answered within this long counts as unreachable: under the 3 s that load balancers
 * commonly give a health check, and under DYNAMODB_TIMEOUT_MS's default, so a hanging storage
 * gives a 503 with its reason instead of a probe that times out with none.
 */
const PROBE_TIMEOUT_MS = 2_000;

interface ProbeResult {
  readonly at: number;
  /** Why storage is unreachable; undefined when it answered. */
  readonly error: string | undefined;
}

/**
 * Whether this process should be sent traffic: not while starting (listeners not all bound),
 * not while draining (shutdown began), not while storage is unreachable. Storage is probed on
 * demand, at most once per interval, and concurrent checks share one probe.
 */
export class Readiness {
  private current: ReadinessPhase = 'starting';
  private last: ProbeResult | undefined;
  private inFlight: Promise<ProbeResult> | undefined;
  private readonly now: () => number;
  private readonly probeIntervalMs: number;
  private readonly probeTimeoutMs: number;

  constructor(private readonly options: ReadinessOptions) {
    this.now = options.now ?? (() => performance.now());
    this.probeIntervalMs = options.probeIntervalMs ?? PROBE_INTERVAL_MS;
    this.probeTimeoutMs = options.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
  }

  get phase(): ReadinessPhase {
    return this.current;
  }

  /** Every listener is bound: from now on readiness follows storage. */
  markStarted(): void {
    if (this.current === 'starting') this.current = 'serving';
  }

  /** Shutdown began: unavailable from now on, for good. */
  markDraining(): void {
    this.current = 'draining';
  }

  async check(): Promise<ReadinessReport> {
    if (this.current === 'starting') return { status: 'unavailable', reason: 'starting: not every listener is up yet' };
    if (this.current === 'draining') {
      return { status: 'unavailable', reason: 'draining: shutting down; send new requests to another replica' };
    }
    const storage = await this.storage();
    // Shutdown may have begun while storage was being asked.
    if (this.phase === 'draining') return this.check();
    return storage.error === undefined
      ? { status: 'ready' }
      : { status: 'unavailable', reason: `storage unreachable: ${storage.error}` };
  }

  private storage(): Promise<ProbeResult> {
    const last = this.last;
    if (last && this.now() - last.at < this.probeIntervalMs) return Promise.resolve(last);
    this.inFlight ??= this.probeOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async probeOnce(): Promise<ProbeResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.probeTimeoutMs} ms`)), this.probeTimeoutMs);
    });
    let error: string | undefined;
    try {
      await Promise.race([this.options.probe(), timeout]);
    } catch (failure) {
      error = failure instanceof Error ? failure.message : String(failure);
    } finally {
      clearTimeout(timer);
    }
    this.last = { at: this.now(), error };
    return this.last;
  }
}
