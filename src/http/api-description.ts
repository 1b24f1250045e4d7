import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { declarePluginRoutes } from './route-policy.js';

/**
 * The OpenAPI 3 description, generated from the same schemas that validate requests (every
 * route registered after this is collected), at `/openapi.json`, and a browsable page at
 * `/docs` served from the swagger-ui package itself (no CDN). Both are public: the description
 * is the same for every deployment, made from the code's schemas, and holds no registry data.
 */
export async function registerApiDescription(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'discovery',
        description: 'Service-discovery registry: the v1 SDS REST API of the original Python service, and more.',
        version: '1',
      },
      tags: [
        { name: 'registration', description: 'hosts of services: list, heartbeat, delete' },
        { name: 'loadbalancing', description: 'load-balancing weights' },
        { name: 'services', description: 'the services the registry knows' },
        { name: 'xds', description: 'the Envoy xDS v3 control plane over HTTP' },
        { name: 'dashboard', description: 'the web page at /ui (its static files are not listed)' },
        { name: 'health' },
      ],
      components: {
        securitySchemes: {
          basic: {
            type: 'http',
            scheme: 'basic',
            description: 'user name = role (register, admin, read), when auth is on',
          },
          bearer: { type: 'http', scheme: 'bearer', description: 'a token of a role, when auth is on' },
        },
      },
    },
  });
  // swagger-ui's routes (and those of the @fastify/static it registers) take no route options,
  // so they are declared public as a scope that holds nothing else.
  await app.register(async (docs) => {
    declarePluginRoutes(docs, 'public');
    await docs.register(swaggerUi, { routePrefix: '/docs', uiConfig: { docExpansion: 'list' } });
  });
  app.get('/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () => app.swagger());
}
