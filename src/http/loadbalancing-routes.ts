import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { HostService } from '../hosts/host-service.js';
import type { Authorizer } from './auth.js';
import { ErrorBody, HostParams, NoContent, ServiceParams, WeightBody } from '../hosts/schemas.js';
import { emptyBodyAsObject } from './registration-routes.js';

/** Weight changes: one host, or every live host of a service. 204 on success. */
export const loadBalancingRoutes: FastifyPluginAsyncTypebox<{ readonly hostService: HostService; readonly authorizer: Authorizer }> = async (
  app,
  { hostService, authorizer },
) => {
  app.post(
    '/v1/loadbalancing/:service/:ip_address',
    {
      schema: {
        summary: "Set one host's load-balancing weight",
        tags: ['loadbalancing'],
        consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
        params: HostParams,
        body: WeightBody,
        response: { 204: NoContent, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest: authorizer.require('admin'),
      preValidation: emptyBodyAsObject,
    },
    async (request, reply) => {
      await hostService.setWeight(request.params.service, request.params.ip_address, request.body.load_balancing_weight);
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/loadbalancing/:service',
    {
      schema: {
        summary: 'Set the load-balancing weight of every live host of a service',
        tags: ['loadbalancing'],
        consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
        params: ServiceParams,
        body: WeightBody,
        response: { 204: NoContent, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest: authorizer.require('admin'),
      preValidation: emptyBodyAsObject,
    },
    async (request, reply) => {
      await hostService.setWeight(request.params.service, undefined, request.body.load_balancing_weight);
      return reply.code(204).send(null);
    },
  );
};
