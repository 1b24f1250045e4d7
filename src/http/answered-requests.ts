import type { Log } from '../logger.js';
import type { Metrics } from '../metrics.js';

/**
 * The one place an answered request is accounted for, whichever transport answered it: its
 * Prometheus observation (by route template, never the raw URL), the access log line at info
 * when ACCESS_LOG is on, and otherwise, at debug level, the same line at debug. The Fastify
 * hook (`recordAnswer`) and the fast paths both call `record`.
 */
export class AnsweredRequests {
  constructor(
    private readonly metrics: Metrics | undefined,
    private readonly log: Log,
    private readonly lines: { readonly accessLog: boolean; readonly debug: boolean },
  ) {}

  /** Whether there is anything to record, so the hook is left out when there is not. */
  get enabled(): boolean {
    return this.metrics !== undefined || this.lines.accessLog || this.lines.debug;
  }

  record(
    method: string,
    route: string,
    url: string | undefined,
    status: number,
    ms: number,
    requestId: string,
    client: string | undefined,
  ): void {
    this.metrics?.observeRequest(method, route, status, ms / 1000);
    if (this.lines.accessLog) this.log.info({ method, url, status, ms, reqId: requestId, client }, 'request');
    else if (this.lines.debug) this.log.debug({ method, url, status, ms, reqId: requestId, client }, 'request');
  }
}
