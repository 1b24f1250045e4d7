import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Fastify from 'fastify';
import { pino, type Logger } from 'pino';
import { ManualClock } from '../../src/clock.js';
import { composeRegistry } from '../../src/compose.js';
import { loadConfig } from '../../src/config.js';
import type { AuthConfig } from '../../src/http/auth.js';
import { HostService } from '../../src/hosts/host-service.js';
import { Authorizer } from '../../src/http/auth.js';
import { AnsweredRequests } from '../../src/http/answered-requests.js';
import { FastPaths } from '../../src/http/fast-paths.js';
import { RegistrationAnswers } from '../../src/http/registration-answers.js';
import { HostListEncoder } from '../../src/http/host-list-response.js';
import { RequestValidation } from '../../src/http/request-validation.js';
import { RoutePolicy, type Access } from '../../src/http/route-policy.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { RecordingStats, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

/** Headers a client can act on (Date and keep-alive bookkeeping left out). */
const COMPARED_HEADERS = [
  'content-type',
  'content-length',
  'etag',
  'www-authenticate',
  'age',
  'x-discovery-stale',
  'x-discovery-expiry-protection',
];

interface Call {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | null>;
  readonly body: string;
}

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

function formBody(fields: Record<string, string | number | object>): string {
  const body = new URLSearchParams();
  for (const [key, value] of Object.entries(fields))
    body.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  return body.toString();
}

async function call(url: string, { method, path, headers, body }: Call): Promise<Answer> {
  const response = await fetch(`${url}${path}`, { method, headers, body });
  const text = await response.text();
  return {
    status: response.status,
    headers: Object.fromEntries(COMPARED_HEADERS.map((name) => [name, response.headers.get(name)])),
    body: text,
  };
}

/** Sends every call to both registries in turn and expects the same answers. */
async function expectSameAnswers(
  fast: RunningRegistry,
  reference: RunningRegistry,
  calls: readonly Call[],
): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (const each of calls) {
    const viaFastPaths = await call(fast.url, each);
    const viaFastify = await call(reference.url, each);
    assert.deepEqual(viaFastPaths, viaFastify, `${each.name}: ${each.method} ${each.path}`);
    answers.push(viaFastPaths);
  }
  return answers;
}

describe('fast paths answer exactly as the Fastify routes', () => {
  const heartbeat = (fields: Record<string, string | number | object>): Pick<Call, 'method' | 'headers' | 'body'> => ({
    method: 'POST',
    headers: FORM,
    body: formBody({ ip: '10.0.0.1', port: 8080, revision: 'r1', tags: TAGS, ...fields }),
  });

  test('heartbeats, rejected heartbeats, reads and conditional reads; the same hosts stored', async () => {
    // One clock for both, so check-in times (and so bodies and ETags) are identical.
    const clock = new ManualClock();
    const fast = await startRegistry({ clock });
    const reference = await startRegistry({ clock, fastPaths: false });
    try {
      const calls: Call[] = [
        { name: 'new host', path: '/v1/registration/users', ...heartbeat({}) },
        {
          name: 'second host with extra fields',
          path: '/v1/registration/users',
          ...heartbeat({ ip: '10.0.0.2', service_repo_name: 'users-repo', extra: 'kept out' }),
        },
        { name: 'tag merge', path: '/v1/registration/users', ...heartbeat({ tags: { ...TAGS, canary: true } }) },
        { name: 'IPv6 canonicalised', path: '/v1/registration/users', ...heartbeat({ ip: '2001:DB8:0:0:0:0:0:1' }) },
        {
          name: 'tags missing',
          path: '/v1/registration/users',
          method: 'POST',
          headers: FORM,
          body: formBody({ ip: '10.0.0.3', port: 1, revision: 'r' }),
        },
        { name: 'port zero', path: '/v1/registration/users', ...heartbeat({ port: 0 }) },
        {
          name: 'port twice',
          path: '/v1/registration/users',
          method: 'POST',
          headers: FORM,
          body: `${formBody({ ip: '10.0.0.3', revision: 'r', tags: TAGS })}&port=1&port=2`,
        },
        { name: 'port not a number', path: '/v1/registration/users', ...heartbeat({ port: 'eighty' }) },
        { name: 'bad address', path: '/v1/registration/users', ...heartbeat({ ip: '10.0.0.256' }) },
        { name: 'tags not JSON', path: '/v1/registration/users', ...heartbeat({ tags: '{nope' }) },
        {
          name: 'tag region missing',
          path: '/v1/registration/users',
          ...heartbeat({ tags: { az: 'a', instance_id: 'i' } }),
        },
        {
          name: '__proto__ tag',
          path: '/v1/registration/users',
          ...heartbeat({ tags: '{"az":"a","region":"r","instance_id":"i","__proto__":{"x":1}}' }),
        },
        {
          name: 'auto_ip from a disallowed range',
          path: '/v1/registration/users',
          method: 'POST',
          headers: FORM,
          body: formBody({ auto_ip: 'true', port: 1, revision: 'r', tags: TAGS }),
        },
        {
          name: 'form with charset (Fastify on both)',
          path: '/v1/registration/users',
          ...heartbeat({ ip: '10.0.0.4' }),
          headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        },
        {
          name: 'JSON body (Fastify on both)',
          path: '/v1/registration/users',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ip: '10.0.0.5', port: 1, revision: 'r', tags: TAGS }),
        },
        { name: 'empty form', path: '/v1/registration/users', method: 'POST', headers: FORM, body: '' },
        { name: 'name needing decoding', path: '/v1/registration/user%20s', ...heartbeat({}) },
        { name: 'list', method: 'GET', path: '/v1/registration/users' },
        { name: 'unknown service', method: 'GET', path: '/v1/registration/nobody' },
        { name: 'decoded name', method: 'GET', path: '/v1/registration/user%20s' },
        { name: 'query string', method: 'GET', path: '/v1/registration/users?fresh=1' },
        { name: 'trailing slash', method: 'GET', path: '/v1/registration/users/' },
        { name: 'name too long', method: 'GET', path: `/v1/registration/${'x'.repeat(300)}` },
        { name: '"repo" as a name', method: 'GET', path: '/v1/registration/repo' },
        { name: 'repo list', method: 'GET', path: '/v1/registration/repo/users-repo' },
        { name: 'HEAD', method: 'HEAD', path: '/v1/registration/users' },
      ];
      const answers = await expectSameAnswers(fast, reference, calls);
      assert.equal(answers[0]?.status, 200);
      assert.equal(answers[4]?.status, 400);
      const list = answers[calls.findIndex((each) => each.name === 'list')];
      assert.equal(
        JSON.parse(list?.body ?? '{}').hosts.length,
        6,
        'five form heartbeats (a port sent twice counts its first), one JSON: six hosts',
      );

      const etag = list?.headers.etag ?? '';
      const conditional: Call[] = [
        { name: 'matching ETag', method: 'GET', path: '/v1/registration/users', headers: { 'if-none-match': etag } },
        {
          name: 'ETag in a list',
          method: 'GET',
          path: '/v1/registration/users',
          headers: { 'if-none-match': `W/"other", ${etag}` },
        },
        { name: 'stale ETag', method: 'GET', path: '/v1/registration/users', headers: { 'if-none-match': 'W/"old"' } },
      ];
      const [matching] = await expectSameAnswers(fast, reference, conditional);
      assert.equal(matching?.status, 304);

      // Past HOST_TTL: both sweep, both answer the empty list.
      clock.advance((fast.config.hostTtlSeconds + 1) * 1000);
      const [expired] = await expectSameAnswers(fast, reference, [
        { name: 'after expiry', method: 'GET', path: '/v1/registration/users' },
      ]);
      assert.deepEqual(JSON.parse(expired?.body ?? '{}').hosts, []);
    } finally {
      await fast.close();
      await reference.close();
    }
  });

  test('statuses: status heartbeats, plain and ?status= reads and their ETags are the same both ways', async () => {
    const clock = new ManualClock();
    const fast = await startRegistry({ clock });
    const reference = await startRegistry({ clock, fastPaths: false });
    try {
      const calls: Call[] = [
        { name: 'up host', path: '/v1/registration/users', ...heartbeat({}) },
        { name: 'draining host', path: '/v1/registration/users', ...heartbeat({ ip: '10.0.0.2', status: 'DRAINING' }) },
        {
          name: 'out-of-service host',
          path: '/v1/registration/users',
          ...heartbeat({ ip: '10.0.0.3', status: 'OUT_OF_SERVICE' }),
        },
        { name: 'unknown status', path: '/v1/registration/users', ...heartbeat({ ip: '10.0.0.4', status: 'down' }) },
        { name: 'plain list', method: 'GET', path: '/v1/registration/users' },
        { name: 'all', method: 'GET', path: '/v1/registration/users?status=all' },
        { name: 'one status', method: 'GET', path: '/v1/registration/users?status=DRAINING' },
        { name: 'bad query', method: 'GET', path: '/v1/registration/users?status=nope' },
      ];
      const answers = await expectSameAnswers(fast, reference, calls);
      const plain = answers[calls.findIndex((each) => each.name === 'plain list')];
      assert.deepEqual(
        JSON.parse(plain?.body ?? '{}').hosts.map((host: { ip_address: string }) => host.ip_address),
        ['10.0.0.1'],
      );
      assert.equal(answers[calls.findIndex((each) => each.name === 'unknown status')]?.status, 400);
      const [again] = await expectSameAnswers(fast, reference, [
        {
          name: 'plain list, conditional',
          method: 'GET',
          path: '/v1/registration/users',
          headers: { 'if-none-match': plain?.headers.etag ?? '' },
        },
      ]);
      assert.equal(again?.status, 304);
    } finally {
      await fast.close();
      await reference.close();
    }
  });

  test('with credentials required: 401, 403 and 200 alike', async () => {
    const env = { AUTH_READ_PASSWORD: 'reader-secret', AUTH_REGISTER_TOKENS: 'register-token' };
    const clock = new ManualClock();
    const fast = await startRegistry({ clock, env });
    const reference = await startRegistry({ clock, env, fastPaths: false });
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    try {
      const answers = await expectSameAnswers(fast, reference, [
        { name: 'heartbeat without credential', path: '/v1/registration/users', ...heartbeat({}) },
        {
          name: 'heartbeat with a read credential',
          path: '/v1/registration/users',
          ...heartbeat({}),
          headers: { ...FORM, authorization: basic('read', 'reader-secret') },
        },
        {
          name: 'heartbeat with the register token',
          path: '/v1/registration/users',
          ...heartbeat({}),
          headers: { ...FORM, authorization: 'Bearer register-token' },
        },
        { name: 'read without credential', method: 'GET', path: '/v1/registration/users' },
        {
          name: 'read with a wrong password',
          method: 'GET',
          path: '/v1/registration/users',
          headers: { authorization: basic('read', 'guess') },
        },
        {
          name: 'read with the read password',
          method: 'GET',
          path: '/v1/registration/users',
          headers: { authorization: basic('read', 'reader-secret') },
        },
      ]);
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [401, 403, 200, 401, 401, 200],
      );
    } finally {
      await fast.close();
      await reference.close();
    }
  });
});

const NO_CREDENTIALS: AuthConfig = { passwords: {}, tokens: { read: [], register: [], admin: [] } };
const ROLE_TOKENS: AuthConfig = {
  passwords: {},
  tokens: { read: ['tok-read-0123456789'], register: ['tok-register-0123456789'], admin: ['tok-admin-0123456789'] },
};
const bearer = (role: string) => ({ authorization: `Bearer tok-${role}-0123456789` });

interface BareFastPaths {
  readonly url: string;
  readonly store: MemoryHostStore;
  readonly fastPaths: FastPaths;
  /** The stand-in app whose routes declare the access. */
  readonly routes: ReturnType<typeof Fastify>;
  /** Requests the fast paths left alone (answered 418 here). */
  leftToFastify(): number;
  close(): Promise<void>;
}

/**
 * FastPaths in front of a stand-in for Fastify that answers 418, with the two registration
 * routes declared `access` on an app running the real RoutePolicy.
 */
async function startBareFastPaths(
  authConfig: AuthConfig,
  access: { get: Access; post: Access } | undefined,
): Promise<BareFastPaths> {
  const store = new MemoryHostStore();
  const log = pino({ level: 'silent' }) as Logger;
  const hostService = new HostService({
    store,
    clock: new ManualClock(),
    hostTtlSeconds: 30,
    cacheType: 'null',
    cacheTtlSeconds: 30,
    stats: new RecordingStats(),
    log,
  });
  const authorizer = new Authorizer(authConfig);
  const policy = new RoutePolicy(authorizer);
  const routes = Fastify();
  policy.install(routes);
  if (access) {
    routes.get('/v1/registration/:service', { config: { access: access.get } }, async () => 'unused');
    routes.post('/v1/registration/:service', { config: { access: access.post } }, async () => 'unused');
  }
  await routes.ready();
  const answers = new RegistrationAnswers({
    hostService,
    encoder: new HostListEncoder('test'),
    validation: new RequestValidation(),
    autoIp: { allowedRanges: [], trustedProxyHops: 0 },
    debug: false,
    log,
  });
  const fastPaths = new FastPaths({
    hostService,
    answers,
    authorizer,
    policy,
    answered: new AnsweredRequests(undefined, log, { accessLog: false, debug: false }),
    bodyLimitBytes: 1024,
    log,
  });
  if (access) fastPaths.takeAccessFromRoutes(routes);
  let left = 0;
  const server = createServer((request, response) => {
    if (fastPaths.tryServe(request, response)) return;
    left++;
    request.resume();
    response.writeHead(418).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return {
    url: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    store,
    fastPaths,
    routes,
    leftToFastify: () => left,
    close: async () => {
      server.close();
      await routes.close();
    },
  };
}

describe('the fast paths take the access their routes declare', () => {
  const heartbeatInit = (headers: Record<string, string> = {}): RequestInit => ({
    method: 'POST',
    headers: { ...FORM, ...headers },
    body: formBody({ ip: '10.0.0.1', port: 8080, revision: 'r1', tags: TAGS }),
  });
  const statusAt = async (url: string, init: RequestInit = {}) => {
    const response = await fetch(`${url}/v1/registration/users`, init);
    await response.arrayBuffer();
    return response.status;
  };

  test('as declared (read, register): a caller with the role is answered, others are left to Fastify', async () => {
    const bare = await startBareFastPaths(ROLE_TOKENS, { get: 'read', post: 'register' });
    try {
      assert.deepEqual(
        [
          await statusAt(bare.url),
          await statusAt(bare.url, { headers: bearer('read') }),
          await statusAt(bare.url, heartbeatInit(bearer('read'))),
          await statusAt(bare.url, heartbeatInit(bearer('register'))),
        ],
        [418, 200, 418, 200],
      );
    } finally {
      await bare.close();
    }
  });

  test('declared admin, both need the admin role: a read or register credential is left to Fastify', async () => {
    const bare = await startBareFastPaths(ROLE_TOKENS, { get: 'admin', post: 'admin' });
    try {
      assert.deepEqual(
        [
          await statusAt(bare.url, { headers: bearer('read') }),
          await statusAt(bare.url, { headers: bearer('admin') }),
          await statusAt(bare.url, heartbeatInit(bearer('register'))),
          await statusAt(bare.url, heartbeatInit(bearer('admin'))),
        ],
        [418, 200, 418, 200],
      );
    } finally {
      await bare.close();
    }
  });

  test('declared public, the GET is answered without a credential though reads are protected', async () => {
    const bare = await startBareFastPaths(ROLE_TOKENS, { get: 'public', post: 'register' });
    try {
      assert.equal(await statusAt(bare.url), 200);
      assert.equal(await statusAt(bare.url, heartbeatInit()), 418);
    } finally {
      await bare.close();
    }
  });

  test('without the routes registered they cannot start, and until started they take nothing', async () => {
    const bare = await startBareFastPaths(NO_CREDENTIALS, undefined);
    try {
      assert.throws(
        () => bare.fastPaths.takeAccessFromRoutes(bare.routes),
        /GET \/v1\/registration\/:service is not registered/,
      );
      assert.equal(await statusAt(bare.url), 418);
      assert.equal(await statusAt(bare.url, heartbeatInit()), 418);
      assert.equal(bare.leftToFastify(), 2);
    } finally {
      await bare.close();
    }
  });
});

describe('which requests the fast paths take', () => {
  let bare: BareFastPaths;
  let url: string;
  let store: MemoryHostStore;
  const leftToFastifyCount = () => bare.leftToFastify();

  before(async () => {
    bare = await startBareFastPaths(NO_CREDENTIALS, { get: 'read', post: 'register' });
    url = bare.url;
    store = bare.store;
  });
  after(() => bare.close());

  async function statusOf(path: string, init: RequestInit = {}): Promise<number> {
    const response = await fetch(`${url}${path}`, init);
    await response.arrayBuffer();
    return response.status;
  }

  test('the plain GET and form heartbeat are answered here, valid or not', async () => {
    const body = formBody({ ip: '10.0.0.1', port: 8080, revision: 'r1', tags: TAGS });
    assert.equal(await statusOf('/v1/registration/users', { method: 'POST', headers: FORM, body }), 200);
    assert.equal(await statusOf('/v1/registration/users', { method: 'POST', headers: FORM, body: 'ip=10.0.0.1' }), 400);
    assert.equal(await statusOf('/v1/registration/users'), 200);
    assert.equal(leftToFastifyCount(), 0);
    assert.equal((await store.listByService('users')).hosts.length, 1);
  });

  test('everything else is left to Fastify untouched', async () => {
    const body = formBody({ ip: '10.0.0.1', port: 8080, revision: 'r1', tags: TAGS });
    const leftAlone: Array<[string, RequestInit]> = [
      ['/v1/registration/users', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }],
      [
        '/v1/registration/users',
        { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' },
      ],
      ['/v1/registration/users', { method: 'POST', headers: FORM, body: 'x'.repeat(2048) }],
      ['/v1/registration/users', { method: 'POST', headers: FORM, body: '' }],
      ['/v1/registration/users', { method: 'DELETE' }],
      ['/v1/registration/users', { method: 'HEAD' }],
      ['/v1/registration/users/10.0.0.1', { method: 'DELETE' }],
      ['/v1/registration/user%20s', {}],
      ['/v1/registration/users?x=1', {}],
      ['/v1/registration/repo', {}],
      ['/v1/registration/repo/users-repo', {}],
      [`/v1/registration/${'x'.repeat(257)}`, {}],
      ['/v1/loadbalancing/users/10.0.0.1', { method: 'POST', headers: FORM, body }],
      ['/healthcheck', {}],
    ];
    for (const [path, init] of leftAlone) {
      const before = leftToFastifyCount();
      assert.equal(await statusOf(path, init), 418, `${init.method ?? 'GET'} ${path.slice(0, 60)}`);
      assert.equal(leftToFastifyCount(), before + 1);
    }
    assert.equal((await store.listByService('users')).hosts.length, 1, 'nothing the fast paths left alone was stored');
  });

  test('answers written together after a burst still reach every client, each its own', async () => {
    const services = Array.from({ length: 8 }, (_, index) => `burst${index}`);
    await Promise.all(
      services.flatMap((service) =>
        Array.from({ length: 5 }, (_, index) =>
          fetch(`${url}/v1/registration/${service}`, {
            method: 'POST',
            headers: FORM,
            body: formBody({ ip: `10.1.0.${index}`, port: 80, revision: 'r', tags: TAGS }),
          }).then(async (response) => assert.equal(`${response.status} ${await response.text()}`, '200 {}')),
        ),
      ),
    );
    const lists = await Promise.all(
      services.map((service) =>
        fetch(`${url}/v1/registration/${service}`).then(
          (response) => response.json() as Promise<{ service: string; hosts: unknown[] }>,
        ),
      ),
    );
    assert.deepEqual(
      lists.map((list) => [list.service, list.hosts.length]),
      services.map((service) => [service, 5]),
    );
  });

  test('pipelined requests on one connection are answered in order, fast path or not', async () => {
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    await once(socket, 'connect');
    const body = formBody({ ip: '10.2.0.1', port: 80, revision: 'r', tags: TAGS });
    socket.write(
      'GET /v1/registration/first HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /healthcheck HTTP/1.1\r\nHost: x\r\n\r\n' +
        `POST /v1/registration/pipelined HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        'GET /v1/registration/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    await once(socket, 'end');
    const answers = received.split(/(?=HTTP\/1\.1 \d{3} )/).map((answer) => {
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      return `${head.split('\r\n')[0]} ${body}`;
    });
    assert.deepEqual(answers, [
      'HTTP/1.1 200 OK {"env":"test","hosts":[],"service":"first"}',
      "HTTP/1.1 418 I'm a Teapot 0",
      'HTTP/1.1 200 OK {}',
      'HTTP/1.1 200 OK {"env":"test","hosts":[],"service":"last"}',
    ]);
  });
});

describe('fast paths at debug level', () => {
  test('log the same request line as the Fastify routes', async () => {
    const linesOf = async (fastPaths: boolean) => {
      const lines: Array<Record<string, unknown>> = [];
      const log = pino(
        { level: 'debug' },
        { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
      );
      const registry = await composeRegistry(loadConfig({ BACKEND_STORAGE: 'InMemory', LOG_LEVEL: 'DEBUG' }), log, {
        clock: new ManualClock(),
        stats: new RecordingStats(),
        fastPaths,
      });
      await registry.app.listen({ port: 0, host: '127.0.0.1' });
      const address = registry.app.server.address();
      const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      try {
        const body = formBody({ ip: '10.0.0.1', port: 8080, revision: 'r1', tags: TAGS });
        assert.equal(
          (await fetch(`${url}/v1/registration/users`, { method: 'POST', headers: FORM, body })).status,
          200,
        );
        assert.equal((await fetch(`${url}/v1/registration/users`)).status, 200);
      } finally {
        await registry.close();
      }
      return lines
        .filter((line) => line.msg === 'request')
        .map(({ method, url: path, status }) => ({ method, path, status }));
    };
    const expected = [
      { method: 'POST', path: '/v1/registration/users', status: 200 },
      { method: 'GET', path: '/v1/registration/users', status: 200 },
    ];
    assert.deepEqual(await linesOf(true), expected);
    assert.deepEqual(await linesOf(false), expected);
  });
});
