import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { formatCheckIn } from '../../src/hosts/model.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import type { EmbeddedDynamoDb } from '../../src/store/dynamodb/embedded-dynalite.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { CountingDynamoDbProxy } from '../helpers/dynamodb-proxy.js';
import { freshTableName, startDynalite } from '../helpers/dynamodb.js';
import {
  deregister,
  hostAt,
  registerOrThrow,
  startRegistry,
  waitFor,
  type RunningRegistry,
} from '../helpers/registry.js';
import { endpointsOf } from '../helpers/xds-wire.js';

/**
 * Replicas on one DynamoDB table (a real dynalite) learning of each other's changes through the
 * change feed: hints between them, the change log as the catch-up, and no re-reading of what
 * they serve while nothing changes.
 */

const REGISTER_TOKEN = 'tok-register-0123456789';

function replicaEnv(
  dynamo: EmbeddedDynamoDb | CountingDynamoDbProxy,
  table: string,
  extra: Record<string, string> = {},
) {
  return {
    BACKEND_STORAGE: 'DynamoDB',
    DYNAMODB_URL: dynamo.endpoint,
    DYNAMODB_TABLE_HOSTS: table,
    DYNAMODB_CREATE_TABLES_IN_APP: 'true',
    LISTEN_ADDRESS: '127.0.0.1',
    ...extra,
  };
}

/** An ADS stream on `replica` watching `services` over EDS, every response ACKed. */
class Watcher {
  private readonly client: grpc.Client;
  private readonly stream: RawXdsStream;
  /** Every watched cluster's endpoints, as the responses so far left them. */
  private readonly clusters = new Map<string, string[]>();
  get latest(): string[] {
    return [...this.clusters.values()].flat().sort();
  }
  private readonly listeners = new Set<() => void>();

  constructor(replica: RunningRegistry, services: string[]) {
    this.client = new grpc.Client(`127.0.0.1:${replica.xdsPort}`, grpc.credentials.createInsecure());
    this.stream = new RawXdsStream(this.client);
    this.stream.onResponse = (response) => {
      this.stream.ack(response, services);
      for (const [cluster, endpoints] of Object.entries(endpointsOf(response))) this.clusters.set(cluster, endpoints);
      for (const listener of this.listeners) listener();
    };
    this.stream.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: services, node: { id: 'feed-test' } });
  }

  /** Resolves with the ms it took until `check` held on a response; rejects past `timeoutMs`. */
  until(check: (endpoints: string[]) => boolean, timeoutMs: number, what: string): Promise<number> {
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const done = () => {
        if (!check(this.latest)) return;
        clearTimeout(timer);
        this.listeners.delete(done);
        resolve(performance.now() - started);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(done);
        reject(new Error(`${what}: not within ${timeoutMs} ms (last: ${this.latest.join(', ')})`));
      }, timeoutMs);
      this.listeners.add(done);
      done();
    });
  }

  close(): void {
    this.stream.close();
    this.client.close();
  }
}

/** One sample of `/metrics`, by its series as written (`name{labels}`); 0 when absent. */
async function metric(replica: RunningRegistry, series: string): Promise<number> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

async function hostsOf(replica: RunningRegistry, service: string): Promise<string[]> {
  const response = await fetch(`${replica.url}/v1/registration/${service}`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { hosts: { ip_address: string }[] }).hosts.map((host) => host.ip_address).sort();
}

let dynamo: EmbeddedDynamoDb;
before(async () => {
  dynamo = await startDynalite();
});
after(async () => dynamo?.close());

describe('the change feed between replicas on one table', () => {
  let a: RunningRegistry;
  let b: RunningRegistry;
  const watchers: Watcher[] = [];

  before(async () => {
    const table = freshTableName();
    a = await startRegistry({ xds: true, env: replicaEnv(dynamo, table) });
    // B reads the log only once a minute: what reaches it sooner came as a hint.
    b = await startRegistry({
      xds: true,
      env: replicaEnv(dynamo, table, { CHANGE_FEED_INTERVAL_MS: '60000', CACHE_TYPE: 'simple', CACHE_TTL: '3600' }),
    });
    // Each knows the other once both announced and read the roll (A reads it every 1.5 s).
    await waitFor('A knows B', async () => a.registry.changeFeed!.peerIds().length === 1, 10_000);
  });
  after(async () => {
    for (const watcher of watchers) watcher.close();
    await Promise.all([a?.close(), b?.close()]);
  });

  test('a host registered on one replica reaches an xDS stream on the other by hint, long before its next read of the log', async () => {
    const watcher = new Watcher(b, ['users']);
    watchers.push(watcher);
    await watcher.until((endpoints) => endpoints.length === 0, 5000, 'first response');
    // B learns of A only at its first read of the roll (at start); give A's announcement a moment.
    await waitFor('B knows A', async () => b.registry.changeFeed!.peerIds().length === 1, 10_000);
    const seen = watcher.until((endpoints) => endpoints.includes('10.1.0.1:8080'), 5000, 'A’s host on B’s stream');
    await registerOrThrow(a.url, 'users', hostAt('10.1.0.1', 8080));
    await seen;
    const gone = watcher.until((endpoints) => !endpoints.includes('10.1.0.1:8080'), 5000, 'A’s delete on B’s stream');
    await deregister(a.url, 'users', '10.1.0.1');
    await gone;
  });

  test('/metrics says whether the feed works: peers, hints sent and received, the change log’s storage calls', async () => {
    assert.equal(await metric(a, 'discovery_change_feed_peers'), 1);
    assert.ok((await metric(a, 'discovery_change_feed_hints_total{outcome="sent"}')) >= 2);
    assert.equal(await metric(a, 'discovery_change_feed_hints_total{outcome="failed"}'), 0);
    assert.ok((await metric(b, 'discovery_change_feed_hints_total{outcome="received"}')) >= 2);
    assert.ok(
      (await metric(a, 'discovery_storage_call_duration_seconds_count{operation="changeLog.read",outcome="ok"}')) >= 1,
    );
  });

  test('a cached GET on the other replica shows the write at once, not after CACHE_TTL (an hour here)', async () => {
    assert.deepEqual(await hostsOf(b, 'billing'), []);
    await registerOrThrow(a.url, 'billing', hostAt('10.1.0.2', 8080));
    await waitFor('write seen through the cache', async () => (await hostsOf(b, 'billing')).includes('10.1.0.2'), 5000);
  });

  test('GET /v1/services on the other replica lists the new service, and never the feed’s own partition', async () => {
    await registerOrThrow(a.url, 'search', hostAt('10.1.0.3', 8080));
    const names = async () =>
      ((await (await fetch(`${b.url}/v1/services`)).json()) as { services: { service: string }[] }).services.map(
        (summary) => summary.service,
      );
    await waitFor('service listed', async () => (await names()).includes('search'), 5000);
    assert.ok(!(await names()).some((name) => name.includes('/')), (await names()).join(', '));
  });
});

describe('the change log is the catch-up when hints do not arrive', () => {
  test('hints refused (writes locked, no PEER_TOKEN): the change still arrives, within the read interval', async () => {
    const table = freshTableName();
    const locked = { AUTH_REGISTER_TOKENS: REGISTER_TOKEN, AUTH_ADMIN_TOKENS: 'tok-admin-0123456789abcdef' };
    const a = await startRegistry({ xds: true, env: replicaEnv(dynamo, table, locked) });
    const b = await startRegistry({
      xds: true,
      env: replicaEnv(dynamo, table, { ...locked, CHANGE_FEED_INTERVAL_MS: '500' }),
    });
    const watcher = new Watcher(b, ['orders']);
    try {
      await watcher.until((endpoints) => endpoints.length === 0, 5000, 'first response');
      await waitFor('A knows B', async () => a.registry.changeFeed!.peerIds().length === 1, 10_000);
      const seen = watcher.until((endpoints) => endpoints.includes('10.2.0.1:8080'), 5000, 'write on B');
      const response = await fetch(`${a.url}/v1/registration/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${REGISTER_TOKEN}` },
        body: JSON.stringify({
          ip: '10.2.0.1',
          port: 8080,
          revision: 'r1',
          tags: { az: 'a', region: 'r', instance_id: 'i' },
        }),
      });
      assert.equal(response.status, 200);
      await seen;
      assert.ok(
        (await metric(a, 'discovery_change_feed_hints_total{outcome="failed"}')) >= 1,
        'the refused hint is counted',
      );
    } finally {
      watcher.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('a write that never made it into the log is found when its replica leaves the roll', async () => {
    const table = freshTableName();
    const a = await startRegistry({ xds: true, env: replicaEnv(dynamo, table) });
    const b = await startRegistry({ xds: true, env: replicaEnv(dynamo, table, { CHANGE_FEED_INTERVAL_MS: '300' }) });
    const watcher = new Watcher(b, ['ledger']);
    try {
      await watcher.until((endpoints) => endpoints.length === 0, 5000, 'first response');
      await waitFor('B knows A', async () => b.registry.changeFeed!.peerIds().length === 1, 10_000);
      // As if A died between the host write and its change record: the host is in the table only.
      await a.registry.store.heartbeat({
        service: 'ledger',
        ip_address: '10.3.0.1',
        port: 8080,
        revision: 'r1',
        service_repo_name: '',
        tags: { az: 'a', region: 'r', instance_id: 'i' },
        last_check_in: formatCheckIn(Date.now()),
      });
      assert.ok(
        await watcher
          .until(() => false, 1000, 'nothing')
          .then(
            () => false,
            () => true,
          ),
        'nothing told B yet',
      );
      const seen = watcher.until((endpoints) => endpoints.includes('10.3.0.1:8080'), 5000, 'host found by the re-sync');
      await a.close();
      await seen;
    } finally {
      watcher.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('a host that stops heartbeating is expired by the replica that wrote it, and the other replica’s stream drops it', async () => {
    const table = freshTableName();
    const a = await startRegistry({ xds: true, env: replicaEnv(dynamo, table, { HOST_TTL: '2' }) });
    const b = await startRegistry({
      xds: true,
      env: replicaEnv(dynamo, table, { HOST_TTL: '2', CHANGE_FEED_INTERVAL_MS: '60000' }),
    });
    const watcher = new Watcher(b, ['short']);
    try {
      await watcher.until((endpoints) => endpoints.length === 0, 5000, 'first response');
      await waitFor('A knows B', async () => a.registry.changeFeed!.peerIds().length === 1, 10_000);
      await registerOrThrow(a.url, 'short', hostAt('10.4.0.1', 8080));
      await watcher.until((endpoints) => endpoints.includes('10.4.0.1:8080'), 5000, 'registered');
      // Expired 2 s after its heartbeat; A judges it then and hints B (which reads the log once a minute).
      const ms = await watcher.until((endpoints) => endpoints.length === 0, 8000, 'expired host dropped on B');
      assert.ok(ms >= 1000, `dropped after ${ms.toFixed(0)} ms: not before it expired`);
    } finally {
      watcher.close();
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('expiry protection with the feed', () => {
  test('hosts kept by expiry protection are removed when it ends, on the other replica’s stream too', async () => {
    const table = freshTableName();
    const protection = {
      HOST_TTL: '1',
      EXPIRY_PROTECTION: 'true',
      EXPIRY_PROTECTION_MIN_HOSTS: '3',
      EXPIRY_PROTECTION_MAX_SECONDS: '2',
    };
    const a = await startRegistry({ xds: true, env: replicaEnv(dynamo, table, protection) });
    const b = await startRegistry({
      xds: true,
      env: replicaEnv(dynamo, table, { ...protection, CHANGE_FEED_INTERVAL_MS: '60000' }),
    });
    const watcher = new Watcher(b, ['guarded']);
    try {
      await watcher.until((endpoints) => endpoints.length === 0, 5000, 'first response');
      await waitFor('A knows B', async () => a.registry.changeFeed!.peerIds().length === 1, 10_000);
      // Registered together, so they expire together (protection judges what one read finds expired).
      await Promise.all(
        ['10.6.0.1', '10.6.0.2', '10.6.0.3'].map((ip) => registerOrThrow(a.url, 'guarded', hostAt(ip, 8080))),
      );
      await watcher.until((endpoints) => endpoints.length === 3, 5000, 'registered');
      // All three stop at once: protection keeps them 2 s past their expiry, then they go.
      await waitFor(
        'protection starts on the replica that wrote them',
        async () => a.registry.hostService.readouts.expiryProtectionStatus().protectedServices.includes('guarded'),
        5000,
      );
      assert.equal(watcher.latest.length, 3, 'kept while protected');
      await watcher.until((endpoints) => endpoints.length === 0, 15_000, 'removed on B when protection ended');
    } finally {
      watcher.close();
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe('while nothing changes, a replica following the feed does not re-read what it serves', () => {
  for (const feed of ['true', 'false']) {
    test(`CHANGE_FEED=${feed}: DynamoDB calls in 4 s with 50 services watched over xDS`, async () => {
      const table = freshTableName();
      const proxy = await CountingDynamoDbProxy.start(dynamo.endpoint);
      const replica = await startRegistry({ xds: true, env: replicaEnv(proxy, table, { CHANGE_FEED: feed }) });
      const services = Array.from({ length: 50 }, (_, index) => `idle-${index}`);
      const watcher = new Watcher(replica, services);
      try {
        for (const [index, service] of services.entries())
          await registerOrThrow(replica.url, service, hostAt(`10.5.0.${index}`, 8080));
        await watcher.until((endpoints) => endpoints.length === 50, 10_000, 'all 50 watched');
        // Let the reads the registrations caused finish, then count a quiet window: the window is
        // the point of the test (what a replica calls while nothing changes), not a wait for an outcome.
        await new Promise((resolve) => setTimeout(resolve, 500));
        proxy.take();
        await new Promise((resolve) => setTimeout(resolve, 4000));
        const { total, byOperation } = proxy.take();
        if (feed === 'true') {
          // A read of the log every 1.5 s, an announcement every 15 s: 2 to 4 calls.
          assert.ok(total <= 5, `${total} calls: ${JSON.stringify(byOperation)}`);
        } else {
          // XDS_POLL_INTERVAL_MS (1 s here) re-reads every watched service: about 200 on an idle
          // machine (84 was seen at a load of 4). The contrast needs only every service re-read
          // at least once in the window, which no feed replica does.
          assert.ok(total >= services.length, `${total} calls: ${JSON.stringify(byOperation)}`);
        }
      } finally {
        watcher.close();
        await replica.close();
        await proxy.close();
      }
    });
  }
});

describe('POST /v1/feed/hints', () => {
  test('a malformed hint is a 400 naming the field and changes nothing; a replica without a feed answers 404', async () => {
    const table = freshTableName();
    const replica = await startRegistry({ xds: true, env: replicaEnv(dynamo, table) });
    const single = await startRegistry({ xds: true });
    try {
      const post = (url: string, body: unknown) =>
        fetch(`${url}/v1/feed/hints`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      const bad = await post(replica.url, {
        replica: 'p1',
        changes: [{ key: 'k', replica: 'p1', services: ['a/b'], at: 1 }],
      });
      assert.equal(bad.status, 400);
      assert.match(((await bad.json()) as { error: string }).error, /services/);
      const noReplica = await post(replica.url, { changes: [] });
      assert.equal(noReplica.status, 400);
      assert.match(((await noReplica.json()) as { error: string }).error, /replica/);
      const good = { replica: 'p1', changes: [{ key: 'k', replica: 'p1', services: ['users'], at: 1 }] };
      assert.equal((await post(replica.url, good)).status, 204);
      const none = await post(single.url, good);
      assert.equal(none.status, 404);
      assert.match(((await none.json()) as { error: string }).error, /change feed/);
    } finally {
      await Promise.all([replica.close(), single.close()]);
    }
  });
});
