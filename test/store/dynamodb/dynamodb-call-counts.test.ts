import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ManualClock } from '../../../src/clock.js';
import type { EmbeddedDynamoDb } from '../../../src/store/dynamodb/embedded-dynalite.js';
import { heartbeatOf } from '../../contract/host-store.contract.js';
import { openStore, startDynalite, type OpenedStore } from '../../helpers/dynamodb.js';
import { startRegistry, type RunningRegistry } from '../../helpers/registry.js';
import { CHANGE_LOG_PARTITION } from '../../../src/store/dynamodb/dynamodb-change-log.js';

/** Whether a command's input addresses the change feed's partition (marshalled or not). */
function touchesChangeLog(input: unknown): boolean {
  return JSON.stringify(input ?? {}).includes(CHANGE_LOG_PARTITION);
}

/**
 * Counts the DynamoDB commands each operation sends, with a middleware on the real client
 * talking to a real dynalite. `initialize` runs once per command, whatever the SDK retries.
 * The change feed's calls (its partition) are counted apart: they run on timers of their own.
 */
class CommandCounter {
  private counts = new Map<string, number>();
  private feedCounts = new Map<string, number>();

  attach(client: DynamoDBClient): void {
    client.middlewareStack.add(
      (next, context) => async (args) => {
        const command = (context.commandName ?? 'unknown').replace(/Command$/, '');
        const feed = touchesChangeLog(args.input);
        const counts = feed ? this.feedCounts : this.counts;
        // A change record's key starts `c/`, an announcement's `r/` (dynamodb-change-log.ts).
        const text = JSON.stringify(args.input);
        const name =
          feed && command === 'PutItem' ? `${command} ${text.includes('"r/') ? 'announcement' : 'change'}` : command;
        counts.set(name, (counts.get(name) ?? 0) + 1);
        return next(args);
      },
      { step: 'initialize', name: 'commandCounter' },
    );
  }

  reset(): void {
    this.counts = new Map();
    this.feedCounts = new Map();
  }

  /** Host-table commands since the last reset, e.g. `{ UpdateItem: 1 }`. */
  taken(): Record<string, number> {
    const result = Object.fromEntries([...this.counts.entries()].sort());
    this.counts = new Map();
    return result;
  }

  /** Change-feed commands since the last reset. */
  feedTaken(): Record<string, number> {
    const result = Object.fromEntries([...this.feedCounts.entries()].sort());
    this.feedCounts = new Map();
    return result;
  }
}

/** The registries below: DynamoDB (the store handed in), lists read from storage on every request. */
const DYNAMODB_ENV = { BACKEND_STORAGE: 'DynamoDB', HOST_TTL: '600', CACHE_TYPE: 'null' };

let server: EmbeddedDynamoDb;
before(async () => {
  server = await startDynalite();
});
after(async () => server.close());

describe('DynamoDB calls per store operation', () => {
  let opened: OpenedStore | undefined;
  const counter = new CommandCounter();
  const store = () => {
    if (!opened) throw new Error('no store');
    return opened.store;
  };

  beforeEach(async () => {
    await opened?.dispose();
    opened = await openStore(server.endpoint, { prepare: (client) => counter.attach(client) });
    counter.reset();
  });
  after(async () => opened?.dispose());

  test('a heartbeat of a new host is one UpdateItem and no read', async () => {
    await store().heartbeat(heartbeatOf());
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
  });

  test('a heartbeat of a known host (tag merge included) is one UpdateItem and no read', async () => {
    await store().heartbeat(heartbeatOf());
    await store().updateTags('users', '10.0.0.1', { load_balancing_weight: 5 });
    counter.reset();
    const result = await store().heartbeat(heartbeatOf({ tags: { az: 'b', region: 'r', instance_id: 'i' } }));
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    assert.equal(result.previous?.tags.load_balancing_weight, 5);
    assert.equal(result.current.tags.load_balancing_weight, 5);
  });

  test('get is one GetItem; listByService and listByRepo are one Query each', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => store().heartbeat(heartbeatOf({ ip_address: `10.0.0.${i}` }))),
    );
    counter.reset();
    await store().get('users', '10.0.0.1');
    assert.deepEqual(counter.taken(), { GetItem: 1 });
    assert.equal((await store().listByService('users')).hosts.length, 20);
    assert.deepEqual(counter.taken(), { Query: 1 });
    assert.equal((await store().listByRepo('users-repo')).length, 20);
    assert.deepEqual(counter.taken(), { Query: 1 });
  });

  test('delete, deleteIfCheckInIs (kept or removed) and updateTags (found or not) are one write each', async () => {
    await store().heartbeat(heartbeatOf({ ip_address: '10.0.0.1' }));
    await store().heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
    counter.reset();
    await store().updateTags('users', '10.0.0.1', { load_balancing_weight: 3 });
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    await store().updateTags('users', '10.9.9.9', { load_balancing_weight: 3 });
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    assert.equal(await store().deleteIfCheckInIs('users', '10.0.0.1', '2000-01-01 00:00:00.000000'), false);
    assert.deepEqual(counter.taken(), { DeleteItem: 1 });
    assert.equal(await store().deleteIfCheckInIs('users', '10.0.0.1', heartbeatOf().last_check_in), true);
    assert.deepEqual(counter.taken(), { DeleteItem: 1 });
    assert.notEqual(await store().delete('users', '10.0.0.2'), undefined);
    assert.deepEqual(counter.taken(), { DeleteItem: 1 });
  });

  test('listServices is one Scan', async () => {
    await store().heartbeat(heartbeatOf({ service: 'a' }));
    await store().heartbeat(heartbeatOf({ service: 'b' }));
    counter.reset();
    assert.deepEqual([...(await store().listServices())].sort(), ['a', 'b']);
    assert.deepEqual(counter.taken(), { Scan: 1 });
  });

  test('a service list pages (more than one Query) only past 1 MB of records', async () => {
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 12; i++) {
      await store().heartbeat(
        heartbeatOf({ ip_address: `10.0.1.${i}`, tags: { az: 'a', region: 'r', instance_id: 'i', blob: big } }),
      );
    }
    counter.reset();
    assert.equal((await store().listByService('users')).hosts.length, 12);
    const { Query: queries } = counter.taken();
    assert.ok(queries !== undefined && queries >= 2, `paged: ${queries} queries for ~1.2 MB`);
  });
});

describe("DynamoDB calls per store operation, in the original's item layout (its table, tags as one JSON attribute)", () => {
  let opened: OpenedStore | undefined;
  let other: OpenedStore | undefined;
  const counter = new CommandCounter();
  const store = () => {
    if (!opened) throw new Error('no store');
    return opened.store;
  };

  beforeEach(async () => {
    await other?.store.close();
    await opened?.dispose();
    opened = await openStore(server.endpoint, { layout: 'original', prepare: (client) => counter.attach(client) });
    // A second replica on the same table, uncounted: the other writer.
    other = await openStore(server.endpoint, { layout: 'original', tableName: opened.tableName });
    counter.reset();
  });
  after(async () => {
    await other?.store.close();
    await opened?.dispose();
  });

  test('a heartbeat of a host this replica has not seen is one GetItem and one UpdateItem (the original: the same)', async () => {
    await store().heartbeat(heartbeatOf());
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 1 });
    await other!.store.heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
    counter.reset();
    await store().heartbeat(heartbeatOf({ ip_address: '10.0.0.2' }));
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 1 });
  });

  test('a heartbeat of a host this replica wrote or read last is one conditional UpdateItem and no read', async () => {
    await store().heartbeat(heartbeatOf());
    counter.reset();
    const result = await store().heartbeat(heartbeatOf({ tags: { az: 'b', region: 'r', instance_id: 'i' } }));
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    assert.equal(result.current.tags.az, 'b');
    await other!.store.heartbeat(heartbeatOf({ ip_address: '10.0.0.3' }));
    await store().listByService('users');
    counter.reset();
    await store().heartbeat(heartbeatOf({ ip_address: '10.0.0.3' }));
    assert.deepEqual(counter.taken(), { UpdateItem: 1 }, 'known from the list it read');
  });

  test('when another writer changed the tags meanwhile, the conditional write fails, the item is read and written again', async () => {
    await store().heartbeat(heartbeatOf());
    await other!.store.updateTags('users', '10.0.0.1', { load_balancing_weight: 5 });
    counter.reset();
    const result = await store().heartbeat(heartbeatOf());
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 2 });
    assert.equal(result.current.tags.load_balancing_weight, 5, 'the weight survives');
  });

  test('updateTags is one UpdateItem on a known host, a GetItem first on another, a GetItem alone on a missing one', async () => {
    await store().heartbeat(heartbeatOf());
    counter.reset();
    await store().updateTags('users', '10.0.0.1', { load_balancing_weight: 3 });
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    await other!.store.heartbeat(heartbeatOf({ ip_address: '10.0.0.4' }));
    counter.reset();
    assert.notEqual(await store().updateTags('users', '10.0.0.4', { load_balancing_weight: 3 }), undefined);
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 1 });
    assert.equal(await store().updateTags('users', '10.9.9.9', { load_balancing_weight: 3 }), undefined);
    assert.deepEqual(counter.taken(), { GetItem: 1 });
  });

  test('get, lists, deletes and overrides cost what they cost in our layout', async () => {
    await store().heartbeat(heartbeatOf());
    counter.reset();
    await store().get('users', '10.0.0.1');
    assert.deepEqual(counter.taken(), { GetItem: 1 });
    await store().listByService('users');
    assert.deepEqual(counter.taken(), { Query: 1 });
    await store().listByRepo('users-repo');
    assert.deepEqual(counter.taken(), { Query: 1 });
    await store().setStatusOverride('users', '10.0.0.1', 'DRAINING');
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    assert.equal(await store().deleteIfCheckInIs('users', '10.0.0.1', heartbeatOf().last_check_in), true);
    assert.deepEqual(counter.taken(), { DeleteItem: 1 });
  });
});

describe("DynamoDB calls per API request in the original's item layout (through the real listener)", () => {
  let opened: OpenedStore;
  let registry: RunningRegistry;
  let url: string;
  const counter = new CommandCounter();

  before(async () => {
    opened = await openStore(server.endpoint, { layout: 'original', prepare: (client) => counter.attach(client) });
    registry = await startRegistry({ env: DYNAMODB_ENV, store: opened.store });
    url = registry.url;
  });
  after(async () => {
    await registry.close();
    await opened.dispose();
  });

  const register = (ip: string) =>
    fetch(`${url}/v1/registration/api`, {
      method: 'POST',
      body: new URLSearchParams({
        ip,
        port: '80',
        revision: 'r1',
        service_repo_name: 'api-repo',
        tags: JSON.stringify({ az: 'a', region: 'r', instance_id: 'i' }),
      }),
    });

  test('a first heartbeat is one GetItem and one UpdateItem; every later one from this replica one UpdateItem', async () => {
    counter.reset();
    assert.equal((await register('10.4.0.1')).status, 200);
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 1 });
    for (let beat = 0; beat < 3; beat++) {
      assert.equal((await register('10.4.0.1')).status, 200);
      assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    }
  });

  test('a weight for one host is one GetItem and one UpdateItem; for every host one Query and one UpdateItem per host', async () => {
    await register('10.4.0.2');
    await register('10.4.0.3');
    counter.reset();
    const one = await fetch(`${url}/v1/loadbalancing/api/10.4.0.2`, {
      method: 'POST',
      body: new URLSearchParams({ load_balancing_weight: '7' }),
    });
    assert.equal(one.status, 204);
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 1 });
    const hosts = (await opened.store.listByService('api')).hosts.length;
    counter.reset();
    const all = await fetch(`${url}/v1/loadbalancing/api`, {
      method: 'POST',
      body: new URLSearchParams({ load_balancing_weight: '8' }),
    });
    assert.equal(all.status, 204);
    assert.deepEqual(counter.taken(), { Query: 1, UpdateItem: hosts });
  });
});

describe('DynamoDB calls per API request (through the real listener, fast paths included)', () => {
  let opened: OpenedStore;
  let registry: RunningRegistry;
  let url: string;
  const counter = new CommandCounter();
  const clock = new ManualClock();

  before(async () => {
    opened = await openStore(server.endpoint, { prepare: (client) => counter.attach(client) });
    registry = await startRegistry({ env: DYNAMODB_ENV, store: opened.store, clock });
    url = registry.url;
  });
  after(async () => {
    await registry.close();
    await opened.dispose();
  });

  /** A heartbeat as hosts send it: a form body (the fast path's). */
  const register = (ip: string) =>
    fetch(`${url}/v1/registration/api`, {
      method: 'POST',
      body: new URLSearchParams({
        ip,
        port: '80',
        revision: 'r1',
        service_repo_name: 'api-repo',
        tags: JSON.stringify({ az: 'a', region: 'r', instance_id: 'i' }),
      }),
    });
  const get = (path: string) => fetch(`${url}${path}`);
  const postJson = (path: string, body: object) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  test('POST /v1/registration/:service (heartbeat) is one UpdateItem and no read', async () => {
    counter.reset();
    assert.equal((await register('10.2.0.1')).status, 200);
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    assert.equal((await register('10.2.0.1')).status, 200);
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
    const json = await postJson('/v1/registration/api', {
      ip: '10.2.0.1',
      port: 80,
      revision: 'r1',
      service_repo_name: 'api-repo',
      tags: { az: 'a', region: 'r', instance_id: 'i' },
    });
    assert.equal(json.status, 200, 'a JSON heartbeat, through Fastify, costs the same');
    assert.deepEqual(counter.taken(), { UpdateItem: 1 });
  });

  test('a routing change also stores one change record for the other replicas; a refresh stores none', async () => {
    counter.reset();
    assert.equal((await register('10.2.0.9')).status, 200);
    const deadline = performance.now() + 5000;
    let changes = 0;
    while (changes === 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      changes += counter.feedTaken()['PutItem change'] ?? 0;
    }
    assert.equal(changes, 1, 'one PutItem of a change record for the new host');
    assert.equal((await register('10.2.0.9')).status, 200);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(counter.feedTaken()['PutItem change'], undefined, 'a heartbeat that changes nothing is not a change');
    assert.deepEqual(counter.taken(), { UpdateItem: 2 });
  });

  test('GET /v1/registration/:service and /repo/:repo are one Query each', async () => {
    await register('10.2.0.2');
    counter.reset();
    assert.equal((await get('/v1/registration/api')).status, 200);
    assert.deepEqual(counter.taken(), { Query: 1 });
    assert.equal((await get('/v1/registration/repo/api-repo')).status, 200);
    assert.deepEqual(counter.taken(), { Query: 1 });
  });

  test('a GET that finds an expired host adds one conditional DeleteItem for it', async () => {
    clock.set(Date.UTC(2026, 10, 28, 6, 0, 0));
    await register('10.2.0.3');
    clock.advance(601_000);
    await register('10.2.0.4');
    counter.reset();
    const body = (await (await get('/v1/registration/api')).json()) as { hosts: { ip_address: string }[] };
    assert.ok(!body.hosts.some((host) => host.ip_address === '10.2.0.3'));
    const taken = counter.taken();
    assert.equal(taken.Query, 1);
    assert.ok((taken.DeleteItem ?? 0) >= 1, 'the expired host was removed');
  });

  test('DELETE is one DeleteItem; a weight for one host is a GetItem and an UpdateItem', async () => {
    await register('10.2.0.5');
    counter.reset();
    const weight = await postJson('/v1/loadbalancing/api/10.2.0.5', { load_balancing_weight: 7 });
    assert.equal(weight.status, 204);
    assert.deepEqual(counter.taken(), { GetItem: 1, UpdateItem: 1 });
    assert.equal((await fetch(`${url}/v1/registration/api/10.2.0.5`, { method: 'DELETE' })).status, 200);
    assert.deepEqual(counter.taken(), { DeleteItem: 1 });
  });

  test('a weight for every host of a service is one Query and one UpdateItem per live host', async () => {
    const before = (await opened.store.listByService('api')).hosts.length;
    counter.reset();
    const weight = await postJson('/v1/loadbalancing/api', { load_balancing_weight: 9 });
    assert.equal(weight.status, 204);
    const taken = counter.taken();
    assert.equal(taken.Query, 1);
    assert.ok(taken.UpdateItem !== undefined && taken.UpdateItem >= 1 && taken.UpdateItem <= before);
    assert.equal(Object.keys(taken).length, 2);
  });
});

describe('DynamoDB calls per 1,000 heartbeats, HEARTBEAT_WRITE_INTERVAL off and on (through the real listener)', () => {
  /** 100 hosts heartbeating every 10 s for 100 s (1,000 heartbeats), with the clock moved, not waited for. */
  async function callsPerThousand(interval: string): Promise<{ calls: Record<string, number>; listed: number }> {
    const counter = new CommandCounter();
    const clock = new ManualClock();
    const opened = await openStore(server.endpoint, { prepare: (client) => counter.attach(client) });
    const registry = await startRegistry({
      env: { ...DYNAMODB_ENV, HOST_TTL: '30', HEARTBEAT_WRITE_INTERVAL: interval },
      store: opened.store,
      clock,
    });
    try {
      const url = registry.url;
      counter.reset();
      for (let round = 0; round < 10; round++) {
        for (let host = 0; host < 100; host++) {
          const response = await fetch(`${url}/v1/registration/fleet-${interval}`, {
            method: 'POST',
            body: new URLSearchParams({
              ip: `10.3.0.${host}`,
              port: '80',
              revision: 'r1',
              tags: JSON.stringify({ az: 'a', region: 'r', instance_id: `i-${host}` }),
            }),
          });
          assert.equal(response.status, 200);
        }
        clock.advance(10_000);
      }
      const calls = counter.taken();
      // Every host heartbeated on time, so every one is still served, whatever was written.
      const listed = ((await (await fetch(`${url}/v1/registration/fleet-${interval}`)).json()) as { hosts: unknown[] })
        .hosts.length;
      return { calls, listed };
    } finally {
      await registry.close();
      await opened.dispose();
    }
  }

  test('off: every heartbeat is a write; 25 s: one write per host per 30 s, and every host still served', async () => {
    const off = await callsPerThousand('0');
    assert.deepEqual(off.calls, { UpdateItem: 1000 });
    assert.equal(off.listed, 100);
    // Writes at 0, 30, 60 and 90 s: each host's stored check-in is at most 20 s behind its heartbeat.
    const on = await callsPerThousand('25');
    assert.deepEqual(on.calls, { UpdateItem: 400 });
    assert.equal(on.listed, 100, 'no host that heartbeats on time is expired, though its stored check-in trails');
  });
});
