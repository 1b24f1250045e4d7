import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { EmbeddedDynamoDb } from '../../src/store/dynamodb/embedded-dynalite.js';
import { freshTableName, startDynalite } from '../helpers/dynamodb.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { hostAt, register, startRegistry, waitFor, type RunningRegistry } from '../helpers/registry.js';
import { endpointWord, XdsWatcher } from '../helpers/xds-watcher.js';

/**
 * A replica's own storage blip on a replica that follows the change feed (issue 23, items 1-3):
 * its xDS resources keep the last good list while its reads fail (a stale list is never pushed,
 * an empty one least of all), and every read that failed is retried until one succeeds, so the
 * stream is right again within a bound after the heal, with no further change in the fleet.
 * Two replicas in this process on one real dynalite; B reaches it through a proxy that is cut.
 */

const HOST_TTL_SECONDS = 5;
const TIMEOUT_MS = 1_000;
/** After a heal: one storage timeout, the longest retry back-off (RETRY_MAX_MS) and a read, with room for a busy machine. */
const HEAL_BOUND_MS = TIMEOUT_MS + 2_000 + 3_000;

let dynamo: EmbeddedDynamoDb;
before(async () => {
  dynamo = await startDynalite();
});
after(async () => dynamo?.close());

function replicaEnv(endpoint: string, table: string): Record<string, string> {
  return {
    BACKEND_STORAGE: 'DynamoDB',
    DYNAMODB_URL: endpoint,
    DYNAMODB_TABLE_HOSTS: table,
    DYNAMODB_CREATE_TABLES_IN_APP: 'true',
    DYNAMODB_TIMEOUT_MS: String(TIMEOUT_MS),
    HOST_TTL: String(HOST_TTL_SECONDS),
    CHANGE_FEED_INTERVAL_MS: '500',
    LISTEN_ADDRESS: '127.0.0.1',
  };
}

async function post(url: string, path: string, body: Record<string, unknown>): Promise<number> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await response.text();
  return response.status;
}

/** One heartbeat of the host at `ip:8080`; resolves with the answer's status. */
async function heartbeat(url: string, service: string, ip: string): Promise<number> {
  return (await register(url, service, hostAt(ip, 8080))).status;
}

/**
 * The waits below are the point of these tests, not a stand-in for an outcome: time passing on
 * real storage (a host lifetime, an outage, the change log's look-back) with nothing changing.
 */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Two replicas on a fresh table, B's storage behind a proxy; closed by the returned function. */
async function startPair(): Promise<{
  a: RunningRegistry;
  b: RunningRegistry;
  proxy: FaultProxy;
  close(): Promise<void>;
}> {
  const table = freshTableName();
  const proxy = await FaultProxy.inFrontOf(dynamo.endpoint);
  const a = await startRegistry({ xds: true, env: replicaEnv(dynamo.endpoint, table) });
  const b = await startRegistry({ xds: true, env: replicaEnv(proxy.url, table) });
  // Each must know the other before a hint can travel; the log read is the catch-up regardless.
  const knows = (replica: RunningRegistry) => (replica.registry.changeFeed?.peerIds().length ?? 0) > 0;
  await waitFor('the replicas to see each other', () => knows(a) && knows(b), 10_000, 50);
  return {
    a,
    b,
    proxy,
    close: async () => {
      proxy.heal();
      await Promise.all([a.close(), b.close()]);
      await proxy.close();
    },
  };
}

/** Heartbeats `ips` of `service` through `url` every second until stopped (a host that heartbeats on time). */
function keepHeartbeating(url: string, service: string, ips: readonly string[]): () => Promise<void> {
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const ip of ips) assert.equal(await heartbeat(url, service, ip), 200);
      await sleep(1_000);
    }
  })();
  return async () => {
    running = false;
    await loop;
  };
}

describe('a replica whose storage blips keeps its xDS right and heals it', { timeout: 120_000 }, () => {
  test('item 1: a change while B cannot read is never pushed stale or empty, and reaches B within the bound after the heal', async () => {
    const pair = await startPair();
    const stopHeartbeats = keepHeartbeating(pair.a.url, 'users', ['10.1.0.1', '10.1.0.2']);
    const watcher = new XdsWatcher(pair.b.xdsPort, ['users'], 'proxy-on-b');
    try {
      await watcher.until(
        () => watcher.clusters.get('users')?.length === 2,
        10_000,
        () => 'both hosts on B',
      );
      const sizes: number[] = [];
      watcher.onCluster((_cluster, endpoints) => sizes.push(endpoints.length));
      // Longer than HOST_TTL with nothing changing: B's last read of the service is now older than a host lifetime.
      await sleep(HOST_TTL_SECONDS * 1000 + 3_000);
      pair.proxy.cut();
      assert.equal(await post(pair.a.url, '/v1/loadbalancing/users/10.1.0.1', { load_balancing_weight: 78 }), 204);
      await sleep(3_000);
      assert.ok(
        sizes.every((size) => size === 2),
        `B's stream was pushed ${JSON.stringify(sizes)} endpoints; hosts that heartbeat on time must never leave it`,
      );
      pair.proxy.heal();
      const took = await watcher.until(
        () => watcher.clusters.get('users')?.some((e) => e.ip === '10.1.0.1' && e.weight === 78) ?? false,
        HEAL_BOUND_MS,
        () => `B's stream after the heal: ${JSON.stringify(watcher.words('users'))}`,
      );
      assert.deepEqual(watcher.words('users'), [
        endpointWord({ ip: '10.1.0.1', port: 8080, weight: 78, health: 'HEALTHY' }),
        endpointWord({ ip: '10.1.0.2', port: 8080, weight: 1, health: 'HEALTHY' }),
      ]);
      assert.ok(
        sizes.every((size) => size === 2),
        `pushed ${JSON.stringify(sizes)} endpoints`,
      );
      assert.ok(took < HEAL_BOUND_MS);
    } finally {
      watcher.close();
      await stopHeartbeats();
      await pair.close();
    }
  });

  test('item 2: the replica that owns a host expiry judges it once its storage is back, however long it was down', async () => {
    const pair = await startPair();
    // B owns h1's expiry (h1 heartbeat once through B); A's stream watches.
    const watcher = new XdsWatcher(pair.a.xdsPort, ['orders'], 'proxy-on-a');
    try {
      assert.equal(await heartbeat(pair.b.url, 'orders', '10.2.0.1'), 200);
      const stopHeartbeats = keepHeartbeating(pair.a.url, 'orders', ['10.2.0.2']);
      try {
        await watcher.until(
          () => watcher.clusters.get('orders')?.length === 2,
          10_000,
          () => 'both hosts on A',
        );
        const registeredAt = performance.now();
        // B's storage goes 1 s before h1 is due and stays away for longer than its tries used to last (3 x 5 s).
        await sleep(HOST_TTL_SECONDS * 1000 - 1_000);
        pair.proxy.cut();
        await sleep(16_000);
        pair.proxy.heal();
        const healedAt = performance.now();
        await watcher.until(
          () => watcher.words('orders')?.length === 1 && watcher.clusters.get('orders')?.[0]?.ip === '10.2.0.2',
          HEAL_BOUND_MS,
          () =>
            `h1 expired ${Math.round((performance.now() - registeredAt) / 1000 - HOST_TTL_SECONDS)} s ago and the storage of its owner healed ${Math.round(performance.now() - healedAt)} ms ago; A's stream: ${JSON.stringify(watcher.words('orders'))}`,
        );
      } finally {
        await stopHeartbeats();
      }
    } finally {
      watcher.close();
      await pair.close();
    }
  });

  test('item 3: a stream that subscribes while storage is down gets its resources once storage answers', async () => {
    const pair = await startPair();
    const stopHeartbeats = keepHeartbeating(pair.a.url, 'billing', ['10.3.0.1']);
    try {
      // Registered longer ago than every read's look-back (LOOKBACK_MS, 10 s), and heartbeating
      // since: the change log will not bring the service up again after the heal, only the
      // stream's own retried read can.
      await sleep(11_000);
      pair.proxy.cut();
      const watcher = new XdsWatcher(pair.b.xdsPort, ['billing'], 'late-proxy-on-b');
      try {
        await sleep(4_000);
        pair.proxy.heal();
        await watcher.until(
          () => watcher.words('billing')?.length === 1,
          HEAL_BOUND_MS,
          () => `the stream opened during the outage, after the heal: ${JSON.stringify(watcher.words('billing'))}`,
        );
      } finally {
        watcher.close();
      }
    } finally {
      await stopHeartbeats();
      await pair.close();
    }
  });
});
