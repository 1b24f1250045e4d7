import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { composeRegistry, type Registry } from '../../src/compose.js';
import { loadConfig } from '../../src/config.js';
import { tempDir } from '../helpers/temp-dir.js';
import { register, TAGS } from '../helpers/registry.js';

/**
 * A storage plugin as a user might write one, that hands back, next to every real record of a
 * service, records no registry should serve: numbers JSON cannot write, wrong types, a port a
 * proxy cannot dial, tags that are not plain data, a record of another service.
 */
const POISONING_PLUGIN = `
export function createStore() {
  const hosts = new Map();
  const key = (service, ip) => service + '\\u0000' + ip;
  const poisoned = (host) => [
    { ...host, ip_address: '10.9.0.1', port: Infinity },
    { ...host, ip_address: '10.9.0.2', port: -Infinity },
    { ...host, ip_address: '10.9.0.3', port: NaN },
    { ...host, ip_address: '10.9.0.4', port: 0 },
    { ...host, ip_address: '10.9.0.5', port: '80' },
    { ...host, ip_address: '10.9.0.6', port: 80.5 },
    { ...host, ip_address: '10.9.0.7', tags: null },
    { ...host, ip_address: '10.9.0.8', tags: { ...host.tags, big: 10n } },
    { ...host, ip_address: '10.9.0.9', tags: { ...host.tags, deep: JSON.parse('['.repeat(5000) + ']'.repeat(5000)) } },
    { ...host, ip_address: '10.9.0.10', tags: { ...host.tags, when: new Date() } },
    { ...host, ip_address: 'not-an-address' },
    { ...host, ip_address: '10.9.0.12', last_check_in: 'yesterday' },
    { ...host, ip_address: '10.9.0.13', revision: 42 },
    { ...host, ip_address: '10.9.0.14', service: 'another-service' },
    { ...host, ip_address: '10.9.0.15', service_repo_name: undefined },
    null,
    'a string',
  ];
  return {
    async heartbeat(hb) {
      const previous = hosts.get(key(hb.service, hb.ip_address));
      const current = { ...hb, tags: { ...previous?.tags, ...hb.tags } };
      hosts.set(key(hb.service, hb.ip_address), current);
      return { previous, current };
    },
    async get(service, ip) { return hosts.get(key(service, ip)); },
    async listByService(service) {
      const real = [...hosts.values()].filter((h) => h.service === service);
      return { hosts: real.flatMap((host) => [...poisoned(host), host]) };
    },
    async listByRepo(repo) {
      const real = [...hosts.values()].filter((h) => repo !== '' && h.service_repo_name === repo);
      return real.flatMap((host) => [...poisoned(host), { ...host, ip_address: '10.9.1.1', service_repo_name: 'other-repo' }, host]);
    },
    async listServices() { return [...new Set([...hosts.values()].map((h) => h.service))]; },
    async delete(service, ip) { const h = hosts.get(key(service, ip)); hosts.delete(key(service, ip)); return h; },
    async deleteIfCheckInIs() { return false; },
    async updateTags(service, ip, tags) {
      const h = hosts.get(key(service, ip));
      if (!h) return undefined;
      const updated = { ...h, tags: { ...h.tags, ...tags } };
      hosts.set(key(service, ip), updated);
      return updated;
    },
    async setStatusOverride(service, ip, status) {
      const h = hosts.get(key(service, ip));
      if (!h) return undefined;
      const updated = { ...h, status_override: status };
      hosts.set(key(service, ip), updated);
      return updated;
    },
    async close() {},
  };
}
`;

describe('a store that returns records no registry should serve', () => {
  let registry: Registry;
  let url: string;
  let removeDir: () => Promise<void>;
  const logLines: Array<{ level: number; msg: string; problem?: string; ip?: string }> = [];

  before(async () => {
    const dir = await tempDir();
    removeDir = dir.remove;
    await mkdir(path.join(dir.path, 'plugins', 'poisoning'), { recursive: true });
    await writeFile(path.join(dir.path, 'plugins', 'poisoning', 'index.mjs'), POISONING_PLUGIN);
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n'))
          if (line) logLines.push(JSON.parse(line) as (typeof logLines)[number]);
        done();
      },
    });
    const config = loadConfig({
      BACKEND_STORAGE: 'poisoning',
      APPLICATION_DIR: dir.path,
      LOG_LEVEL: 'ERROR',
      XDS_ENABLED: 'false',
    });
    registry = await composeRegistry(config, pino({ level: 'warn' }, sink));
    await registry.app.listen({ port: 0, host: '127.0.0.1' });
    const address = registry.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    url = `http://127.0.0.1:${address.port}`;
    assert.equal(
      (
        await register(url, 'web', {
          ip: '10.0.0.2',
          port: 8080,
          revision: 'r1',
          service_repo_name: 'web-repo',
          tags: TAGS,
        })
      ).status,
      200,
    );
  });
  after(async () => {
    await registry.close();
    await removeDir();
  });

  test('GET by service is valid JSON listing only the valid host', async () => {
    for (const fastPath of [true, false]) {
      // The `?` takes the request past the fast path to the Fastify route.
      const response = await fetch(`${url}/v1/registration/web${fastPath ? '' : '?'}`);
      assert.equal(response.status, 200);
      const body = JSON.parse(await response.text()) as { hosts: Array<{ ip_address: string; port: number }> };
      assert.deepEqual(
        body.hosts.map((host) => [host.ip_address, host.port]),
        [['10.0.0.2', 8080]],
      );
    }
  });

  test('GET by repo is valid JSON listing only the valid hosts of that repo', async () => {
    const response = await fetch(`${url}/v1/registration/repo/web-repo`);
    assert.equal(response.status, 200);
    const body = JSON.parse(await response.text()) as { hosts: Array<{ service: string; ip_address: string }> };
    // A repo spans services, so the record of another service of the same repo is a valid one here.
    assert.deepEqual(
      body.hosts.map((host) => [host.service, host.ip_address]),
      [
        ['another-service', '10.9.0.14'],
        ['web', '10.0.0.2'],
      ],
    );
  });

  test('xDS serves one endpoint, at the real port', async () => {
    const response = await fetch(`${url}/v3/discovery:endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resource_names: ['web'] }),
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    const body = JSON.parse(text) as { resources: Array<{ endpoints: Array<{ lbEndpoints: unknown[] }> }> };
    const endpoints = body.resources.flatMap((resource) =>
      resource.endpoints.flatMap((locality) => locality.lbEndpoints),
    );
    assert.equal(endpoints.length, 1, text);
    assert.match(text, /"portValue":8080/);
  });

  test('the service list counts only the valid host', async () => {
    const response = await fetch(`${url}/v1/services`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as { services: Array<{ service: string; hosts: number }> };
    assert.deepEqual(
      body.services.map((summary) => [summary.service, summary.hosts]),
      [['web', 1]],
    );
  });

  test('each skipped record is logged as a warning naming the problem, once, not on every read', async () => {
    const skipped = logLines.filter((line) => line.msg.includes('not a valid host'));
    const problems = new Set(skipped.map((line) => line.problem));
    for (const expected of [
      /'port'/,
      /'tags' is not an object/,
      /'tags' holds a value JSON cannot write/,
      /nested deeper/,
      /not plain data/,
      /'ip_address'/,
      /'last_check_in'/,
      /'revision'/,
      /another-service/,
      /not an object/,
    ]) {
      assert.ok(
        [...problems].some((problem) => problem !== undefined && expected.test(problem)),
        `no warning matching ${expected}: ${[...problems].join('; ')}`,
      );
    }
    const before = skipped.length;
    await fetch(`${url}/v1/registration/web?`);
    await fetch(`${url}/v1/registration/web?`);
    assert.equal(logLines.filter((line) => line.msg.includes('not a valid host')).length, before);
  });
});
