import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('methods a path does not serve, as the original framework answered them', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry();
  });
  after(async () => server.close());

  const allowOf = (response: Response) => (response.headers.get('allow') ?? '').split(', ').sort();

  for (const [method, path, allowed] of [
    ['PUT', '/v1/registration/users', ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST']],
    ['PATCH', '/v1/registration/users/10.0.0.1', ['DELETE', 'OPTIONS']],
    ['GET', '/v1/loadbalancing/users/10.0.0.1', ['OPTIONS', 'POST']],
    ['DELETE', '/v1/loadbalancing/users', ['OPTIONS', 'POST']],
    ['POST', '/healthcheck', ['GET', 'HEAD', 'OPTIONS']],
    ['POST', '/v1/services', ['GET', 'HEAD', 'OPTIONS']],
  ] as const) {
    test(`${method} ${path}: 405 with Allow and a JSON error`, async () => {
      const response = await fetch(`${server.url}${path}`, { method });
      assert.equal(response.status, 405);
      assert.deepEqual(allowOf(response), allowed);
      const body = (await response.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['error']);
      assert.match(String(body.error), new RegExp(`${method} not allowed`));
    });
  }

  test('OPTIONS on a known path: 200 with Allow and no body', async () => {
    const response = await fetch(`${server.url}/v1/registration/users`, { method: 'OPTIONS' });
    assert.equal(response.status, 200);
    assert.deepEqual(allowOf(response), ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST']);
    assert.equal(await response.text(), '');
  });

  test('an unknown path stays a 404, whatever the method', async () => {
    for (const method of ['GET', 'PUT', 'OPTIONS']) {
      const response = await fetch(`${server.url}/v2/nothing/here`, { method });
      assert.equal(response.status, 404, method);
      assert.equal(response.headers.get('allow'), null);
    }
  });
});
