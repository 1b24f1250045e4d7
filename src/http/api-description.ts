import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import { ROLES } from './auth.js';
import { ErrorBody } from './schemas.js';
import type { Authorizer } from './auth.js';
import { declarePluginRoutes, type RoutePolicy } from './route-policy.js';

const SECURITY_SCHEMES = {
  basic: {
    type: 'http',
    scheme: 'basic',
    description: "user name = the role's name (read, register, admin), password = AUTH_<ROLE>_PASSWORD",
  },
  bearer: { type: 'http', scheme: 'bearer', description: 'one of the tokens of AUTH_<ROLE>_TOKENS' },
} as const;

const AUTH_FAILURES: Record<number, { description: string }> = {
  401: { description: 'no valid credential (WWW-Authenticate names the schemes)' },
  403: { description: 'a valid credential of a role below the one this call needs' },
};

type DescribedSchema = FastifySchema & {
  hide?: boolean;
  description?: string;
  response?: Record<string, unknown>;
  security?: Array<Record<string, string[]>>;
};

/**
 * The OpenAPI 3 description, generated from the same schemas that validate requests (every
 * route registered after this is collected), at `/openapi.json`, and a browsable page at
 * `/docs` served from the swagger-ui package itself (no CDN). Both are public: the description
 * is made from the code's schemas and this deployment's auth settings, and holds no registry
 * data (whether a credential is needed is no secret: any call answers it with a 401).
 *
 * Security is derived here, for every operation, from the access its route declares (see
 * route-policy.ts) and the credentials configured: an operation whose role is enforced lists
 * the schemes that can prove that role here and its 401 (and 403 where a weaker credential
 * exists); any other has `security: []`. Routes therefore never write their own.
 */
export async function registerApiDescription(
  app: FastifyInstance,
  { policy, authorizer }: { readonly policy: RoutePolicy; readonly authorizer: Authorizer },
): Promise<void> {
  const usedSchemes = new Set(
    ROLES.filter((role) => authorizer.isProtected(role)).flatMap((role) => authorizer.schemesFor(role)),
  );
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'discovery',
        description: 'Service-discovery registry: the v1 SDS REST API of the original Python service, and more.',
        version: '1',
        license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
      },
      // Relative: the document is served by the server it describes, wherever that is mounted.
      servers: [{ url: '/', description: 'the server that serves this document' }],
      tags: [
        { name: 'registration', description: 'hosts of services: list, heartbeat, delete' },
        { name: 'loadbalancing', description: 'load-balancing weights' },
        { name: 'services', description: 'the services the registry knows' },
        { name: 'xds', description: 'the Envoy xDS v3 control plane over HTTP' },
        { name: 'dashboard', description: 'the web page at /ui (its static files are not listed)' },
        { name: 'health', description: 'liveness and Prometheus metrics' },
        { name: 'replicas', description: 'between replicas sharing one DynamoDB table (docs/replicas.md)' },
      ],
      components: {
        securitySchemes: Object.fromEntries(
          Object.entries(SECURITY_SCHEMES).filter(([name]) => usedSchemes.has(name as 'basic' | 'bearer')),
        ),
      },
    },
    transform: ({ schema, url, route }) => ({
      schema: withSecurity(schema as DescribedSchema, route as RouteOptions, policy, authorizer),
      url,
    }),
  });
  // swagger-ui's routes (and those of the @fastify/static it registers) take no route options,
  // so they are declared public as a scope that holds nothing else.
  await app.register(async (docs) => {
    declarePluginRoutes(docs, 'public');
    await docs.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  });
  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());
}

/** The operation's schema as described: a copy with its security and auth failures added. */
function withSecurity(
  schema: DescribedSchema,
  route: RouteOptions,
  policy: RoutePolicy,
  authorizer: Authorizer,
): DescribedSchema {
  // A route without a schema (none of ours) is described by the plugin's defaults.
  if (!schema || schema.hide) return schema;
  const method = String(Array.isArray(route.method) ? route.method[0] : route.method);
  const role = policy.credentialNeeded(method, route.url);
  if (role === undefined) return { ...schema, security: [] };
  const response = { ...schema.response };
  for (const status of policy.authFailureStatuses(method, route.url))
    response[status] ??= { ...ErrorBody, ...AUTH_FAILURES[status] };
  const needs = `Needs a credential of the '${role}' role or one above it.`;
  return {
    ...schema,
    description: schema.description ? `${schema.description}\n\n${needs}` : needs,
    security: authorizer.schemesFor(role).map((scheme) => ({ [scheme]: [] })),
    response,
  };
}
