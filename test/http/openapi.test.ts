import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { routesOf } from '../../src/http/route-list.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp-dir.js';

interface Operation {
  summary?: string;
  operationId?: string;
  description?: string;
  parameters?: { name: string; in: string; required?: boolean; schema?: { default?: unknown } }[];
  requestBody?: unknown;
  security?: Array<Record<string, string[]>>;
  responses: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

interface OpenApi {
  openapi: string;
  components?: { securitySchemes?: Record<string, unknown> };
  paths: Record<string, Record<string, Operation>>;
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Every operation of the document, with its method and path. */
function operations(document: OpenApi): Array<{ method: string; path: string; operation: Operation }> {
  return Object.entries(document.paths).flatMap(([path, byMethod]) =>
    Object.entries(byMethod).map(([method, operation]) => ({ method, path, operation })),
  );
}

async function describedBy(server: RunningRegistry): Promise<OpenApi> {
  const response = await fetch(`${server.url}/openapi.json`);
  assert.equal(response.status, 200);
  return (await response.json()) as OpenApi;
}

/**
 * Redocly CLI's verdict on the document `server` serves, with the repo's redocly.yaml and its
 * ignore file (keyed by the name openapi.json, so the copy is linted under that name).
 */
async function redoclyLint(server: RunningRegistry): Promise<{
  totals: { errors: number; warnings: number };
  problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }>;
}> {
  const temp = await tempDir('openapi-lint-');
  const dir = temp.path;
  await writeFile(path.join(dir, 'openapi.json'), await (await fetch(`${server.url}/openapi.json`)).text());
  await copyFile(path.join(REPO_ROOT, 'redocly.yaml'), path.join(dir, 'redocly.yaml'));
  await copyFile(path.join(REPO_ROOT, '.redocly.lint-ignore.yaml'), path.join(dir, '.redocly.lint-ignore.yaml'));
  const child = spawn(
    path.join(REPO_ROOT, 'node_modules/.bin/redocly'),
    ['lint', 'openapi.json', '--config', 'redocly.yaml', '--format', 'json'],
    {
      cwd: dir,
      // Offline and quiet: no usage report, no check for a newer version.
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  }).finally(() => temp.remove());
  assert.ok(stdout.trim().startsWith('{'), `redocly printed no report (exit ${code}): ${stderr}`);
  return JSON.parse(stdout) as Awaited<ReturnType<typeof redoclyLint>>;
}

/** The access each described operation declares (route-policy.ts), as the document must reflect it. */
const ACCESS: Record<string, 'public' | 'read' | 'register' | 'admin'> = {
  healthcheck: 'public',
  readiness: 'public',
  liveness: 'public',
  getMetrics: 'read',
  listServiceHosts: 'read',
  listRepoHosts: 'read',
  listServices: 'read',
  getDashboardConfig: 'read',
  getDashboardServer: 'read',
  listDashboardServices: 'read',
  listDashboardHosts: 'read',
  fetchEndpoints: 'read',
  listXdsClients: 'read',
  heartbeat: 'register',
  deleteHost: 'admin',
  deleteHostWithoutAddress: 'admin',
  setHostWeight: 'admin',
  deleteInstance: 'admin',
  setInstanceWeight: 'admin',
  setServiceWeight: 'admin',
  setHostStatus: 'admin',
  clearHostStatus: 'admin',
  setHostStatusAndPort: 'admin',
  clearHostStatusAndPort: 'admin',
  takeChangeHint: 'register',
};

const ALL_CREDENTIALS = {
  AUTH_READ_PASSWORD: 'read-password-0123456789',
  AUTH_REGISTER_TOKENS: 'register-token-0123456789',
  AUTH_ADMIN_PASSWORD: 'admin-password-0123456789',
  AUTH_ADMIN_TOKENS: 'admin-token-0123456789',
};

/** Fastify path -> OpenAPI path: `:name` becomes `{name}`, and `::` is a literal colon. */
function openApiPath(url: string): string {
  return url
    .replace(/::/g, '\uE000')
    .replace(/:([A-Za-z_]+)/g, '{$1}')
    .replace(/\uE000/g, ':');
}

describe('OpenAPI description', () => {
  let server: RunningRegistry;
  const routes: Array<{ method: string; url: string; hidden: boolean }> = [];
  before(async () => {
    server = await startRegistry();
  });
  after(async () => server.close());

  test('GET /openapi.json is an OpenAPI 3 document describing every route the server has', async () => {
    // Every route the app registered, as Fastify announced them (onRoute).
    const response = await fetch(`${server.url}/openapi.json`);
    assert.equal(response.status, 200);
    const document = (await response.json()) as OpenApi;
    assert.match(document.openapi, /^3\./);
    for (const route of collectRoutes(server)) {
      if (route.hidden || route.url.startsWith('/docs') || route.method === 'HEAD') continue;
      routes.push(route);
      const path = openApiPath(route.url);
      const operation = document.paths[path]?.[route.method.toLowerCase()];
      assert.ok(operation, `${route.method} ${route.url} is not described (as ${path})`);
      assert.ok(operation.summary, `${route.method} ${route.url} has no summary`);
    }
    assert.ok(routes.length >= 10, `only ${routes.length} routes found`);
  });

  test('the heartbeat is described from the schema that validates it', async () => {
    const document = (await (await fetch(`${server.url}/openapi.json`)).json()) as OpenApi;
    const heartbeat = document.paths['/v1/registration/{service}']?.post;
    const text = JSON.stringify(heartbeat);
    for (const field of ['ip', 'auto_ip', 'port', 'revision', 'service_repo_name', 'tags'])
      assert.ok(text.includes(`"${field}"`), field);
    assert.ok(text.includes('"maximum":65535'));
    assert.ok(text.includes('application/x-www-form-urlencoded'));
    // No credential is configured here, so no 401 or 403 is described.
    assert.deepEqual(Object.keys(heartbeat?.responses ?? {}).sort(), ['200', '400', '503']);
  });

  test('Redocly CLI lints the served document with no error and no warning', async () => {
    const report = await redoclyLint(server);
    const problems = report.problems.map((problem) => `${problem.ruleId} ${problem.location[0]?.pointer}`);
    assert.deepEqual(problems, []);
    assert.deepEqual(report.totals, { ...report.totals, errors: 0, warnings: 0 });
  });

  test('every operation has a unique operationId and a response schema for each answer with a body', async () => {
    const document = await describedBy(server);
    const ids = operations(document).map(({ method, path, operation }) => {
      assert.match(operation.operationId ?? '', /^[a-z][A-Za-z]+$/, `${method} ${path} has no operationId`);
      for (const [status, response] of Object.entries(operation.responses)) {
        if (status === '204' || status === '304') continue;
        const media = Object.values(response.content ?? {});
        assert.ok(
          media.length > 0 && media.every((entry) => entry.schema !== undefined),
          `${method} ${path} ${status}`,
        );
      }
      return operation.operationId!;
    });
    assert.equal(new Set(ids).size, ids.length, `duplicate operationIds: ${ids.join(', ')}`);
    assert.deepEqual([...ids].sort(), Object.keys(ACCESS).sort());
  });

  test('a query parameter with a default is not required', async () => {
    const document = await describedBy(server);
    const limit = document.paths['/v1/services']?.get?.parameters?.find((parameter) => parameter.name === 'limit');
    assert.ok(limit);
    assert.equal(limit.required, false);
    assert.equal(limit.schema?.default, 1000);
    for (const { method, path, operation } of operations(document))
      for (const parameter of operation.parameters ?? [])
        if (parameter.schema?.default !== undefined)
          assert.notEqual(parameter.required, true, `${method} ${path} ${parameter.name}`);
  });

  test('with no credential configured, no operation needs one and no scheme is declared', async () => {
    const document = await describedBy(server);
    assert.deepEqual(document.components?.securitySchemes ?? {}, {});
    for (const { method, path, operation } of operations(document)) {
      assert.deepEqual(operation.security, [], `${method} ${path}`);
      assert.equal(operation.responses['401'], undefined, `${method} ${path}`);
    }
  });

  test('/docs serves the browsable page without any CDN', async () => {
    const response = await fetch(`${server.url}/docs/static/index.html`);
    assert.equal(response.status, 200);
    const html = await response.text();
    assert.match(html, /swagger/i);
    assert.doesNotMatch(html, /https?:\/\/(?!localhost|127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}\/[^"']*\.(js|css)/i);
  });
});

describe('OpenAPI security follows the auth settings', () => {
  test('every role locked: each operation lists the schemes of its role, 401, and 403 where a weaker credential exists', async () => {
    const server = await startRegistry({ env: ALL_CREDENTIALS });
    try {
      const document = await describedBy(server);
      assert.deepEqual(Object.keys(document.components?.securitySchemes ?? {}).sort(), ['basic', 'bearer']);
      for (const { method, path, operation } of operations(document)) {
        const name = `${method} ${path}`;
        const access = ACCESS[operation.operationId!];
        const statuses = Object.keys(operation.responses);
        if (access === 'public') {
          assert.deepEqual(operation.security, [], name);
          assert.ok(!statuses.includes('401'), name);
          continue;
        }
        // read: a read password and tokens above it; register: register and admin tokens, admin's password.
        assert.deepEqual(operation.security, [{ basic: [] }, { bearer: [] }], name);
        assert.ok(statuses.includes('401'), name);
        // A read credential is the weakest there is: a read call never answers 403.
        assert.equal(statuses.includes('403'), access !== 'read', name);
        assert.match(operation.description ?? '', new RegExp(`'${access}' role`), name);
      }
      const report = await redoclyLint(server);
      assert.deepEqual(
        report.problems.map((problem) => `${problem.ruleId} ${problem.location[0]?.pointer}`),
        [],
      );
    } finally {
      await server.close();
    }
  });

  test('only an admin token: writes need a bearer token, reads stay open, and basic is not offered', async () => {
    const server = await startRegistry({ env: { AUTH_ADMIN_TOKENS: 'admin-token-0123456789' } });
    try {
      const document = await describedBy(server);
      assert.deepEqual(Object.keys(document.components?.securitySchemes ?? {}), ['bearer']);
      for (const { method, path, operation } of operations(document)) {
        const access = ACCESS[operation.operationId!];
        const locked = access === 'register' || access === 'admin';
        assert.deepEqual(operation.security, locked ? [{ bearer: [] }] : [], `${method} ${path}`);
        // The admin token is the only credential: nobody holds a weaker one, so no 403.
        assert.deepEqual(
          ['401', '403'].filter((status) => status in operation.responses),
          locked ? ['401'] : [],
          `${method} ${path}`,
        );
      }
      const report = await redoclyLint(server);
      assert.deepEqual(
        report.problems.map((problem) => `${problem.ruleId} ${problem.location[0]?.pointer}`),
        [],
      );
    } finally {
      await server.close();
    }
  });
});

function collectRoutes(server: RunningRegistry) {
  return routesOf(server.registry.app);
}
