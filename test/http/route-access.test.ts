import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { routesOf, type ListedRoute } from '../../src/http/route-list.js';
import { startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

type Access = 'public' | 'read' | 'register' | 'admin';

/**
 * Who may call each route, written out independently of the routes' own declarations, so a
 * route declared with the wrong access fails here, and a new route fails until it is added.
 * HEAD routes are left out: each has its GET's access. The /docs routes are @fastify/swagger-ui's;
 * a new release that adds one must be classified here too.
 */
const EXPECTED: Readonly<Record<string, Access>> = {
  'GET /healthcheck': 'public',
  'GET /readyz': 'public',
  'GET /livez': 'public',
  'GET /openapi.json': 'public',
  'GET /docs': 'public',
  'GET /docs/static/index.html': 'public',
  'GET /docs/static/swagger-initializer.js': 'public',
  'GET /docs/json': 'public',
  'GET /docs/yaml': 'public',
  'GET /docs/static/*': 'public',
  // swagger-ui's page also answers at `/docs/`: Fastify lists that GET only under `/docs`, but its HEAD under both.
  'HEAD /docs/': 'public',
  'GET /metrics': 'read',
  'GET /v1/registration/:service': 'read',
  'GET /v1/registration/repo/:service_repo_name': 'read',
  'GET /v1/services': 'read',
  'GET /v1/ui/config': 'read',
  'GET /v1/ui/server': 'read',
  'GET /v1/ui/services': 'read',
  'GET /v1/ui/services/:service/hosts': 'read',
  'GET /ui': 'read',
  'GET /ui/': 'read',
  'GET /ui/:file': 'read',
  'POST /v3/discovery::endpoints': 'read',
  'GET /v1/xds/clients': 'read',
  'POST /v1/registration/:service': 'register',
  'DELETE /v1/registration/:service/:ip_address': 'admin',
  'DELETE /v1/registration/:service': 'admin',
  'PUT /v1/registration/:service/:ip_address/status': 'admin',
  'DELETE /v1/registration/:service/:ip_address/status': 'admin',
  'PUT /v1/registration/:service/:ip_address/:port/status': 'admin',
  'DELETE /v1/registration/:service/:ip_address/:port/status': 'admin',
  'DELETE /v1/registration/:service/:ip_address/:port': 'admin',
  'POST /v1/loadbalancing/:service/:ip_address/:port': 'admin',
  'POST /v1/loadbalancing/:service/:ip_address': 'admin',
  'POST /v1/loadbalancing/:service': 'admin',
  'POST /v1/feed/hints': 'register',
};

const READ_PASSWORD = 'readers-only-please';
const READ_TOKEN = 'tok-read-0123456789';
const REGISTER_PASSWORD = 'hosts-may-register';
const REGISTER_TOKEN = 'tok-register-0123456789';
const ADMIN_PASSWORD = 'operators-only-please';
const ADMIN_TOKEN = 'tok-admin-0123456789abcdef';

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Every way of calling, and the roles it proves (none for the first two). */
const CALLERS: ReadonlyArray<{ name: string; authorization?: string; role?: 'read' | 'register' | 'admin' }> = [
  { name: 'no credential' },
  { name: 'a wrong token', authorization: 'Bearer tok-guess-0000000000' },
  { name: 'the read password', authorization: basic('read', READ_PASSWORD), role: 'read' },
  { name: 'a read token', authorization: `Bearer ${READ_TOKEN}`, role: 'read' },
  { name: 'the register password', authorization: basic('register', REGISTER_PASSWORD), role: 'register' },
  { name: 'a register token', authorization: `Bearer ${REGISTER_TOKEN}`, role: 'register' },
  { name: 'the admin password', authorization: basic('admin', ADMIN_PASSWORD), role: 'admin' },
  { name: 'an admin token', authorization: `Bearer ${ADMIN_TOKEN}`, role: 'admin' },
];

const RANK = { read: 0, register: 1, admin: 2 } as const;

/** The status class a caller must get: 401 (no valid credential), 403 (too weak) or through (anything else). */
function expectedOutcome(access: Access, role: 'read' | 'register' | 'admin' | undefined): 'through' | 401 | 403 {
  if (access === 'public') return 'through';
  if (role === undefined) return 401;
  return RANK[role] >= RANK[access] ? 'through' : 403;
}

/** Plausible values for every path parameter the routes have. */
const PARAMS: Readonly<Record<string, string>> = {
  service: 'users',
  ip_address: '10.0.3.17',
  port: '9211',
  service_repo_name: 'users-repo',
  file: 'index.html',
  '*': 'swagger-ui.css',
};

/** A request path for a route template: `:name` filled in, `::` a literal colon, `*` a file. */
export function pathFor(url: string): string {
  return url
    .replace(/::/g, '\uE000')
    .replace(/:([A-Za-z_]+)/g, (_match, name: string) => {
      const value = PARAMS[name];
      if (value === undefined) throw new Error(`no value for path parameter '${name}' of ${url}: add one to PARAMS`);
      return encodeURIComponent(value);
    })
    .replace(/\*$/, PARAMS['*'] as string)
    .replace(/\uE000/g, ':');
}

/** The key of a route in EXPECTED: a HEAD route goes by its GET unless listed itself. */
function keyOf(route: ListedRoute): string {
  const own = `${route.method} ${route.url}`;
  return route.method === 'HEAD' && EXPECTED[own] === undefined ? `GET ${route.url}` : own;
}

/**
 * The body of a POST: the form heartbeat, which the fast path answers before Fastify (so the
 * walk goes through it over the socket) and which the weight routes refuse with a 400 once the
 * caller is let through; REST EDS gets the DiscoveryRequest Envoy would send.
 */
const FORM = {
  type: 'application/x-www-form-urlencoded',
  body: new URLSearchParams({
    ip: '10.0.3.17',
    port: '9211',
    revision: '2f1c0e9',
    service_repo_name: 'users-repo',
    tags: JSON.stringify(TAGS),
  }).toString(),
};
const BODIES: Readonly<Record<string, { type: string; body: string }>> = {
  '/v3/discovery::endpoints': {
    type: 'application/json',
    body: JSON.stringify({ node: { id: 'envoy-1' }, resource_names: ['users'] }),
  },
  '/v1/feed/hints': {
    type: 'application/json',
    body: JSON.stringify({
      replica: 'peer-1',
      changes: [{ key: 'k1', replica: 'peer-1', services: ['users'], at: 1 }],
    }),
  },
};

async function send(server: RunningRegistry, route: ListedRoute, authorization: string | undefined): Promise<number> {
  const headers: Record<string, string> = {};
  if (authorization !== undefined) headers.authorization = authorization;
  const payload = route.method === 'POST' ? (BODIES[route.url] ?? FORM) : undefined;
  if (payload) headers['content-type'] = payload.type;
  const response = await fetch(`${server.url}${pathFor(route.url)}`, {
    method: route.method,
    headers,
    body: payload?.body,
    redirect: 'manual',
  });
  await response.arrayBuffer();
  return response.status;
}

for (const fastPaths of [true, false]) {
  describe(`every registered route with every credential (fast paths ${fastPaths ? 'on' : 'off'})`, () => {
    let server: RunningRegistry;
    before(async () => {
      server = await startRegistry({
        fastPaths,
        env: {
          AUTH_READ_PASSWORD: READ_PASSWORD,
          AUTH_READ_TOKENS: READ_TOKEN,
          AUTH_REGISTER_PASSWORD: REGISTER_PASSWORD,
          AUTH_REGISTER_TOKENS: REGISTER_TOKEN,
          AUTH_ADMIN_PASSWORD: ADMIN_PASSWORD,
          AUTH_ADMIN_TOKENS: ADMIN_TOKEN,
        },
      });
    });
    after(async () => server.close());

    test('every registered route is classified here, and every classified route is registered', () => {
      const routes = routesOf(server.registry.app);
      assert.ok(routes.length >= 30, `only ${routes.length} routes found`);
      const unclassified = routes
        .filter((route) => EXPECTED[keyOf(route)] === undefined)
        .map((route) => `${route.method} ${route.url}`);
      assert.deepEqual(unclassified, [], 'routes with no expected access in EXPECTED');
      const registered = new Set(routes.map((route) => `${route.method} ${route.url}`));
      assert.deepEqual(
        Object.keys(EXPECTED).filter((key) => !registered.has(key)),
        [],
        'EXPECTED names routes the app does not have',
      );
      for (const route of routes) {
        if (route.method === 'HEAD' && EXPECTED[`GET ${route.url}`] !== undefined)
          assert.ok(registered.has(`GET ${route.url}`));
      }
    });

    test('each caller gets 401, 403 or through exactly as the route’s access says', async () => {
      const wrong: string[] = [];
      for (const route of routesOf(server.registry.app)) {
        const access = EXPECTED[keyOf(route)];
        if (access === undefined) continue;
        for (const caller of CALLERS) {
          const status = await send(server, route, caller.authorization);
          const expected = expectedOutcome(access, caller.role);
          const outcome = status === 401 || status === 403 ? status : 'through';
          if (outcome !== expected)
            wrong.push(
              `${route.method} ${route.url} (${access}) with ${caller.name}: ${status}, expected ${expected === 'through' ? 'neither 401 nor 403' : expected}`,
            );
          if (status >= 500) wrong.push(`${route.method} ${route.url} with ${caller.name}: ${status}`);
        }
      }
      assert.deepEqual(wrong, []);
    });
  });
}
