import type { FastifyPluginAsync, RouteOptions } from 'fastify';
import { textBody } from './schemas.js';
import type { Metrics } from '../metrics.js';
import type { RoutePolicy } from './route-policy.js';

/**
 * Exports the request series of a described route at 0 from start-up: one per method and each
 * status it documents (its response schemas, and the 401/403 of its access when that is
 * enforced), so a rate or error ratio reads 0 instead of "no data" before the first request.
 * Statuses nobody planned for (a 500, a 404 of an unknown URL) still appear on first use.
 * Call it from an onRoute hook added after `policy.install`.
 */
export function declareRequestSeries(metrics: Metrics, policy: RoutePolicy, route: RouteOptions): void {
  const schema = route.schema as { hide?: boolean; response?: Record<string, unknown> } | undefined;
  if (schema?.hide) return;
  const documented = Object.keys(schema?.response ?? {})
    .filter((status) => /^[1-5]\d\d$/.test(status))
    .map(Number);
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  for (const method of methods.map(String)) {
    // Fastify adds a HEAD route for each GET; HEAD requests are counted when they come.
    if (method === 'HEAD') continue;
    const statuses = new Set([
      ...(documented.length > 0 ? documented : [200]),
      ...policy.authFailureStatuses(method, route.url),
    ]);
    for (const status of statuses) metrics.declareRequestSeries(method, route.url, status);
  }
}

/**
 * `GET /metrics` in Prometheus's text format. Read access: no service names, but live host and
 * service counts, xDS stream counts and per-route traffic, which are the registry's business.
 */
export const metricsRoutes: FastifyPluginAsync<{ readonly metrics: Metrics }> = async (app, { metrics }) => {
  app.get(
    '/metrics',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Prometheus metrics',
        operationId: 'getMetrics',
        tags: ['health'],
        response: { 200: textBody('text/plain; version=0.0.4; charset=utf-8', "Prometheus's text exposition format") },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );
};
