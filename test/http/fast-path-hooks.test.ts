import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { composeTestRegistry, type StartOptions } from '../helpers/registry.js';

const OPEN = {};
const CREDENTIALS = {
  AUTH_READ_TOKENS: 'tok-read-0123456789',
  AUTH_REGISTER_TOKENS: 'tok-register-0123456789',
  AUTH_ADMIN_TOKENS: 'tok-admin-0123456789',
};

/** The real app as compose.ts wires it, not yet ready, and its closing. */
async function realApp(options: StartOptions): Promise<{ app: FastifyInstance; close(): Promise<void> }> {
  const { registry } = await composeTestRegistry(options);
  return { app: registry.app, close: () => registry.close() };
}

/** What a later change might add at the root: a named onRequest hook (rate limiting, say). */
function rateLimit(app: FastifyInstance) {
  app.addHook('onRequest', function rateLimit(_request, _reply, done) {
    done();
  });
}

/** A plugin that reaches every route (as fastify-plugin makes it), adding response headers. */
const corsPlugin: FastifyPluginAsync = Object.assign(
  async (app: FastifyInstance) => {
    app.addHook('onSend', async function addCorsHeaders(_request, reply, payload) {
      reply.header('access-control-allow-origin', '*');
      return payload;
    });
  },
  { [Symbol.for('skip-override')]: true },
);

describe('the fast paths and the hooks of the routes they answer', () => {
  test('as built, every hook on the two routes is one the fast paths take care of, at any log level and auth', async () => {
    for (const env of [OPEN, CREDENTIALS]) {
      for (const logLevel of ['silent', 'debug']) {
        const { app, close } = await realApp({ env, logLevel });
        try {
          await app.ready();
        } finally {
          await close();
        }
      }
    }
  });

  test('a hook added at the root stops start-up with a message naming the fast paths and the hook', async () => {
    const { app, close } = await realApp({ beforeRoutes: rateLimit });
    try {
      await assert.rejects(
        async () => app.ready(),
        /fast paths \(src\/http\/fast-paths\.ts\) answer GET \/v1\/registration\/:service before Fastify and would skip its onRequest hook 'rateLimit'/,
      );
    } finally {
      await close().catch(() => undefined);
    }
  });

  test('an unnamed hook is caught too, and so is one more of a kind the heartbeat route already has', async () => {
    for (const hook of ['onRequest', 'preValidation'] as const) {
      const { app, close } = await realApp({
        beforeRoutes: (root) => {
          // An arrow function: nameless, as many third-party hooks are.
          if (hook === 'onRequest') root.addHook('onRequest', (_request, _reply, done) => done());
          else root.addHook('preValidation', (_request, _reply, done) => done());
        },
      });
      try {
        await assert.rejects(async () => app.ready(), /fast paths \(src\/http\/fast-paths\.ts\)/);
      } finally {
        await close().catch(() => undefined);
      }
    }
  });

  test('a plugin whose hook reaches every route stops start-up the same way', async () => {
    const { app, close } = await realApp({
      beforeRoutes: async (root) => {
        await root.register(corsPlugin);
      },
    });
    try {
      await assert.rejects(async () => app.ready(), /would skip its onSend hook 'addCorsHeaders'/);
    } finally {
      await close().catch(() => undefined);
    }
  });

  test('with the fast paths off, the same plugin starts and runs on the busiest routes', async () => {
    const { app, close } = await realApp({
      beforeRoutes: async (root) => {
        await root.register(corsPlugin);
      },
      fastPaths: false,
    });
    try {
      await app.listen({ port: 0, host: '127.0.0.1' });
      const address = app.server.address();
      if (address === null || typeof address === 'string') throw new Error('no TCP address');
      const response = await fetch(`http://127.0.0.1:${address.port}/v1/registration/users`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('access-control-allow-origin'), '*');
    } finally {
      await close();
    }
  });
});
