import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { EmbeddedDynamoDb } from '../../../src/store/dynamodb/embedded-dynalite.js';
import { freshTableName, startDynalite } from '../../helpers/dynamodb.js';
import { startDiscovery, type DiscoveryProcess } from '../../helpers/discovery-process.js';
import { register, waitFor } from '../../helpers/registry.js';

const HEARTBEATS = 500;
/** Bound on how long a change takes to show through a caching replica: CACHE_TTL plus room for a loaded machine. */
const CACHE_TTL_SECONDS = 1;
const PROPAGATION_BOUND_MS = CACHE_TTL_SECONDS * 1000 + 5000;

async function ipsOf(discovery: DiscoveryProcess, service: string): Promise<string[]> {
  const response = await fetch(`${discovery.url}/v1/registration/${service}`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { hosts: { ip_address: string }[] }).hosts.map((host) => host.ip_address);
}

/** The status of a heartbeat's answer, and its body when it is not 200 (so a failure names its cause). */
async function outcome(discovery: DiscoveryProcess, service: string, ip: string): Promise<string> {
  const response = await register(discovery.url, service, { ip });
  const body = await response.text();
  return response.status === 200 ? '200' : `${response.status} ${body}`;
}

describe('many discovery replicas over one DynamoDB table', () => {
  let dynamo: EmbeddedDynamoDb;
  let a: DiscoveryProcess;
  let b: DiscoveryProcess;
  let cached: DiscoveryProcess;

  before(async () => {
    dynamo = await startDynalite();
    const shared = {
      DYNAMODB_URL: dynamo.endpoint,
      DYNAMODB_TABLE_HOSTS: freshTableName(),
      // Every replica creates the table if missing; they race, and that must be harmless.
      DYNAMODB_CREATE_TABLES_IN_APP: 'true',
      APPLICATION_ENV: 'production',
      // One single-threaded dynalite serves the whole burst here, queueing calls for seconds on a
      // small machine; this test is about losing nothing, so the per-call bound is widened.
      DYNAMODB_TIMEOUT_MS: '30000',
    };
    [a, b, cached] = await Promise.all([
      startDiscovery({ ...shared, CACHE_TYPE: 'null' }),
      startDiscovery({ ...shared, CACHE_TYPE: 'null' }),
      startDiscovery({ ...shared, CACHE_TYPE: 'simple', CACHE_TTL: String(CACHE_TTL_SECONDS) }),
    ]);
  });
  after(async () => {
    await Promise.all([a, b, cached].map((discovery) => discovery?.stop()));
    await dynamo?.close();
  });

  test('a host registered through one replica is returned by the other', async () => {
    assert.equal(await outcome(a, 'users', '10.0.0.1'), '200');
    assert.deepEqual(await ipsOf(b, 'users'), ['10.0.0.1']);
  });

  test('a delete through one replica is seen by the other', async () => {
    assert.equal(await outcome(b, 'orders', '10.0.0.7'), '200');
    assert.deepEqual(await ipsOf(a, 'orders'), ['10.0.0.7']);
    const removed = await fetch(`${b.url}/v1/registration/orders/10.0.0.7`, { method: 'DELETE' });
    assert.equal(removed.status, 200);
    assert.deepEqual(await ipsOf(a, 'orders'), []);
  });

  test("a caching replica shows another replica's write within CACHE_TTL", async () => {
    assert.deepEqual(await ipsOf(cached, 'billing'), []); // now cached as empty
    assert.equal(await outcome(a, 'billing', '10.0.0.9'), '200');
    await waitFor(
      'write seen by the caching replica',
      async () => (await ipsOf(cached, 'billing')).includes('10.0.0.9'),
      PROPAGATION_BOUND_MS,
    );
  });

  test(`${HEARTBEATS} concurrent heartbeats of distinct hosts spread over both replicas lose nothing`, async () => {
    const ips = Array.from({ length: HEARTBEATS }, (_, index) => `10.5.${Math.floor(index / 250)}.${index % 250}`);
    const statuses = await Promise.all(ips.map((ip, index) => outcome(index % 2 === 0 ? a : b, 'fleet', ip)));
    const failed = statuses.filter((status) => status !== '200');
    const logs = [a, b].flatMap((discovery) =>
      [...discovery.stdout, ...discovery.stderr].filter(
        (line) => !line.includes('"level":30') || line.includes('shutting down'),
      ),
    );
    assert.deepEqual(
      failed.slice(0, 3),
      [],
      `${failed.length} failed; replica log lines above info:\n${logs.slice(0, 20).join('\n')}`,
    );
    const expected = [...ips].sort();
    assert.deepEqual((await ipsOf(a, 'fleet')).sort(), expected);
    assert.deepEqual((await ipsOf(b, 'fleet')).sort(), expected);
    const repo = await fetch(`${a.url}/v1/registration/repo/users-repo`);
    const repoHosts = ((await repo.json()) as { hosts: { service: string }[] }).hosts;
    assert.equal(repoHosts.filter((host) => host.service === 'fleet').length, HEARTBEATS);
  });
});
