import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  CreateTableCommand,
  DescribeTableCommand,
  QueryCommand,
  ScanCommand,
  UpdateTableCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import pino from 'pino';
import { composeRegistry, type Registry } from '../../../src/compose.js';
import { ConfigError, loadConfig } from '../../../src/config.js';
import type { EmbeddedDynamoDb } from '../../../src/store/dynamodb/embedded-dynalite.js';
import { ensureHostsTable, learnTableShape } from '../../../src/store/dynamodb/hosts-table.js';
import { createDynamoDbStore } from '../../../src/store/dynamodb/create-dynamodb-store.js';
import { DynamoDbHostStore } from '../../../src/store/dynamodb/dynamodb-host-store.js';
import { StorageUnavailableError } from '../../../src/errors.js';
import { freshTableName, silentLog, startDynalite, testClient } from '../../helpers/dynamodb.js';
import {
  createTableAsOriginal,
  originalDelete,
  originalGet,
  originalHeartbeat,
  originalList,
  originalListByRepo,
  originalSetWeight,
  pynamodbDateTime,
  putAsOriginal,
  rawItem,
  readAsOriginal,
  type OriginalHost,
} from '../../helpers/original-service.js';

/**
 * A fleet moving between the original service and discovery on the original's own table: both
 * serve it side by side, and a host written through either is the same host to both. The
 * original is played at the item level by test/helpers/original-service.ts (its model's reads
 * and writes, from its source and pynamodb 3.2.1's).
 */

interface ServedHost {
  service: string;
  ip_address: string;
  port: number;
  revision: string;
  service_repo_name: string;
  last_check_in: string;
  tags: Record<string, unknown>;
}

let server: EmbeddedDynamoDb;
let admin: DynamoDBClient;
before(async () => {
  server = await startDynalite();
  admin = testClient(server.endpoint);
});
after(async () => {
  admin.destroy();
  await server.close();
});

/** A discovery replica on `tableName`, through the real start-up path and a real listener. */
async function startDiscovery(
  tableName: string,
  settings: Record<string, string> = {},
): Promise<{ url: string; registry: Registry }> {
  const config = loadConfig(
    {
      BACKEND_STORAGE: 'DynamoDB',
      DYNAMODB_URL: server.endpoint,
      DYNAMODB_TABLE_HOSTS: tableName,
      APPLICATION_ENV: 'test',
      CACHE_TYPE: 'null',
      XDS_ENABLED: 'false',
      ...settings,
    },
    process.cwd(),
  );
  const registry = await composeRegistry(config, pino({ level: 'silent' }));
  await registry.app.listen({ port: 0, host: '127.0.0.1' });
  const address = registry.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return { url: `http://127.0.0.1:${address.port}`, registry };
}

async function list(url: string, path: string): Promise<ServedHost[]> {
  const response = await fetch(`${url}${path}`);
  assert.equal(response.status, 200, `${path} answers 200`);
  const body = (await response.json()) as { hosts: ServedHost[] };
  return body.hosts.sort((a, b) => a.ip_address.localeCompare(b.ip_address));
}

/** A form heartbeat of exactly `fields`, none added: as each of the original's clients sent it. */
function heartbeatWithExactly(url: string, service: string, fields: Record<string, string>): Promise<Response> {
  return fetch(`${url}/v1/registration/${service}`, { method: 'POST', body: new URLSearchParams(fields) });
}

function form(url: string, method: string, path: string, fields: Record<string, string>): Promise<Response> {
  return fetch(`${url}${path}`, { method, body: new URLSearchParams(fields) });
}

/** The check-in as served, `YYYY-MM-DD HH:MM:SS.ffffff` UTC, in epoch ms (microseconds as the fraction). */
function servedInstant(text: string): number {
  const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.(\d{6})$/.exec(text);
  assert.ok(match, `served in the v1 form: ${text}`);
  return Date.parse(`${match[1]}T${match[2]}Z`) + Number(match[3]) / 1000;
}

/** Discovery serves the host the original's model reads from the same item. */
function assertSameHost(served: ServedHost | undefined, original: OriginalHost | undefined): void {
  assert.ok(served && original, 'both see the host');
  assert.equal(served.ip_address, original.ip_address);
  assert.equal(served.port, original.port);
  assert.equal(served.revision, original.revision);
  assert.equal(served.service_repo_name, original.service_repo_name ?? '');
  assert.deepEqual(served.tags, original.tags);
  assert.ok(Math.abs(servedInstant(served.last_check_in) - original.last_check_in) < 0.001, 'the same instant');
}

/** pynamodb's exact `UTCDateTimeAttribute` text, which pynamodb 5+ parses strictly. */
const PYNAMODB_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0000$/;

const TAGS = { az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c' };

describe("discovery on the original's table", () => {
  let tableName: string;
  let discovery: { url: string; registry: Registry };
  const now = Date.now();

  before(async () => {
    tableName = freshTableName();
    await createTableAsOriginal(admin, tableName);
    // Three hosts as pynamodb 3.2.1 wrote them: tags the exact text of Python's json.dumps
    // (`, ` and `: `, non-ASCII escaped), check-ins as UTCDateTimeAttribute writes them, an
    // empty repo name left out. The third check-in is one dateutil reads (another writer's).
    await putAsOriginal(admin, tableName, {
      service: 'users',
      ip_address: '10.0.3.17',
      service_repo_name: 'users-repo',
      port: 9211,
      revision: '2f1c0e9',
      last_check_in: pynamodbDateTime(now - 2000, 456),
      tags: '{"az": "us-east-1a", "region": "us-east-1", "instance_id": "i-0a1b2c", "canary": false, "load_balancing_weight": 30}',
    });
    await putAsOriginal(admin, tableName, {
      service: 'users',
      ip_address: '10.0.3.18',
      port: 9211,
      revision: '2f1c0e9',
      last_check_in: pynamodbDateTime(now - 3000, 1),
      tags: '{"az": "us-east-1b", "region": "us-east-1", "instance_id": "i-0d3e4f", "owner": "J\\u00fcrgen"}',
    });
    await putAsOriginal(admin, tableName, {
      service: 'users',
      ip_address: '10.0.3.19',
      service_repo_name: 'users-repo',
      port: 9212,
      revision: '2f1c0e9',
      last_check_in: `${new Date(now - 4000).toISOString().slice(0, 23)}000+00:00`,
      tags: '{"az": "us-east-1c", "region": "us-east-1", "instance_id": "i-0789ab"}',
    });
    discovery = await startDiscovery(tableName);
  });
  after(async () => discovery.registry.close());

  test('serves every host the original wrote, with its tags, as the original serves them (no empty list at the switch)', async () => {
    const hosts = await list(discovery.url, '/v1/registration/users');
    assert.deepEqual(
      hosts.map((host) => host.ip_address),
      ['10.0.3.17', '10.0.3.18', '10.0.3.19'],
    );
    for (const host of hosts.slice(0, 2)) {
      assertSameHost(host, readAsOriginal((await rawItem(admin, tableName, 'users', host.ip_address))!));
    }
    assert.equal(hosts[0]!.tags.load_balancing_weight, 30);
    assert.equal(hosts[1]!.service_repo_name, '', 'an absent repo name is served as ""');
    assert.equal(hosts[1]!.tags.owner, 'Jürgen');
    // dateutil's forms: the same instant, served in the v1 form.
    assert.equal(servedInstant(hosts[2]!.last_check_in), Date.parse(new Date(now - 4000).toISOString()));
    assert.deepEqual(hosts[2]!.tags, { az: 'us-east-1c', region: 'us-east-1', instance_id: 'i-0789ab' });
  });

  test("repo queries use the original's index (service_repo_name_index): 200, never 500", async () => {
    const hosts = await list(discovery.url, '/v1/registration/repo/users-repo');
    assert.deepEqual(
      hosts.map((host) => host.ip_address),
      ['10.0.3.17', '10.0.3.19'],
    );
  });

  test("a heartbeat through discovery keeps the original's weight and writes what its model reads", async () => {
    const response = await heartbeatWithExactly(discovery.url, 'users', {
      ip: '10.0.3.17',
      port: '9211',
      revision: '3a4b5c6',
      service_repo_name: 'users-repo',
      tags: JSON.stringify({ az: 'us-east-1a', region: 'us-east-1', instance_id: 'i-0a1b2c', canary: true }),
    });
    assert.equal(response.status, 200);
    const item = (await rawItem(admin, tableName, 'users', '10.0.3.17'))!;
    // What pynamodb would have written for the merged host, byte for byte.
    assert.equal(
      item.tags?.S,
      '{"az": "us-east-1a", "region": "us-east-1", "instance_id": "i-0a1b2c", "canary": true, "load_balancing_weight": 30}',
    );
    assert.match(item.last_check_in!.S!, PYNAMODB_FORMAT);
    assert.equal(item.port?.N, '9211');
    const [served] = await list(discovery.url, '/v1/registration/users');
    assertSameHost(served, readAsOriginal(item));
    assert.equal(served!.revision, '3a4b5c6');
  });

  test('a first registration through discovery is a host the original reads, with no repo attribute when empty', async () => {
    const response = await heartbeatWithExactly(discovery.url, 'orders', {
      ip: '10.0.4.1',
      port: '8080',
      revision: 'r1',
      tags: JSON.stringify({ ...TAGS, canary: false }),
    });
    assert.equal(response.status, 200);
    const item = (await rawItem(admin, tableName, 'orders', '10.0.4.1'))!;
    assert.equal(item.service_repo_name, undefined, 'pynamodb leaves an empty UnicodeAttribute out');
    assert.equal(
      item.tags?.S,
      '{"az": "us-east-1a", "region": "us-east-1", "instance_id": "i-0a1b2c", "canary": false}',
    );
    assert.match(item.last_check_in!.S!, PYNAMODB_FORMAT);
    assert.deepEqual(Object.keys(item.port ?? {}), ['N']);
    const [served] = await list(discovery.url, '/v1/registration/orders');
    assertSameHost(served, readAsOriginal(item));
  });

  test('a weight for one host through discovery is in the JSON tags the original reads', async () => {
    await heartbeatWithExactly(discovery.url, 'carts', {
      ip: '10.0.5.1',
      port: '80',
      revision: 'r1',
      tags: JSON.stringify(TAGS),
    });
    const response = await form(discovery.url, 'POST', '/v1/loadbalancing/carts/10.0.5.1', {
      load_balancing_weight: '7',
    });
    assert.equal(response.status, 204);
    const original = await originalGet(admin, tableName, 'carts', '10.0.5.1');
    assert.deepEqual(original?.tags, { ...TAGS, load_balancing_weight: 7 });
    const [served] = await list(discovery.url, '/v1/registration/carts');
    assertSameHost(served, original);
  });

  test('a weight for every host of a service through discovery is in each JSON tags the original reads', async () => {
    for (const ip of ['10.0.6.1', '10.0.6.2', '10.0.6.3']) {
      await heartbeatWithExactly(discovery.url, 'search', {
        ip,
        port: '80',
        revision: 'r1',
        tags: JSON.stringify(TAGS),
      });
    }
    const response = await form(discovery.url, 'POST', '/v1/loadbalancing/search', { load_balancing_weight: '12' });
    assert.equal(response.status, 204);
    const originals = await originalList(admin, tableName, 'search');
    assert.equal(originals.length, 3);
    for (const original of originals) assert.equal(original.tags?.load_balancing_weight, 12);
    const served = await list(discovery.url, '/v1/registration/search');
    served.forEach((host, index) => assertSameHost(host, originals[index]));
  });

  test('a status override through discovery leaves the host the original reads unchanged', async () => {
    await heartbeatWithExactly(discovery.url, 'mail', {
      ip: '10.0.7.1',
      port: '80',
      revision: 'r1',
      tags: JSON.stringify(TAGS),
    });
    const before = await originalGet(admin, tableName, 'mail', '10.0.7.1');
    const response = await form(discovery.url, 'PUT', '/v1/registration/mail/10.0.7.1/status', {
      status: 'OUT_OF_SERVICE',
    });
    assert.equal(response.status, 204);
    assert.deepEqual(await originalGet(admin, tableName, 'mail', '10.0.7.1'), before);
    assert.equal((await rawItem(admin, tableName, 'mail', '10.0.7.1'))?.status_override?.S, 'OUT_OF_SERVICE');
    assert.equal((await list(discovery.url, '/v1/registration/mail')).length, 0, 'discovery no longer serves it');
    assert.equal((await list(discovery.url, '/v1/registration/mail?status=all')).length, 1);
  });

  test('a delete and a re-registration through discovery: the original sees the host go and come back as sent', async () => {
    await heartbeatWithExactly(discovery.url, 'audit', {
      ip: '10.0.8.1',
      port: '80',
      revision: 'r1',
      tags: JSON.stringify({ ...TAGS, old: 'tag' }),
    });
    assert.equal((await fetch(`${discovery.url}/v1/registration/audit/10.0.8.1`, { method: 'DELETE' })).status, 200);
    assert.equal(await originalGet(admin, tableName, 'audit', '10.0.8.1'), undefined);
    await heartbeatWithExactly(discovery.url, 'audit', {
      ip: '10.0.8.1',
      port: '81',
      revision: 'r2',
      tags: JSON.stringify(TAGS),
    });
    const original = await originalGet(admin, tableName, 'audit', '10.0.8.1');
    assert.deepEqual(original?.tags, TAGS, 'no tag of the deleted host comes back');
    assert.equal(original?.port, 81);
    assertSameHost((await list(discovery.url, '/v1/registration/audit'))[0], original);
  });

  test('a host registered, re-weighted and deleted through the original is seen the same way by discovery', async () => {
    await originalHeartbeat(admin, tableName, {
      service: 'billing',
      ip_address: '10.0.9.1',
      service_repo_name: 'billing-repo',
      port: 8443,
      revision: 'b1',
      tags: TAGS,
    });
    assertSameHost(
      (await list(discovery.url, '/v1/registration/billing'))[0],
      await originalGet(admin, tableName, 'billing', '10.0.9.1'),
    );
    assert.ok(await originalSetWeight(admin, tableName, 'billing', '10.0.9.1', 40));
    assert.equal((await list(discovery.url, '/v1/registration/billing'))[0]?.tags.load_balancing_weight, 40);
    // Discovery knew the tags from its last read; the original changed them since: the conditional
    // write notices, reads afresh and merges, so the original's weight survives our heartbeat.
    await heartbeatWithExactly(discovery.url, 'billing', {
      ip: '10.0.9.1',
      port: '8443',
      revision: 'b2',
      service_repo_name: 'billing-repo',
      tags: JSON.stringify({ ...TAGS, canary: true }),
    });
    const original = await originalGet(admin, tableName, 'billing', '10.0.9.1');
    assert.deepEqual(original?.tags, { ...TAGS, load_balancing_weight: 40, canary: true });
    assertSameHost((await list(discovery.url, '/v1/registration/repo/billing-repo'))[0], original);
    assert.deepEqual(
      (await originalListByRepo(admin, tableName, 'billing-repo')).map((host) => host.revision),
      ['b2'],
    );
    // And the original's heartbeat keeps a weight set through discovery (its own merge rule).
    await form(discovery.url, 'POST', '/v1/loadbalancing/billing/10.0.9.1', { load_balancing_weight: '41' });
    await originalHeartbeat(admin, tableName, {
      service: 'billing',
      ip_address: '10.0.9.1',
      service_repo_name: 'billing-repo',
      port: 8443,
      revision: 'b3',
      tags: TAGS,
    });
    assert.equal((await list(discovery.url, '/v1/registration/billing'))[0]?.tags.load_balancing_weight, 41);
    assert.ok(await originalDelete(admin, tableName, 'billing', '10.0.9.1'));
    assert.deepEqual(await list(discovery.url, '/v1/registration/billing'), []);
  });

  test('two replicas and the original writing one host at once lose no tag and no weight', async () => {
    const second = await startDiscovery(tableName);
    try {
      await heartbeatWithExactly(discovery.url, 'chat', {
        ip: '10.0.10.1',
        port: '80',
        revision: 'r1',
        tags: JSON.stringify(TAGS),
      });
      const writes: Promise<unknown>[] = [];
      for (let index = 0; index < 12; index++) {
        const url = index % 2 === 0 ? discovery.url : second.url;
        writes.push(
          heartbeatWithExactly(url, 'chat', {
            ip: '10.0.10.1',
            port: '80',
            revision: 'r1',
            tags: JSON.stringify({ ...TAGS, [`k${index}`]: index }),
          }),
        );
      }
      writes.push(form(second.url, 'POST', '/v1/loadbalancing/chat/10.0.10.1', { load_balancing_weight: '9' }));
      const statuses = (await Promise.all(writes)).map((response) => (response as Response).status);
      assert.ok(
        statuses.every((status) => status === 200 || status === 204),
        `every write succeeded: ${statuses.join(',')}`,
      );
      const original = await originalGet(admin, tableName, 'chat', '10.0.10.1');
      const expected: Record<string, unknown> = { ...TAGS, load_balancing_weight: 9 };
      for (let index = 0; index < 12; index++) expected[`k${index}`] = index;
      assert.deepEqual(original?.tags, expected);
      assertSameHost((await list(second.url, '/v1/registration/chat'))[0], original);
    } finally {
      await second.registry.close();
    }
  });

  test('an expired host the original wrote is left out and removed, whichever check-in form it was stored in', async () => {
    const old = Date.now() - 700_000; // HOST_TTL is 600 s
    for (const [ip, checkIn] of [
      ['10.0.11.1', pynamodbDateTime(old, 123)],
      ['10.0.11.2', `${new Date(old).toISOString().slice(0, 23)}123+00:00`],
      ['10.0.11.3', `${new Date(old).toISOString().slice(0, 23)}123Z`],
    ] as const) {
      await putAsOriginal(admin, tableName, {
        service: 'expired',
        ip_address: ip,
        port: 80,
        revision: 'r',
        last_check_in: checkIn,
        tags: '{"az": "a", "region": "r", "instance_id": "i"}',
      });
    }
    assert.deepEqual(await list(discovery.url, '/v1/registration/expired'), []);
    // Counted raw: the strict reader would refuse the two dateutil forms the original's 3.x still read.
    const stored = async () =>
      (
        await admin.send(
          new QueryCommand({
            TableName: tableName,
            KeyConditionExpression: 'service = :s',
            ExpressionAttributeValues: { ':s': { S: 'expired' } },
            Select: 'COUNT',
          }),
        )
      ).Count;
    const deadline = Date.now() + 5000;
    while ((await stored()) !== 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(await stored(), 0, 'the sweep removed all three');
  });

  test("what discovery adds to the table (TTL attribute, change-log partition) is what the original's model ignores", async () => {
    const { Items = [] } = await admin.send(new ScanCommand({ TableName: tableName }));
    // All but the fixture stored with a dateutil check-in (`+00:00`), which only pynamodb 3's fallback reads.
    const hosts = Items.filter(
      (item) => item.service?.S !== 'discovery/change-log' && item.ip_address?.S !== '10.0.3.19',
    );
    assert.ok(hosts.length > 0);
    // Every host item reads through the original's model strictly, tags included.
    for (const item of hosts) assert.notEqual(readAsOriginal(item).tags, null, JSON.stringify(item));
    assert.ok(hosts.some((item) => item.expires_at?.N !== undefined));
  });
});

describe("start-up on the original's table and others", () => {
  test('a table with neither repo index stops start-up with one line naming the index to add, whatever DYNAMODB_CREATE_TABLES_IN_APP says', async () => {
    const tableName = freshTableName();
    await admin.send(
      new CreateTableCommand({
        TableName: tableName,
        AttributeDefinitions: [
          { AttributeName: 'service', AttributeType: 'S' },
          { AttributeName: 'ip_address', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'service', KeyType: 'HASH' },
          { AttributeName: 'ip_address', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    for (const create of ['false', 'true']) {
      await assert.rejects(
        startDiscovery(tableName, { DYNAMODB_CREATE_TABLES_IN_APP: create }),
        (error: unknown) =>
          error instanceof ConfigError &&
          !error.message.includes('\n') &&
          error.message.includes('service_repo_name_index') &&
          error.message.includes(tableName),
      );
    }
    const { Table } = await admin.send(new DescribeTableCommand({ TableName: tableName }));
    assert.equal(Table?.GlobalSecondaryIndexes, undefined, 'no index was added');
  });

  test("DYNAMODB_CREATE_TABLES_IN_APP=true on the original's table adds no second index", async () => {
    const tableName = freshTableName();
    await createTableAsOriginal(admin, tableName);
    const discovery = await startDiscovery(tableName, { DYNAMODB_CREATE_TABLES_IN_APP: 'true' });
    try {
      const { Table } = await admin.send(new DescribeTableCommand({ TableName: tableName }));
      assert.deepEqual(
        Table?.GlobalSecondaryIndexes?.map((index) => index.IndexName),
        ['service_repo_name_index'],
      );
      await heartbeatWithExactly(discovery.url, 'users', {
        ip: '10.1.0.1',
        port: '80',
        revision: 'r',
        service_repo_name: 'u',
        tags: JSON.stringify(TAGS),
      });
      assert.equal((await list(discovery.url, '/v1/registration/repo/u')).length, 1);
      assert.ok(
        readAsOriginal((await rawItem(admin, tableName, 'users', '10.1.0.1'))!).tags,
        'written as the original writes',
      );
    } finally {
      await discovery.registry.close();
    }
  });

  test("DYNAMODB_ITEM_LAYOUT=discovery on a table holding the original's items stops start-up with one line, writing nothing", async () => {
    const tableName = freshTableName();
    await createTableAsOriginal(admin, tableName);
    await putAsOriginal(admin, tableName, {
      service: 'users',
      ip_address: '10.1.1.1',
      port: 80,
      revision: 'r',
      last_check_in: pynamodbDateTime(Date.now()),
      tags: '{"az": "a", "region": "r", "instance_id": "i"}',
    });
    const before = await rawItem(admin, tableName, 'users', '10.1.1.1');
    await assert.rejects(
      startDiscovery(tableName, { DYNAMODB_ITEM_LAYOUT: 'discovery' }),
      (error: unknown) =>
        error instanceof ConfigError &&
        !error.message.includes('\n') &&
        error.message.includes('DYNAMODB_ITEM_LAYOUT=original'),
    );
    assert.deepEqual(await rawItem(admin, tableName, 'users', '10.1.1.1'), before);
    const { Count } = await admin.send(new ScanCommand({ TableName: tableName, Select: 'COUNT' }));
    assert.equal(Count, 1, 'nothing was written');
  });

  test("a table of ours keeps our layout; one with both indexes is the original's, and its index is used", async () => {
    const ours = freshTableName();
    await ensureHostsTable(admin, ours, silentLog);
    const discovery = await startDiscovery(ours);
    try {
      await heartbeatWithExactly(discovery.url, 'users', {
        ip: '10.1.2.1',
        port: '80',
        revision: 'r',
        tags: JSON.stringify(TAGS),
      });
      const item = await rawItem(admin, ours, 'users', '10.1.2.1');
      assert.equal(item?.tags, undefined);
      assert.equal(item?.['tag:az']?.S, '"us-east-1a"');
    } finally {
      await discovery.registry.close();
    }
    // The original's table with our index added as well.
    const both = freshTableName();
    await createTableAsOriginal(admin, both);
    await admin.send(
      new UpdateTableCommand({
        TableName: both,
        AttributeDefinitions: [
          { AttributeName: 'service_repo_name', AttributeType: 'S' },
          { AttributeName: 'ip_address', AttributeType: 'S' },
        ],
        GlobalSecondaryIndexUpdates: [
          {
            Create: {
              IndexName: 'service_repo_name-index',
              KeySchema: [
                { AttributeName: 'service_repo_name', KeyType: 'HASH' },
                { AttributeName: 'ip_address', KeyType: 'RANGE' },
              ],
              Projection: { ProjectionType: 'ALL' },
              ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 5 },
            },
          },
        ],
      }),
    );
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const config = loadConfig(
      {
        BACKEND_STORAGE: 'DynamoDB',
        DYNAMODB_URL: server.endpoint,
        DYNAMODB_TABLE_HOSTS: both,
        APPLICATION_ENV: 'test',
        XDS_ENABLED: 'false',
      },
      process.cwd(),
    );
    const registry = await composeRegistry(config, log);
    try {
      const said = lines.map((line) => (JSON.parse(line) as { msg: string }).msg).join('\n');
      assert.match(
        said,
        /items written in the original layout \(learnt from the table\), repo queries on index service_repo_name_index/,
      );
    } finally {
      await registry.close();
    }
  });

  test('DynamoDB unreachable at start-up: the replica starts, answers 503, and learns the table once it answers', async () => {
    const tableName = freshTableName();
    await createTableAsOriginal(admin, tableName);
    const store = new DynamoDbHostStore({
      client: testClient(server.endpoint),
      tableName,
      hostTtlSeconds: 600,
      requestTimeoutMs: 3000,
      shape: (() => {
        let calls = 0;
        // Unreachable the first time, as createDynamoDbStore's learner reports it; then the real description.
        return async () => {
          calls++;
          if (calls === 1)
            throw new StorageUnavailableError(
              'Storage unavailable (DynamoDB DescribeTable: ECONNREFUSED); retry later.',
            );
          return learnTableShape(admin, tableName, undefined, silentLog);
        };
      })(),
    });
    try {
      await assert.rejects(store.listByRepo('users-repo'), StorageUnavailableError);
      await store.heartbeat({
        service: 'users',
        ip_address: '10.1.3.1',
        port: 80,
        revision: 'r',
        service_repo_name: 'users-repo',
        last_check_in: '2026-12-07 14:57:45.274456',
        tags: TAGS,
      });
      assert.equal((await store.listByRepo('users-repo')).length, 1, "the original's index, learnt");
      const item = await rawItem(admin, tableName, 'users', '10.1.3.1');
      assert.equal(item?.last_check_in?.S, '2026-12-07T14:57:45.274456+0000', "written in the original's layout");
    } finally {
      await store.close();
    }
  });

  test('createDynamoDbStore starts while DynamoDB is unreachable, and its requests answer 503', async () => {
    const dead = await startDynalite();
    const endpoint = dead.endpoint;
    await dead.close();
    const config = loadConfig(
      {
        BACKEND_STORAGE: 'DynamoDB',
        DYNAMODB_URL: endpoint,
        DYNAMODB_TABLE_HOSTS: freshTableName(),
        DYNAMODB_TIMEOUT_MS: '500',
        APPLICATION_ENV: 'test',
        XDS_ENABLED: 'false',
      },
      process.cwd(),
    );
    const store = await createDynamoDbStore(config, silentLog);
    try {
      await assert.rejects(store.listByRepo('users-repo'), StorageUnavailableError);
    } finally {
      await store.close();
    }
  });
});
