import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { HostService } from '../hosts/host-service.js';
import { HostParams, ServiceParams, WeightBody } from '../hosts/schemas.js';
import { emptyBodyAsObject } from './registration-routes.js';

/** Weight changes: one host, or every live host of a service. 204 on success. */
export const loadBalancingRoutes: FastifyPluginAsyncTypebox<{ readonly hostService: HostService }> = async (app, { hostService }) => {
  app.post(
    '/v1/loadbalancing/:service/:ip_address',
    { schema: { params: HostParams, body: WeightBody }, preValidation: emptyBodyAsObject },
    async (request, reply) => {
      await hostService.setWeight(request.params.service, request.params.ip_address, request.body.load_balancing_weight);
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/loadbalancing/:service',
    { schema: { params: ServiceParams, body: WeightBody }, preValidation: emptyBodyAsObject },
    async (request, reply) => {
      await hostService.setWeight(request.params.service, undefined, request.body.load_balancing_weight);
      return reply.code(204).send();
    },
  );
};
