import {
  createServer as createHttpServer,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import formBody from '@fastify/formbody';
import multipart from '@fastify/multipart';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { AuthConfig, TlsFiles } from './config.js';
import type { HostService } from './hosts/host-service.js';
import { registerApiDescription } from './http/api-description.js';
import { metricsRoutes } from './http/metrics-routes.js';
import type { Metrics } from './metrics.js';
import { routesOf, trackRoutes } from './http/route-list.js';
import { AllowedMethods } from './http/allowed-methods.js';
import { Authorizer } from './http/auth.js';
import { answerClientError } from './http/client-errors.js';
import { RoutePolicy } from './http/route-policy.js';
import {
  answerFrameworkError,
  refuseWhileClosing,
  registerErrorHandling,
  trackBodyParsing,
} from './http/error-handler.js';
import { loadBalancingRoutes } from './http/loadbalancing-routes.js';
import { registrationReadRoutes, registrationWriteRoutes } from './http/registration-routes.js';
import { HostListEncoder } from './http/host-list-response.js';
import { FastPaths } from './http/fast-paths.js';
import { parseForm } from './http/form-body.js';
import { RequestValidation } from './http/request-validation.js';
import { xdsRoutes, type XdsRoutesOptions } from './http/xds-routes.js';
import { serviceRoutes } from './http/service-routes.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import type { ServiceDirectory } from './hosts/service-directory.js';
import { systemClock, type Clock } from './clock.js';
import { PACKAGE_VERSION } from './version.js';

export interface AppDependencies {
  readonly hostService: HostService;
  readonly log: Logger;
  readonly applicationEnv: string;
  readonly debug: boolean;
  readonly bodyLimitBytes: number;
  readonly auth: AuthConfig;
  /** Serve HTTPS with these; with `ca`, clients must present a certificate signed by it. */
  readonly tls?: TlsFiles;
  /** The xDS control plane's REST and admin routes; left out when absent. */
  readonly xds?: XdsRoutesOptions;
  /** Summaries behind `GET /v1/services` and the dashboard's service list. */
  readonly serviceDirectory: ServiceDirectory;
  /** Prometheus metrics: every answered request is observed, and `/metrics` exposes them. */
  readonly metrics?: Metrics;
  /**
   * Answer the plain `GET` and form `POST` of `/v1/registration/:service` before Fastify (see
   * FastPaths). Default: on. Off, every request takes the Fastify routes (tests compare the two).
   */
  readonly fastPaths?: boolean;
  /** What the dashboard's server panel says about this process; defaults: the system clock, now, xDS off. */
  readonly server?: { readonly clock?: Clock; readonly startedAt?: number; readonly xdsEnabled?: boolean };
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
  const https: HttpsServerOptions | undefined = deps.tls
    ? {
        cert: deps.tls.cert,
        key: deps.tls.key,
        ca: deps.tls.ca,
        requestCert: deps.tls.ca !== undefined,
        rejectUnauthorized: true,
      }
    : undefined;
  const authorizer = new Authorizer(deps.auth);
  const policy = new RoutePolicy(authorizer);
  const encoder = new HostListEncoder(deps.applicationEnv);
  const validation = new RequestValidation();
  const fastPaths =
    (deps.fastPaths ?? true)
      ? new FastPaths({
          hostService: deps.hostService,
          authorizer,
          policy,
          encoder,
          validation,
          bodyLimitBytes: deps.bodyLimitBytes,
          log: deps.log as FastifyBaseLogger,
          logRequests: deps.log.isLevelEnabled('debug'),
          debug: deps.debug,
          metrics: deps.metrics,
        })
      : undefined;
  // Fastify types the instance by server kind; the routes do not care whether it is HTTP or HTTPS.
  const app = (Fastify as unknown as (options: object) => FastifyInstance)({
    serverFactory: (fastifyHandler: RequestListener) => createServer(https, fastPaths, fastifyHandler),
    loggerInstance: deps.log as FastifyBaseLogger,
    // Per-request lines are written at debug level by the hook below, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    // One pino child per request costs as much as the rest of a cached GET; request lines are
    // logged with method and URL by the hook below instead of through a per-request child.
    childLoggerFactory: (logger: FastifyBaseLogger) => logger,
    bodyLimit: deps.bodyLimitBytes,
    // refuseWhileClosing answers these instead, in the {"error": ...} shape.
    return503OnClosing: false,
    frameworkErrors: answerFrameworkError,
    clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Duplex) {
      answerClientError(error, socket, this.log);
    },
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
  }).withTypeProvider<TypeBoxTypeProvider>();

  trackRoutes(app);
  // Before any route: every route declares its access (config.access) and this applies it.
  policy.install(app);
  registerErrorHandling(app, {
    debug: deps.debug,
    allowedMethods: new AllowedMethods(() => routesOf(app), MAX_PARAM_LENGTH),
  });
  refuseWhileClosing(app);
  if (fastPaths) {
    // Every route is registered by now, so the fast paths can take the access their routes declare.
    app.addHook('onReady', (done) => {
      try {
        fastPaths.takeAccessFromRoutes();
        done();
      } catch (error) {
        done(error as Error);
      }
    });
    app.addHook('preClose', (done) => {
      fastPaths.stopServing();
      done();
    });
  }
  await registerApiDescription(app);

  if (deps.metrics) {
    const metrics = deps.metrics;
    app.addHook('onResponse', (request, reply, done) => {
      metrics.observeRequest(
        request.method,
        request.routeOptions.url ?? 'unmatched',
        reply.statusCode,
        reply.elapsedTime / 1000,
      );
      done();
    });
    await app.register(metricsRoutes, { metrics });
  }
  if (deps.log.isLevelEnabled('debug')) {
    app.addHook('onResponse', async (request, reply) => {
      request.log.debug(
        { method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime },
        'request',
      );
    });
  }

  app.get(
    '/healthcheck',
    // Public: load balancers probe it without credentials, and it says nothing but OK.
    {
      config: { access: 'public' },
      schema: { summary: 'Liveness: 200 OK', tags: ['health'], response: { 200: { type: 'string', const: 'OK' } } },
    },
    async (_request, reply) => reply.type('text/plain; charset=utf-8').send('OK'),
  );
  await app.register(registrationReadRoutes, { hostService: deps.hostService, encoder });
  await app.register(serviceRoutes, { serviceDirectory: deps.serviceDirectory, applicationEnv: deps.applicationEnv });
  const serverClock = deps.server?.clock ?? systemClock;
  const streamServer = deps.xds?.streamServer;
  await app.register(dashboardRoutes, {
    authorizer,
    applicationEnv: deps.applicationEnv,
    hostService: deps.hostService,
    serviceDirectory: deps.serviceDirectory,
    server: {
      version: PACKAGE_VERSION,
      clock: serverClock,
      startedAt: deps.server?.startedAt ?? serverClock.now(),
      xdsEnabled: deps.server?.xdsEnabled ?? false,
      xdsClients: () => streamServer?.clients() ?? [],
    },
  });
  // Body parsers live in their own context with the routes that take a body: the multipart
  // plugin adds async hooks to every request of its context, which the hot GET path must not pay.
  await app.register(async (writes) => {
    trackBodyParsing(writes);
    // One form parser for both heartbeat paths and every other form route.
    await writes.register(formBody, { bodyLimit: deps.bodyLimitBytes, parser: parseForm });
    await writes.register(multipart, {
      attachFieldsToBody: 'keyValues',
      limits: { fields: MULTIPART_FIELDS_MAX, fieldSize: deps.bodyLimitBytes, files: 0, parts: MULTIPART_FIELDS_MAX },
    });
    await writes.register(registrationWriteRoutes, { hostService: deps.hostService, validation });
    await writes.register(loadBalancingRoutes, { hostService: deps.hostService });
  });
  if (deps.xds) await app.register(xdsRoutes, deps.xds);
  return app;
}

/** The HTTP(S) server; the hottest two calls are answered before Fastify when the fast paths take them. */
function createServer(
  https: HttpsServerOptions | undefined,
  fastPaths: FastPaths | undefined,
  fastifyHandler: RequestListener,
): Server {
  const listener: RequestListener = fastPaths
    ? (request: IncomingMessage, response: ServerResponse) => {
        if (!fastPaths.tryServe(request, response)) fastifyHandler(request, response);
      }
    : fastifyHandler;
  const server: Server = https ? createHttpsServer(https, listener) : createHttpServer(listener);
  // Fastify sets these only on servers it creates itself.
  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  return server;
}
