import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../metrics.js';

/**
 * `GET /metrics` in Prometheus's text format. Read access: no service names, but live host and
 * service counts, xDS stream counts and per-route traffic, which are the registry's business.
 */
export const metricsRoutes: FastifyPluginAsync<{ readonly metrics: Metrics }> = async (app, { metrics }) => {
  app.get(
    '/metrics',
    { config: { access: 'read' }, schema: { summary: 'Prometheus metrics', tags: ['health'] } },
    async (_request, reply) => {
      const { contentType, body } = await metrics.render();
      return reply.type(contentType).send(body);
    },
  );
};
