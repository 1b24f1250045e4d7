import type { Log } from '../logger.js';
import type { Metrics } from '../metrics.js';

/**
 * The one place an answered request is accounted for, whichever transport answered it: its
 * Prometheus observation (by route template, never the raw URL) and, at debug level, its log
 * line. The Fastify hook (`recordAnswer`) and the fast paths both call `record`.
 */
export class AnsweredRequests {
  constructor(
    private readonly metrics: Metrics | undefined,
    private readonly log: Log,
    /** Write a line per request (debug level is on). */
    private readonly logRequests: boolean,
  ) {}

  /** Whether there is anything to record, so the hook is left out when there is not. */
  get enabled(): boolean {
    return this.metrics !== undefined || this.logRequests;
  }

  record(method: string, route: string, url: string | undefined, status: number, ms: number): void {
    this.metrics?.observeRequest(method, route, status, ms / 1000);
    if (this.logRequests) this.log.debug({ method, url, status, ms }, 'request');
  }
}
