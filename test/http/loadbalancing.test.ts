import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WEIGHT_INVALID, WEIGHT_MISSING } from '../../src/http/validation.js';
import { StorageUnavailableError } from '../../src/errors.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { form, listHosts, register, startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('v1 load-balancing API', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry();
  });
  after(async () => server.close());

  async function setWeight(
    path: string,
    body?: URLSearchParams | string,
    headers: Record<string, string> = {},
  ): Promise<Response> {
    return fetch(`${server.url}/v1/loadbalancing/${path}`, { method: 'POST', body, headers });
  }

  test('a weight for one host answers 204 with an empty body and is stored as a number', async () => {
    await register(server.url, 'lb', { ip: '10.0.0.1' });
    await register(server.url, 'lb', { ip: '10.0.0.2' });
    const response = await setWeight('lb/10.0.0.1', form({ load_balancing_weight: 40 }));
    assert.equal(response.status, 204);
    assert.equal(await response.text(), '');
    const hosts = (await listHosts(server.url, 'lb')).hosts;
    assert.equal(hosts[0]!.tags.load_balancing_weight, 40);
    assert.equal(hosts[1]!.tags.load_balancing_weight, undefined);
  });

  test("a weight set through loadbalancing survives the host's next heartbeat", async () => {
    await register(server.url, 'sticky', { ip: '10.0.0.1' });
    await setWeight('sticky/10.0.0.1', form({ load_balancing_weight: 77 }));
    await register(server.url, 'sticky', { ip: '10.0.0.1', revision: 'later' });
    const [host] = (await listHosts(server.url, 'sticky')).hosts;
    assert.equal(host!.revision, 'later');
    assert.equal(host!.tags.load_balancing_weight, 77);
  });

  test('a weight for the whole service answers 204 (not the original 500) and sets every host', async () => {
    await register(server.url, 'all', { ip: '10.0.0.1' });
    await register(server.url, 'all', { ip: '10.0.0.2' });
    const response = await setWeight('all', form({ load_balancing_weight: 5 }));
    assert.equal(response.status, 204);
    assert.deepEqual(
      (await listHosts(server.url, 'all')).hosts.map((host) => host.tags.load_balancing_weight),
      [5, 5],
    );
  });

  test('a missing weight answers 400 with the original message', async () => {
    await register(server.url, 'lb2', { ip: '10.0.0.1' });
    for (const body of [undefined, form({}), form({ load_balancing_weight: '' })]) {
      const response = await setWeight('lb2/10.0.0.1', body);
      assert.equal(response.status, 400);
      assert.deepEqual(await response.json(), { error: WEIGHT_MISSING });
    }
  });

  test('a weight that is not an integer in 1..100 answers 400 with the original message and changes nothing', async () => {
    await register(server.url, 'lb3', { ip: '10.0.0.1' });
    await setWeight('lb3/10.0.0.1', form({ load_balancing_weight: 10 }));
    for (const weight of ['0', '101', '-5', 'abc', '2.5', '1e2', '50x']) {
      const response = await setWeight('lb3/10.0.0.1', form({ load_balancing_weight: weight }));
      assert.equal(response.status, 400, `weight ${weight}`);
      assert.deepEqual(await response.json(), { error: WEIGHT_INVALID });
    }
    assert.equal((await listHosts(server.url, 'lb3')).hosts[0]!.tags.load_balancing_weight, 10);
  });

  test('a weight in a JSON body is accepted', async () => {
    await register(server.url, 'lbjson', { ip: '10.0.0.1' });
    const response = await setWeight('lbjson/10.0.0.1', JSON.stringify({ load_balancing_weight: 100 }), {
      'content-type': 'application/json',
    });
    assert.equal(response.status, 204);
    assert.equal((await listHosts(server.url, 'lbjson')).hosts[0]!.tags.load_balancing_weight, 100);
  });

  test('a weight for an unknown host answers 404 Host not found and creates nothing', async () => {
    const response = await setWeight('nohost/10.9.9.9', form({ load_balancing_weight: 5 }));
    assert.equal(response.status, 404);
    assert.deepEqual(await response.json(), { error: 'Host not found' });
    assert.deepEqual((await listHosts(server.url, 'nohost')).hosts, []);
  });

  test('a weight for a service without hosts answers 204 and creates nothing, as the original did', async () => {
    const response = await setWeight('empty-service', form({ load_balancing_weight: 5 }));
    assert.equal(response.status, 204);
    assert.equal(await response.text(), '');
    assert.deepEqual((await listHosts(server.url, 'empty-service')).hosts, []);
    const services = (await (await fetch(`${server.url}/v1/services`)).json()) as {
      services: Array<{ service: string }>;
    };
    assert.ok(!services.services.some((summary) => summary.service === 'empty-service'));
  });

  test('a weight for a service without hosts is still checked: a bad weight is a 400', async () => {
    assert.equal((await setWeight('empty-service', form({ load_balancing_weight: 500 }))).status, 400);
  });
});

describe('a weight for the whole service that storage fails part-way', () => {
  /** Lets the first `allowed` tag updates through, then fails like an unreachable store. */
  class FailingAfter extends MemoryHostStore {
    allowed = Infinity;
    override async updateTags(service: string, ipAddress: string, tags: Readonly<Record<string, unknown>>) {
      if (this.allowed-- <= 0) throw new StorageUnavailableError('Storage unavailable (test: refused); retry later.');
      return super.updateTags(service, ipAddress, tags);
    }
  }

  test('answers 503 saying how many hosts were weighted, and reads show what was written', async () => {
    const store = new FailingAfter();
    const server = await startRegistry({ store, env: { CACHE_TYPE: 'simple', CACHE_TTL: '600' } });
    try {
      for (const ip of ['10.0.0.1', '10.0.0.2', '10.0.0.3'])
        assert.equal((await register(server.url, 'partial', { ip })).status, 200);
      assert.equal((await listHosts(server.url, 'partial')).hosts.length, 3); // now cached for CACHE_TTL
      store.allowed = 1;
      const response = await fetch(`${server.url}/v1/loadbalancing/partial`, {
        method: 'POST',
        body: form({ load_balancing_weight: 9 }),
      });
      assert.equal(response.status, 503);
      assert.match(((await response.json()) as { error: string }).error, /set on 1 of 3 hosts; retry/);
      const weights = (await listHosts(server.url, 'partial')).hosts.map((host) => host.tags.load_balancing_weight);
      assert.deepEqual(weights, [9, undefined, undefined]);
      store.allowed = Infinity;
      assert.equal(
        (
          await fetch(`${server.url}/v1/loadbalancing/partial`, {
            method: 'POST',
            body: form({ load_balancing_weight: 9 }),
          })
        ).status,
        204,
      );
      assert.deepEqual(
        (await listHosts(server.url, 'partial')).hosts.map((host) => host.tags.load_balancing_weight),
        [9, 9, 9],
      );
    } finally {
      await server.close();
    }
  });
});
