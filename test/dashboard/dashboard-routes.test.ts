import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('dashboard files and settings over HTTP', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry({ env: { HOST_TTL: '45', APPLICATION_ENV: 'staging' } });
  });
  after(async () => server.close());

  test('/ui redirects to /ui/, which serves the page with a strict content security policy', async () => {
    const redirect = await fetch(`${server.url}/ui`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal(redirect.headers.get('location'), 'ui/');
    const page = await fetch(`${server.url}/ui/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await page.text(), /<script type="module" src="app.js">/);
  });

  test('scripts and styles are served with their types and revalidate to 304', async () => {
    for (const [file, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['style.css', 'text/css; charset=utf-8'],
    ]) {
      const response = await fetch(`${server.url}/ui/${file}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-type'), type);
      assert.equal(response.headers.get('cache-control'), 'no-cache');
      const etag = response.headers.get('etag') ?? '';
      assert.equal((await fetch(`${server.url}/ui/${file}`, { headers: { 'if-none-match': etag } })).status, 304);
    }
  });

  test('anything else under /ui/ is a JSON 404, and no path leaves the folder', async () => {
    for (const path of [
      '/ui/missing.js',
      '/ui/..%2fpackage.json',
      '/ui/%2e%2e%2f%2e%2e%2fpackage.json',
      '/ui/sub/app.js',
    ]) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.status, 404, path);
      assert.match(((await response.json()) as { error: string }).error, /^Not found/);
    }
  });

  test('GET /v1/ui/config gives what the page needs: env, HOST_TTL and whether writes need credentials', async () => {
    const response = await fetch(`${server.url}/v1/ui/config`);
    assert.deepEqual(await response.json(), { env: 'staging', host_ttl_seconds: 45, writes_protected: false });
  });

  test('with read credentials the page asks for them, so the browser reuses them for the API', async () => {
    const locked = await startRegistry({ env: { AUTH_READ_PASSWORD: 'readers-only-please' } });
    try {
      const response = await fetch(`${locked.url}/ui/`);
      assert.equal(response.status, 401);
      assert.match(response.headers.get('www-authenticate') ?? '', /Basic/);
      const authorization = `Basic ${Buffer.from('read:readers-only-please').toString('base64')}`;
      assert.equal((await fetch(`${locked.url}/ui/`, { headers: { authorization } })).status, 200);
    } finally {
      await locked.close();
    }
  });
});
