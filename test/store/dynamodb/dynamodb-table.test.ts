import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { DescribeTableCommand, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { effectiveStatus, parseCheckIn } from '../../../src/hosts/model.js';
import type { Log } from '../../../src/logger.js';
import { DynamoDbHostStore, REPO_INDEX_NAME } from '../../../src/store/dynamodb/dynamodb-host-store.js';
import { createDynamoDbClient } from '../../../src/store/dynamodb/dynamodb-client.js';
import type { EmbeddedDynamoDb } from '../../../src/store/dynamodb/embedded-dynalite.js';
import { ensureHostsTable } from '../../../src/store/dynamodb/hosts-table.js';
import { heartbeatOf } from '../../contract/host-store.contract.js';
import { freshTableName, openStore, silentLog, startDynalite, testClient } from '../../helpers/dynamodb.js';

function recordingLog(): Log & { lines: string[] } {
  const lines: string[] = [];
  const record = (_obj: object, msg?: string) => void lines.push(msg ?? '');
  return { lines, debug: record, info: record, warn: record, error: record };
}

/**
 * A loopback TCP relay in front of dynalite that counts how many connections are open at once,
 * so the client's socket bound is observed on the wire.
 */
async function countingRelay(
  targetPort: number,
): Promise<{ endpoint: string; peak(): number; close(): Promise<void> }> {
  let open = 0;
  let peak = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    open++;
    peak = Math.max(peak, open);
    const outbound = net.connect(targetPort, '127.0.0.1');
    sockets.add(inbound).add(outbound);
    inbound.pipe(outbound).pipe(inbound);
    const done = () => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('error', done).on('close', () => {
      open--;
      done();
    });
    outbound.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    peak: () => peak,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

let server: EmbeddedDynamoDb;
before(async () => {
  server = await startDynalite();
});
after(async () => server.close());

describe('hosts table set-up', () => {
  test('creates the table with the repo index, is idempotent, and tolerates a server without TTL in one log line', async () => {
    const client = testClient(server.endpoint);
    const tableName = freshTableName();
    try {
      const first = recordingLog();
      await ensureHostsTable(client, tableName, first);
      const ttlLines = first.lines.filter((line) => /TTL/.test(line));
      assert.equal(ttlLines.length, 1, first.lines.join('\n'));
      const second = recordingLog();
      await ensureHostsTable(client, tableName, second);
      assert.ok(!second.lines.some((line) => /created/.test(line)), 'nothing created the second time');
      const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
      assert.equal(Table?.TableStatus, 'ACTIVE');
      assert.deepEqual(
        Table?.KeySchema?.map((key) => [key.AttributeName, key.KeyType]),
        [
          ['service', 'HASH'],
          ['ip_address', 'RANGE'],
        ],
      );
      const index = Table?.GlobalSecondaryIndexes?.find((candidate) => candidate.IndexName === REPO_INDEX_NAME);
      assert.deepEqual(
        index?.KeySchema?.map((key) => [key.AttributeName, key.KeyType]),
        [
          ['service_repo_name', 'HASH'],
          ['ip_address', 'RANGE'],
        ],
      );
    } finally {
      client.destroy();
    }
  });
});

describe('item layout', () => {
  test('tags are attributes of their own, a host without repo has no repo attribute, and expires_at is check-in + HOST_TTL + margin', async () => {
    const opened = await openStore(server.endpoint, { hostTtlSeconds: 600 });
    try {
      await opened.store.heartbeat(
        heartbeatOf({ service_repo_name: '', tags: { az: 'a', region: 'r', instance_id: 'i', n: 1 } }),
      );
      const { Item } = await opened.client.send(
        new GetItemCommand({
          TableName: opened.tableName,
          Key: { service: { S: 'users' }, ip_address: { S: '10.0.0.1' } },
          ConsistentRead: true,
        }),
      );
      assert.ok(Item);
      assert.equal(Item.service_repo_name, undefined);
      assert.deepEqual(Item['tag:az'], { S: '"a"' });
      assert.deepEqual(Item['tag:n'], { S: '1' });
      assert.equal(Item.tags, undefined);
      const expiresAt = Number(Item.expires_at?.N);
      const checkInSeconds = parseCheckIn(heartbeatOf().last_check_in) / 1000;
      assert.ok(expiresAt >= checkInSeconds + 600 && expiresAt <= checkInSeconds + 600 + 24 * 3600, String(expiresAt));
      assert.equal((await opened.store.get('users', '10.0.0.1'))?.service_repo_name, '');
    } finally {
      await opened.dispose();
    }
  });
});

describe('status attributes', () => {
  test('the statuses are plain string attributes, absent for UP; an item of an older writer reads as UP', async () => {
    const opened = await openStore(server.endpoint, { hostTtlSeconds: 600 });
    try {
      const item = async (ip: string) =>
        (
          await opened.client.send(
            new GetItemCommand({
              TableName: opened.tableName,
              Key: { service: { S: 'users' }, ip_address: { S: ip } },
              ConsistentRead: true,
            }),
          )
        ).Item;
      await opened.store.heartbeat(heartbeatOf({ reported_status: 'DRAINING' }));
      await opened.store.setStatusOverride('users', '10.0.0.1', 'OUT_OF_SERVICE');
      assert.deepEqual((await item('10.0.0.1'))?.reported_status, { S: 'DRAINING' });
      assert.deepEqual((await item('10.0.0.1'))?.status_override, { S: 'OUT_OF_SERVICE' });
      // An item as the original (or this service before statuses) wrote it.
      await opened.client.send(
        new PutItemCommand({
          TableName: opened.tableName,
          Item: {
            service: { S: 'users' },
            ip_address: { S: '10.0.0.2' },
            port: { N: '80' },
            revision: { S: 'r1' },
            last_check_in: { S: heartbeatOf().last_check_in },
            'tag:az': { S: '"a"' },
          },
        }),
      );
      const old = await opened.store.get('users', '10.0.0.2');
      assert.ok(old);
      assert.equal(effectiveStatus(old), 'UP');
      assert.equal(Object.hasOwn(old, 'reported_status') || Object.hasOwn(old, 'status_override'), false);
      await opened.store.heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
      const up = await item('10.0.0.2');
      assert.equal(up?.reported_status, undefined);
      assert.equal(up?.status_override, undefined);
    } finally {
      await opened.dispose();
    }
  });
});

describe('connection pool', () => {
  test('CONNECTION_POOL_SIZE bounds the sockets open to DynamoDB at once', async () => {
    const tableName = freshTableName();
    const setup = testClient(server.endpoint);
    await ensureHostsTable(setup, tableName, silentLog);
    setup.destroy();
    const relay = await countingRelay(server.port);
    const poolSize = 3;
    const store = new DynamoDbHostStore({
      client: createDynamoDbClient({ endpoint: relay.endpoint, maxSockets: poolSize, requestTimeoutMs: 10_000 }),
      tableName,
      hostTtlSeconds: 600,
      requestTimeoutMs: 10_000,
    });
    try {
      await Promise.all(
        Array.from({ length: 60 }, (_, i) => store.heartbeat(heartbeatOf({ ip_address: `10.3.0.${i}` }))),
      );
      assert.equal((await store.listByService('users')).hosts.length, 60);
      assert.ok(relay.peak() >= 1 && relay.peak() <= poolSize, `peak ${relay.peak()} connections`);
    } finally {
      await store.close();
      await relay.close();
    }
  });
});
