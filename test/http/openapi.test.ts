import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { routesOf } from '../../src/http/route-list.js';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

interface OpenApi {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      {
        summary?: string;
        parameters?: { name: string; in: string }[];
        requestBody?: unknown;
        responses: Record<string, unknown>;
      }
    >
  >;
}

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
    assert.deepEqual(Object.keys(heartbeat?.responses ?? {}).sort(), ['200', '400', '401', '403', '503']);
  });

  test('/docs serves the browsable page without any CDN', async () => {
    const response = await fetch(`${server.url}/docs/static/index.html`);
    assert.equal(response.status, 200);
    const html = await response.text();
    assert.match(html, /swagger/i);
    assert.doesNotMatch(html, /https?:\/\/(?!localhost|127\.0\.0\.1)[a-z0-9.-]+\.[a-z]{2,}\/[^"']*\.(js|css)/i);
  });
});

function collectRoutes(server: RunningRegistry) {
  return routesOf(server.registry.app);
}
