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
import type { TlsFiles } from './tls-files.js';
import { AnsweredRequests } from './http/answered-requests.js';
import { REQUEST_ID_HEADER, requestIdOf } from './http/requester.js';
import { RegistrationAnswers, type AutoIpPolicy } from './http/registration-answers.js';
import type { HostService } from './hosts/host-service.js';
import { registerApiDescription } from './http/api-description.js';
import { healthRoutes } from './http/health-routes.js';
import { declareRequestSeries, metricsRoutes } from './http/metrics-routes.js';
import { Readiness } from './readiness.js';
import type { Metrics } from './metrics.js';
import { routesOf, trackRoutes } from './http/route-list.js';
import { AllowedMethods } from './http/allowed-methods.js';
import { Authorizer, type AuthConfig } from './http/auth.js';
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
import { feedRoutes } from './http/feed-routes.js';
import type { ChangeFeed } from './replication/change-feed.js';
import { dashboardRoutes } from './dashboard/dashboard-routes.js';
import type { ServiceDirectory } from './hosts/service-directory.js';
import { ErrorBody } from './http/schemas.js';
import { systemClock, type Clock } from './clock.js';
import { PACKAGE_VERSION } from './version.js';

export interface AppDependencies {
  readonly hostService: HostService;
  readonly log: Logger;
  readonly applicationEnv: string;
  readonly debug: boolean;
  readonly bodyLimitBytes: number;
  readonly auth: AuthConfig;
  /** Who may register with `auto_ip` (AUTO_IP_ALLOWED_RANGES, TRUSTED_PROXY_HOPS). */
  readonly autoIp: AutoIpPolicy;
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
  /** ACCESS_LOG: one info line per answered request. */
  readonly accessLog?: boolean;
  /**
   * Called on the root app before any route, for hooks and plugins that apply to every route
   * (an embedding's rate limiting or request ids). The fast paths refuse to start beside a
   * hook they would skip, so with such a hook on the registration routes set `fastPaths: false`.
   */
  readonly beforeRoutes?: (app: FastifyInstance) => void | Promise<void>;
  /**
   * What `GET /readyz` reports. Absent (an app built on its own, in tests), one that probes the
   * host service's store and is serving from the start.
   */
  readonly readiness?: Readiness;
  /** Where peer replicas' change hints go (`POST /v1/feed/hints`); absent, that route answers 404. */
  readonly changeFeed?: ChangeFeed;
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
  const answers = new RegistrationAnswers({
    hostService: deps.hostService,
    encoder,
    validation,
    autoIp: deps.autoIp,
    debug: deps.debug,
    log: deps.log,
  });
  const answered = new AnsweredRequests(deps.metrics, deps.log, {
    accessLog: deps.accessLog ?? false,
    debug: deps.log.isLevelEnabled('debug'),
  });
  const fastPaths =
    (deps.fastPaths ?? true)
      ? new FastPaths({
          hostService: deps.hostService,
          answers,
          authorizer,
          policy,
          answered,
          bodyLimitBytes: deps.bodyLimitBytes,
          log: deps.log,
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
    // The caller's X-Request-Id when acceptable, else a UUID; returned on every answer (returnRequestId).
    requestIdHeader: false,
    genReqId: (request: IncomingMessage) => requestIdOf(request.headers),
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
  app.addHook('onRequest', function returnRequestId(request, reply, done) {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
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
        fastPaths.takeAccessFromRoutes(app);
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
  await registerApiDescription(app, { policy, authorizer });

  if (deps.metrics) {
    const metrics = deps.metrics;
    // After policy.install's hook, so each route's access is settled when its series are made.
    app.addHook('onRoute', (route) => declareRequestSeries(metrics, policy, route));
  }
  if (answered.enabled) {
    app.addHook('onResponse', function recordAnswer(request, reply, done) {
      answered.record(
        request.method,
        request.routeOptions.url ?? 'unmatched',
        request.url,
        reply.statusCode,
        reply.elapsedTime,
        request.id,
        request.socket.remoteAddress,
      );
      done();
    });
  }
  if (deps.metrics) await app.register(metricsRoutes, { metrics: deps.metrics });
  await deps.beforeRoutes?.(app);

  app.get(
    '/healthcheck',
    // Public: load balancers probe it without credentials, and it says nothing but OK.
    {
      config: { access: 'public' },
      schema: {
        summary: 'Liveness: 200 OK',
        operationId: 'healthcheck',
        tags: ['health'],
        response: {
          200: {
            description: 'OK',
            content: { 'text/plain; charset=utf-8': { schema: { type: 'string', const: 'OK' } } },
          },
          503: ErrorBody,
        },
      },
    },
    async (_request, reply) => reply.type('text/plain; charset=utf-8').send('OK'),
  );
  await app.register(healthRoutes, { readiness: deps.readiness ?? standaloneReadiness(deps.hostService) });
  await app.register(registrationReadRoutes, { answers });
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
    await writes.register(registrationWriteRoutes, { hostService: deps.hostService, answers, validation, authorizer });
    await writes.register(loadBalancingRoutes, { hostService: deps.hostService, authorizer });
  });
  if (deps.xds) await app.register(xdsRoutes, deps.xds);
  await app.register(feedRoutes, { changeFeed: deps.changeFeed });
  return app;
}

function standaloneReadiness(hostService: HostService): Readiness {
  const readiness = new Readiness({ probe: () => hostService.pingStorage() });
  readiness.markStarted();
  return readiness;
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
