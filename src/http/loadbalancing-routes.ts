import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { HostService } from '../hosts/host-service.js';
import type { Authorizer } from './auth.js';
import { HostParams, ServiceParams, WeightBody } from '../hosts/schemas.js';
import { emptyBodyAsObject } from './registration-routes.js';

/** Weight changes: one host, or every live host of a service. 204 on success. */
export const loadBalancingRoutes: FastifyPluginAsyncTypebox<{ readonly hostService: HostService; readonly authorizer: Authorizer }> = async (
  app,
  { hostService, authorizer },
) => {
  app.post(
    '/v1/loadbalancing/:service/:ip_address',
    { schema: { params: HostParams, body: WeightBody }, onRequest: authorizer.require('admin'), preValidation: emptyBodyAsObject },
    async (request, reply) => {
      await hostService.setWeight(request.params.service, request.params.ip_address, request.body.load_balancing_weight);
      return reply.code(204).send();
    },
  );

  app.post(
    '/v1/loadbalancing/:service',
    { schema: { params: ServiceParams, body: WeightBody }, onRequest: authorizer.require('admin'), preValidation: emptyBodyAsObject },
    async (request, reply) => {
      await hostService.setWeight(request.params.service, undefined, request.body.load_balancing_weight);
      return reply.code(204).send();
    },
  );
};
