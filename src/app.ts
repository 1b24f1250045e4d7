import formBody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { HostService } from './hosts/host-service.js';
import { registerErrorHandling } from './http/error-handler.js';
import { loadBalancingRoutes } from './http/loadbalancing-routes.js';
import { registrationRoutes } from './http/registration-routes.js';
import { xdsRoutes, type XdsRoutesOptions } from './http/xds-routes.js';

export interface AppDependencies {
  readonly hostService: HostService;
  readonly log: Logger;
  readonly applicationEnv: string;
  readonly debug: boolean;
  readonly bodyLimitBytes: number;
  /** The xDS control plane's REST and admin routes; left out when absent. */
  readonly xds?: XdsRoutesOptions;
}

/** Longer than the 60 s idle timeout of common load balancers, so they close first, never us mid-request. */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;
/** A request (headers and body) that takes longer than this is cut off: heartbeats are tiny. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Room for the longest name the schema accepts, so an over-long one gets a 400 naming it, not a 404. */
const MAX_PARAM_LENGTH = 1024;
const MULTIPART_FIELDS_MAX = 32;

/** The HTTP application with every route; it never listens and never reads the environment. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // Per-request lines are written at debug level by the hook below, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimitBytes,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: REQUEST_TIMEOUT_MS,
    return503OnClosing: true,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
  }).withTypeProvider<TypeBoxTypeProvider>();

  registerErrorHandling(app, { debug: deps.debug });
  await app.register(formBody, { bodyLimit: deps.bodyLimitBytes });
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fields: MULTIPART_FIELDS_MAX, fieldSize: deps.bodyLimitBytes, files: 0, parts: MULTIPART_FIELDS_MAX },
  });

  if (deps.log.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
    });
  }

  app.get('/healthcheck', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('OK'));
  await app.register(registrationRoutes, { hostService: deps.hostService, applicationEnv: deps.applicationEnv });
  await app.register(loadBalancingRoutes, { hostService: deps.hostService });
  if (deps.xds) await app.register(xdsRoutes, deps.xds);
  return app;
}
