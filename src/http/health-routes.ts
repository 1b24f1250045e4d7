import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Readiness } from '../readiness.js';

export interface HealthRoutesOptions {
  readonly readiness: Readiness;
}

const Ready = Type.Object({ status: Type.Literal('ready') }, { description: 'send traffic here' });
const Unavailable = Type.Object(
  {
    status: Type.Literal('unavailable'),
    reason: Type.String({ description: 'why: starting, draining, or storage unreachable (with its error)' }),
  },
  { description: 'send no traffic here for now' },
);
const Alive = Type.Object({ status: Type.Literal('alive') });

/**
 * `GET /readyz` and `GET /livez`, for load balancers and Kubernetes probes. Public, as
 * `/healthcheck` is: probes carry no credentials, and the answers hold no registry data.
 * (`/healthcheck` stays the original's plain `OK`.)
 */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (app, { readiness }) => {
  app.get(
    '/readyz',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Readiness: 200 when this replica should get traffic, 503 with the reason when not',
        operationId: 'readiness',
        description:
          'Unavailable while starting, while draining after SIGTERM, and while storage is unreachable. ' +
          'Storage is asked at most every 2 s, however often this is called.',
        tags: ['health'],
        response: { 200: Ready, 503: Unavailable },
      },
    },
    async (_request, reply) => {
      const report = await readiness.check();
      return reply
        .code(report.status === 'ready' ? 200 : 503)
        .header('cache-control', 'no-store')
        .send(report);
    },
  );

  app.get(
    '/livez',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Liveness: 200 while the process answers requests',
        operationId: 'liveness',
        description:
          'Says nothing about storage, on purpose: restarting a replica does not bring storage back. ' +
          'Stays 200 while draining.',
        tags: ['health'],
        response: { 200: Alive },
      },
    },
    async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'alive' }),
  );
};
