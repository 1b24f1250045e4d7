import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../metrics.js';
import type { Authorizer } from './auth.js';

/** `GET /metrics` in Prometheus's text format; behind the read credential when one is configured. */
export const metricsRoutes: FastifyPluginAsync<{ readonly metrics: Metrics; readonly authorizer: Authorizer }> = async (app, { metrics, authorizer }) => {
  if (authorizer.isProtected('read')) app.addHook('onRequest', authorizer.require('read'));
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', tags: ['health'] } }, async (_request, reply) => {
    const { contentType, body } = await metrics.render();
    return reply.type(contentType).send(body);
  });
};
