import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TAGS_NOT_JSON } from '../../src/hosts/validation.js';
import { form, listHosts, register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

describe('heartbeat validation', () => {
  let server: RunningRegistry;
  const valid = { ip: '10.0.0.1', port: 9211, revision: 'r1', service_repo_name: 'repo', tags: TAGS };

  before(async () => {
    server = await startRegistry();
    // The stored record every rejected request below must leave as it is.
    assert.equal((await register(server.url, 'guarded', valid)).status, 200);
  });
  after(async () => server.close());

  async function snapshotOfGuarded(): Promise<string> {
    const body = await listHosts(server.url, 'guarded');
    return JSON.stringify(body.hosts);
  }

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['ip missing', { ip: undefined }, /'ip' is missing/],
    ['ip not an address', { ip: '10.0.0.256' }, /'ip'/],
    ['ip a hostname', { ip: 'example.internal' }, /'ip'/],
    ['port missing', { port: undefined }, /'port' is missing/],
    ['port not a number', { port: 'http' }, /'port'/],
    ['port zero', { port: 0 }, /'port'/],
    ['port above 65535', { port: 65536 }, /'port'/],
    ['port fractional', { port: 80.5 }, /'port'/],
    ['revision missing', { revision: undefined }, /'revision' is missing/],
    ['revision empty', { revision: '' }, /'revision'/],
    ['tags missing', { tags: undefined }, /'tags' is missing/],
    ['tags not JSON', { tags: '{az:' }, new RegExp(TAGS_NOT_JSON)],
    ['tags a JSON array', { tags: '[1,2]' }, /'tags'/],
    ['tags without az', { tags: { region: 'r', instance_id: 'i' } }, /'tags'.*'az'/],
    ['tags without region', { tags: { az: 'a', instance_id: 'i' } }, /'tags'.*'region'/],
    ['tags without instance_id', { tags: { az: 'a', region: 'r' } }, /'tags'.*'instance_id'/],
    ['canary not a boolean', { tags: { ...TAGS, canary: 'yes' } }, /'tags'.*canary/],
    ['weight tag out of range', { tags: { ...TAGS, load_balancing_weight: 0 } }, /'tags'.*load_balancing_weight/],
    ['weight tag not an integer', { tags: { ...TAGS, load_balancing_weight: 2.5 } }, /'tags'.*load_balancing_weight/],
    ['__proto__ tag', { tags: '{"az":"a","region":"r","instance_id":"i","__proto__":{"polluted":true}}' }, /__proto__/],
    ['too deep tag', { tags: { ...TAGS, deep: JSON.parse('['.repeat(20) + ']'.repeat(20)) } }, /deep/],
    ['tag key longer than 256 characters', { tags: { ...TAGS, ['k'.repeat(257)]: 1 } }, /'tags'.*256 characters/],
    ['auto_ip nonsense', { ip: undefined, auto_ip: 'maybe' }, /auto_ip/],
  ];

  for (const [name, change, message] of cases) {
    test(`${name}: 400 naming the field, counted as a failure, nothing written`, async () => {
      const before = await snapshotOfGuarded();
      const response = await register(server.url, 'guarded', { ...valid, ...change, revision: 'changed', ...('revision' in change ? { revision: change.revision } : {}) } as never);
      assert.equal(response.status, 400);
      assert.equal(response.headers.get('content-type')?.startsWith('application/json'), true);
      const body = (await response.json()) as { error: string };
      assert.match(body.error, message);
      assert.equal(await snapshotOfGuarded(), before);
    });
  }

  test('tags sent as a JSON object are held to the 16 KB the form field allows', async () => {
    const before = await snapshotOfGuarded();
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...valid, revision: 'changed', tags: { ...TAGS, big: 'x'.repeat(20_000) } }),
    });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /'tags'.*16384 characters/);
    assert.equal(await snapshotOfGuarded(), before);
  });

  test('duplicate parameters are rejected, not silently picked', async () => {
    const body = form({ ...valid, revision: 'changed' });
    body.append('ip', '10.0.0.2');
    const response = await fetch(`${server.url}/v1/registration/guarded`, { method: 'POST', body });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /'ip'/);
  });

  test('an over-long service name answers 400 naming it', async () => {
    const response = await register(server.url, 's'.repeat(300), valid);
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /'service'/);
    const read = await fetch(`${server.url}/v1/registration/${'s'.repeat(300)}`);
    assert.equal(read.status, 400);
  });

  test('an over-long repo name answers 400 naming it', async () => {
    const response = await register(server.url, 'guarded', { ...valid, service_repo_name: 'r'.repeat(300) });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /service_repo_name/);
  });

  test('a body over the size limit answers 413 with a JSON error', async () => {
    const response = await register(server.url, 'guarded', { ...valid, padding: 'x'.repeat(200 * 1024) });
    assert.equal(response.status, 413);
    assert.ok(((await response.json()) as { error: string }).error);
  });

  test('an unsupported content type answers 415 with a JSON error', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body: '<host/>',
    });
    assert.equal(response.status, 415);
    assert.ok(((await response.json()) as { error: string }).error);
  });

  test('a multipart body without a boundary answers 400, not 500 (found by the fuzz test)', async () => {
    for (const method of ['POST', 'DELETE']) {
      const response = await fetch(`${server.url}/v1/registration/guarded${method === 'DELETE' ? '/10.0.0.1' : ''}`, {
        method,
        headers: { 'content-type': 'multipart/form-data' },
        body: 'ip=10.0.0.1',
      });
      assert.equal(response.status, 400, method);
      assert.match(((await response.json()) as { error: string }).error, /Malformed request/);
    }
    assert.equal((await listHosts(server.url, 'guarded')).hosts.length, 1);
  });

  test('malformed JSON answers 400 with a JSON error', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"ip": "10.0.0.1",',
    });
    assert.equal(response.status, 400);
    assert.ok(((await response.json()) as { error: string }).error);
  });

  test('a POST without any body answers 400 naming a missing field', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, { method: 'POST' });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /is missing/);
  });

  test('a __proto__ key never reaches any prototype', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"ip":"10.0.0.1","port":1,"revision":"x","tags":{"az":"a","region":"r","instance_id":"i","__proto__":{"polluted":true}}}',
    });
    assert.equal(response.status, 400);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});
