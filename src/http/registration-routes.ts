import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HostService } from '../hosts/host-service.js';
import {
  EmptyObject,
  ErrorBody,
  HostListQuery,
  HostParams,
  InstanceParams,
  NoContent,
  NotModified,
  RegistrationBody,
  RepoHostList,
  RepoParams,
  ServiceHostList,
  ServiceParams,
  StatusBody,
} from './schemas.js';
import { parseIpToRemove, parseIpToUpdate, parsePort, parseStatus } from './validation.js';
import type { Authorizer } from './auth.js';
import { clientAddress } from './client-address.js';
import { requesterOf } from './requester.js';
import type { Answer, RegistrationAnswers } from './registration-answers.js';
import type { RequestValidation } from './request-validation.js';

export interface RegistrationRoutesOptions {
  /** Shared with the fast paths, which write the same answers. */
  readonly answers: RegistrationAnswers;
}

/**
 * The reads of the v1 registration API: hosts by service or by repo. The plain GET by service
 * is usually answered by FastPaths before Fastify; both write what RegistrationAnswers computes.
 */
export const registrationReadRoutes: FastifyPluginAsyncTypebox<RegistrationRoutesOptions> = async (
  app,
  { answers },
) => {
  app.get(
    '/v1/registration/:service',
    {
      // The fast path reads this declaration too (FastPaths.takeAccessFromRoutes).
      config: { access: 'read' },
      schema: {
        summary: 'Live hosts of a service',
        operationId: 'listServiceHosts',
        description:
          'Answers 304 when If-None-Match names the current weak ETag, which changes only when routing data changes.',
        tags: ['registration'],
        params: ServiceParams,
        querystring: HostListQuery,
        response: { 200: ServiceHostList, 304: NotModified, 400: ErrorBody },
      },
    },
    async (request, reply) =>
      sendAnswer(
        reply,
        await answers.readHostList(
          { service: request.params.service },
          request.headers['if-none-match'],
          request.query.status,
        ),
      ),
  );

  app.get(
    '/v1/registration/repo/:service_repo_name',
    {
      config: { access: 'read' },
      schema: {
        summary: 'Live hosts of every service registered with a repo',
        operationId: 'listRepoHosts',
        tags: ['registration'],
        params: RepoParams,
        querystring: HostListQuery,
        response: { 200: RepoHostList, 304: NotModified, 400: ErrorBody },
      },
    },
    async (request, reply) =>
      sendAnswer(
        reply,
        await answers.readHostList(
          { repo: request.params.service_repo_name },
          request.headers['if-none-match'],
          request.query.status,
        ),
      ),
  );
};

export interface RegistrationWriteRoutesOptions {
  readonly hostService: HostService;
  /** Names the role of whoever writes, in the audit trail. */
  readonly authorizer: Authorizer;
  /** Shared with the fast paths, which write the same answers. */
  readonly answers: RegistrationAnswers;
  /** The heartbeat route's validator compiler (its body is checked by `answers`). */
  readonly validation: RequestValidation;
}

/**
 * The writes of the v1 registration API: heartbeat and delete. A plain form heartbeat is
 * usually taken by FastPaths before Fastify; both write what RegistrationAnswers computes.
 */
export const registrationWriteRoutes: FastifyPluginAsyncTypebox<RegistrationWriteRoutesOptions> = async (
  app,
  { hostService, answers, validation, authorizer },
) => {
  app.post(
    '/v1/registration/:service',
    {
      schema: {
        summary: 'Heartbeat: register a host or refresh it (tags are merged)',
        operationId: 'heartbeat',
        tags: ['registration'],
        consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
        params: ServiceParams,
        body: RegistrationBody,
        // 401 and 403 are added to the description where auth applies (api-description.ts).
        response: { 200: EmptyObject, 400: ErrorBody, 503: ErrorBody },
      },
      // The fast path reads this declaration too (FastPaths.takeAccessFromRoutes).
      config: { access: 'register' },
      preValidation: emptyBodyAsObject,
      // Params are checked here (an unusable service name is not counted as a heartbeat); the body by `answers`.
      validatorCompiler: validation.heartbeatRouteCompiler,
    },
    async (request, reply) =>
      sendAnswer(
        reply,
        await answers.heartbeat(
          request.params.service,
          request.body,
          clientAddress(request),
          requesterOf(request, request.id, authorizer),
        ),
      ),
  );

  app.delete(
    '/v1/registration/:service/:ip_address',
    {
      schema: {
        summary: 'Remove a host (400 when it does not exist)',
        operationId: 'deleteHost',
        tags: ['registration'],
        params: HostParams,
        response: { 200: EmptyObject, 400: ErrorBody, 503: ErrorBody },
      },
      config: { access: 'admin' },
    },
    async (request, reply) => {
      await hostService.deregister(
        request.params.service,
        parseIpToRemove(request.params.ip_address),
        requesterOf(request, request.id, authorizer),
      );
      return reply.code(200).send({});
    },
  );

  // Status overrides: PUT sets, DELETE clears; by address, or by address and port (which must match).
  const statusRoute = <P extends typeof HostParams | typeof InstanceParams>(
    operationId: string,
    summary: string,
    params: P,
    withBody: boolean,
  ) => ({
    schema: {
      summary,
      operationId,
      tags: ['registration'],
      ...(withBody
        ? {
            consumes: ['application/x-www-form-urlencoded', 'multipart/form-data', 'application/json'],
            body: StatusBody,
          }
        : {}),
      params,
      response: { 204: NoContent, 400: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    },
    config: { access: 'admin' as const },
    ...(withBody ? { preValidation: emptyBodyAsObject } : {}),
  });
  const portOf = (params: { port?: string }) => (params.port === undefined ? undefined : parsePort(params.port));
  for (const [suffix, params, idPart] of [
    ['', HostParams, ''],
    ['/:port', InstanceParams, 'AndPort'],
  ] as const) {
    app.put(
      `/v1/registration/:service/:ip_address${suffix}/status`,
      statusRoute(
        `setHostStatus${idPart}`,
        "Set an operator's status override on one host (it survives heartbeats and wins over the host's own status)",
        params,
        true,
      ),
      async (request, reply) => {
        const body = request.body as StatusBody;
        const routeParams = request.params as { service: string; ip_address: string; port?: string };
        const status = parseStatus(body.status);
        const port = portOf(routeParams);
        await hostService.setStatusOverride(
          routeParams.service,
          parseIpToUpdate(routeParams.ip_address),
          port,
          status,
          requesterOf(request, request.id, authorizer),
        );
        return reply.code(204).send(null);
      },
    );
    app.delete(
      `/v1/registration/:service/:ip_address${suffix}/status`,
      statusRoute(
        `clearHostStatus${idPart}`,
        "Clear one host's status override: its own status counts again",
        params,
        false,
      ),
      async (request, reply) => {
        const routeParams = request.params as { service: string; ip_address: string; port?: string };
        const port = portOf(routeParams);
        await hostService.setStatusOverride(
          routeParams.service,
          parseIpToUpdate(routeParams.ip_address),
          port,
          undefined,
          requesterOf(request, request.id, authorizer),
        );
        return reply.code(204).send(null);
      },
    );
  }

  app.delete(
    '/v1/registration/:service/:ip_address/:port',
    {
      schema: {
        summary: 'Remove one instance, ip:port (in INSTANCE_KEY=ip mode only when the host listens on that port)',
        operationId: 'deleteInstance',
        tags: ['registration'],
        params: InstanceParams,
        response: { 200: EmptyObject, 400: ErrorBody, 503: ErrorBody },
      },
      config: { access: 'admin' },
    },
    async (request, reply) => {
      const port = parsePort(request.params.port);
      await hostService.deregister(
        request.params.service,
        parseIpToRemove(request.params.ip_address),
        requesterOf(request, request.id, authorizer),
        port,
      );
      return reply.code(200).send({});
    },
  );

  // The original answered this with a 500; a missing address is the caller's mistake.
  app.delete(
    '/v1/registration/:service',
    {
      schema: {
        summary: 'Always a 400: the address is required',
        operationId: 'deleteHostWithoutAddress',
        tags: ['registration'],
        params: ServiceParams,
        response: { 400: ErrorBody },
      },
      config: { access: 'admin' },
    },
    async (_request, reply) => {
      return reply.code(400).send({
        error: "Required path parameter 'ip_address' is missing: DELETE /v1/registration/:service/:ip_address",
      });
    },
  );
};

/** Writes an answer computed by RegistrationAnswers through Fastify. */
function sendAnswer(reply: FastifyReply, answer: Answer): FastifyReply {
  reply.code(answer.status);
  const { headers } = answer;
  for (let index = 0; index + 1 < headers.length; index += 2)
    reply.header(headers[index] as string, headers[index + 1] as string);
  return reply.send(answer.body);
}

/**
 * A POST without a body is validated as `{}`, so the answer names the missing fields; a
 * multipart field sent twice keeps its first value, as form bodies do (see parseForm).
 */
export async function emptyBodyAsObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
  else if (request.isMultipart()) {
    const fields = request.body as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (Array.isArray(value)) fields[key] = value[0];
    }
  }
}
