import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AuthConfig } from '../../src/http/auth.js';
import { Authorizer } from '../../src/http/auth.js';
import { declarePluginRoutes, RoutePolicy, type Access } from '../../src/http/route-policy.js';
import { composeTestRegistry } from '../helpers/registry.js';

const CREDENTIALS: AuthConfig = {
  passwords: {},
  tokens: { read: ['tok-read-0123456789'], register: ['tok-register-0123456789'], admin: ['tok-admin-0123456789'] },
};
const OPEN: AuthConfig = { passwords: {}, tokens: { read: [], register: [], admin: [] } };

function appWithPolicy(auth: AuthConfig = CREDENTIALS): { app: FastifyInstance; policy: RoutePolicy } {
  const app = Fastify();
  const policy = new RoutePolicy(new Authorizer(auth));
  policy.install(app);
  return { app, policy };
}

describe('route policy', () => {
  test('a route that declares no access stops start-up with a message naming its method and URL', async () => {
    const { app } = appWithPolicy();
    assert.throws(
      () => app.get('/v1/forgotten/:service', async () => 'leak'),
      /GET \/v1\/forgotten\/:service declares no access/,
    );
    // In a plugin, as every route module is: ready() (and so listen()) fails.
    const other = appWithPolicy().app;
    void other.register(async (scope) => {
      scope.post('/v1/also-forgotten', { config: {} }, async () => 'leak');
    });
    await assert.rejects(async () => {
      await other.ready();
    }, /POST \/v1\/also-forgotten declares no access/);
  });

  test('the real app refuses a route added without a declaration', async () => {
    const { registry } = await composeTestRegistry({
      env: {
        AUTH_READ_TOKENS: 'tok-read-0123456789',
        AUTH_REGISTER_TOKENS: 'tok-register-0123456789',
        AUTH_ADMIN_TOKENS: 'tok-admin-0123456789',
      },
    });
    const { app } = registry;
    try {
      assert.throws(() => app.get('/v1/new-feature', async () => 'leak'), /GET \/v1\/new-feature declares no access/);
      app.get('/v1/new-feature', { config: { access: 'read' } }, async () => 'ok');
      assert.equal((await app.inject('/v1/new-feature')).statusCode, 401);
    } finally {
      await registry.close();
    }
  });

  test('an unknown access level stops start-up', () => {
    const { app } = appWithPolicy();
    assert.throws(
      () => app.get('/x', { config: { access: 'everyone' as Access } }, async () => 'x'),
      /GET \/x declares unknown access 'everyone'/,
    );
  });

  test('each access level lets exactly its callers through, HEAD as its GET', async () => {
    const { app, policy } = appWithPolicy();
    for (const access of ['public', 'read', 'register', 'admin'] as const)
      app.get(`/${access}`, { config: { access } }, async () => 'ok');
    await app.ready();
    const statusOf = async (method: 'GET' | 'HEAD', url: string, role?: string) =>
      (await app.inject({ method, url, headers: role ? { authorization: `Bearer tok-${role}-0123456789` } : {} }))
        .statusCode;
    const table: Record<string, number[]> = {};
    for (const access of ['public', 'read', 'register', 'admin']) {
      for (const method of ['GET', 'HEAD'] as const) {
        table[`${method} /${access}`] = [
          await statusOf(method, `/${access}`),
          await statusOf(method, `/${access}`, 'read'),
          await statusOf(method, `/${access}`, 'register'),
          await statusOf(method, `/${access}`, 'admin'),
        ];
      }
      assert.equal(policy.accessOf('HEAD', `/${access}`), access);
    }
    assert.deepEqual(table, {
      'GET /public': [200, 200, 200, 200],
      'HEAD /public': [200, 200, 200, 200],
      'GET /read': [401, 200, 200, 200],
      'HEAD /read': [401, 200, 200, 200],
      'GET /register': [401, 403, 200, 200],
      'HEAD /register': [401, 403, 200, 200],
      'GET /admin': [401, 403, 403, 200],
      'HEAD /admin': [401, 403, 403, 200],
    });
    await app.close();
  });

  test('the check runs before the route’s own onRequest hooks', async () => {
    const { app } = appWithPolicy();
    let ran = 0;
    app.get('/guarded', { config: { access: 'admin' }, onRequest: async () => void ran++ }, async () => 'ok');
    assert.equal((await app.inject('/guarded')).statusCode, 401);
    assert.equal(ran, 0);
    assert.equal(
      (await app.inject({ url: '/guarded', headers: { authorization: 'Bearer tok-admin-0123456789' } })).statusCode,
      200,
    );
    assert.equal(ran, 1);
    await app.close();
  });

  test('no hook at all where no credential is needed: public routes, and reads while reads are open', async () => {
    const { app, policy } = appWithPolicy(OPEN);
    const hooks: Record<string, unknown> = {};
    app.addHook('onRoute', (route) => void (hooks[route.url] = route.onRequest));
    for (const access of ['public', 'read', 'register', 'admin'] as const)
      app.get(`/${access}`, { config: { access } }, async () => 'ok');
    await app.ready();
    // Registered after the policy's hook, this one sees the options the policy left.
    assert.deepEqual(hooks, { '/public': undefined, '/read': undefined, '/register': undefined, '/admin': undefined });
    assert.equal(policy.credentialNeeded('GET', '/read'), undefined);
    await app.close();

    const locked = appWithPolicy({
      passwords: {},
      tokens: { read: [], register: ['tok-register-0123456789'], admin: [] },
    });
    for (const access of ['public', 'read', 'register', 'admin'] as const)
      locked.app.get(`/${access}`, { config: { access } }, async () => 'ok');
    await locked.app.ready();
    assert.deepEqual(
      (['public', 'read', 'register', 'admin'] as const).map((access) =>
        locked.policy.credentialNeeded('GET', `/${access}`),
      ),
      [undefined, undefined, 'register', 'admin'],
      'a write credential locks every write, reads stay open',
    );
    await locked.app.close();
  });

  test("a third-party plugin's routes take the access declared for its scope; its own declarations still win", async () => {
    const { app, policy } = appWithPolicy();
    await app.register(async (scope) => {
      declarePluginRoutes(scope, 'public');
      // As a plugin that registers plugins of its own does.
      await scope.register(async (inner) => {
        inner.get('/plugin/page', async () => 'page');
        inner.get('/plugin/secret', { config: { access: 'admin' } }, async () => 'secret');
      });
    });
    app.get('/outside', { config: { access: 'read' } }, async () => 'ok');
    // The scope's declaration does not leak to its parent.
    assert.throws(() => app.get('/undeclared', async () => 'x'), /GET \/undeclared declares no access/);
    await app.ready();
    assert.equal(policy.accessOf('GET', '/plugin/page'), 'public');
    assert.equal(policy.accessOf('HEAD', '/plugin/page'), 'public');
    assert.equal(policy.accessOf('GET', '/plugin/secret'), 'admin');
    assert.equal((await app.inject('/plugin/page')).statusCode, 200);
    assert.equal((await app.inject('/plugin/secret')).statusCode, 401);
    assert.equal((await app.inject('/outside')).statusCode, 401);
    await app.close();
  });
});
