import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { HostService } from '../hosts/host-service.js';
import { ErrorBody, HostParams, InstanceParams, NoContent, ServiceParams, WeightBody } from './schemas.js';
import { parseIpToUpdate, parsePort, parseWeight } from './validation.js';
import type { Authorizer } from './auth.js';
import { emptyBodyAsObject } from './registration-routes.js';
import { requesterOf } from './requester.js';

/** Weight changes: one instance, the instances at one IP, or every live host of a service. 204 on success. */
export const loadBalancingRoutes: FastifyPluginAsyncTypebox<{
  readonly hostService: HostService;
  /** Names the role of whoever writes, in the audit trail. */
  readonly authorizer: Authorizer;
}> = async (app, { hostService, authorizer }) => {
  const routeOptions = <P extends typeof InstanceParams | typeof HostParams | typeof ServiceParams>(
    operationId: string,
    summary: string,
    params: P,
  ) => ({
    schema: {
      summary,
      operationId,
      tags: ['loadbalancing'],
      consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
      params,
      body: WeightBody,
      // 401 and 403 are added to the description where auth applies (api-description.ts).
      response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    },
    config: { access: 'admin' as const },
    preValidation: emptyBodyAsObject,
  });

  app.post(
    '/v1/loadbalancing/:service/:ip_address',
    routeOptions('setHostWeight', 'Set the load-balancing weight of the host (every instance) at an IP', HostParams),
    async (request, reply) => {
      const weight = parseWeight(request.body.load_balancing_weight);
      await hostService.setWeight(
        request.params.service,
        parseIpToUpdate(request.params.ip_address),
        weight,
        requesterOf(request, request.id, authorizer),
      );
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/loadbalancing/:service/:ip_address/:port',
    routeOptions(
      'setInstanceWeight',
      "Set one instance's load-balancing weight, ip:port (in INSTANCE_KEY=ip mode only when the host listens on that port)",
      InstanceParams,
    ),
    async (request, reply) => {
      // Checked in the order the original checked them: the weight, the port, then the address.
      const weight = parseWeight(request.body.load_balancing_weight);
      const port = parsePort(request.params.port);
      await hostService.setWeight(
        request.params.service,
        parseIpToUpdate(request.params.ip_address),
        weight,
        requesterOf(request, request.id, authorizer),
        port,
      );
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/loadbalancing/:service',
    routeOptions('setServiceWeight', 'Set the load-balancing weight of every live host of a service', ServiceParams),
    async (request, reply) => {
      await hostService.setWeight(
        request.params.service,
        undefined,
        parseWeight(request.body.load_balancing_weight),
        requesterOf(request, request.id, authorizer),
      );
      return reply.code(204).send(null);
    },
  );
};
