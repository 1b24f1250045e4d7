import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ANNOUNCE_INTERVAL_MS } from '../../src/replication/change-feed.js';
import type { EmbeddedDynamoDb } from '../../src/store/dynamodb/embedded-dynalite.js';
import { ensureHostsTable } from '../../src/store/dynamodb/hosts-table.js';
import { freshTableName, silentLog, startDynalite, testClient } from '../helpers/dynamodb.js';
import { freePort } from '../helpers/network.js';
import { ReplicaProcess } from '../helpers/replica-process.js';
import { XdsWatcher } from '../helpers/xds-watcher.js';

/**
 * The departure path on its own (docs/replicas.md, "What the log cannot say"): the replica that
 * wrote a host's last check-in owns its expiry; when that replica dies without a word, the
 * others must still drop the host once it has expired, because every replica re-reads what it
 * serves one host lifetime after a peer leaves. Here nothing else happens in the fleet (no other
 * write, no other host), so nothing but that path can remove the host from B's stream.
 */

const HOST_TTL_SECONDS = 5;
const HOST_LIFETIME_MS = HOST_TTL_SECONDS * 1000;
const CHANGE_FEED_INTERVAL_MS = 500;
/** A replica that stops announcing has left this long after its last announcement. */
const ANNOUNCEMENT_LAPSE_MS = 3 * ANNOUNCE_INTERVAL_MS;
/** The bound docs/replicas.md states for an expiry owner killed, counted from the kill. */
const BOUND_OWNER_KILLED_MS = ANNOUNCEMENT_LAPSE_MS + HOST_LIFETIME_MS + CHANGE_FEED_INTERVAL_MS;
/** Scheduling noise on a shared machine. */
const NOISE_MARGIN_MS = 5000;
const SERVICE = 'orphans';
const HOST_IP = '10.77.0.1';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let dynamo: EmbeddedDynamoDb | undefined;
const replicas: ReplicaProcess[] = [];
let watcher: XdsWatcher | undefined;

before(
  async () => {
    dynamo = await startDynalite();
    const table = freshTableName();
    const admin = testClient(dynamo.endpoint);
    await ensureHostsTable(admin, table, silentLog);
    admin.destroy();
    for (const name of ['A', 'B'])
      replicas.push(
        new ReplicaProcess(name, await freePort(), await freePort(), {
          BACKEND_STORAGE: 'DynamoDB',
          DYNAMODB_URL: dynamo.endpoint,
          DYNAMODB_TABLE_HOSTS: table,
          HOST_TTL: String(HOST_TTL_SECONDS),
          CHANGE_FEED_INTERVAL_MS: String(CHANGE_FEED_INTERVAL_MS),
          XDS_LISTEN_ADDRESS: '127.0.0.1',
          LOG_LEVEL: 'warn',
        }),
      );
    await Promise.all(replicas.map((replica) => replica.start()));
  },
  { timeout: 60_000 },
);

after(
  async () => {
    watcher?.close();
    await Promise.allSettled(replicas.map((replica) => replica.stop('SIGKILL')));
    await dynamo?.close();
  },
  { timeout: 60_000 },
);

async function knowsPeers(replica: ReplicaProcess, count: number): Promise<boolean> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  return new RegExp(`^discovery_change_feed_peers ${count}$`, 'm').test(text);
}

async function listed(replica: ReplicaProcess): Promise<string[]> {
  const response = await fetch(`${replica.url}/v1/registration/${SERVICE}`);
  assert.equal(response.status, 200, `GET on ${replica.name}`);
  return ((await response.json()) as { hosts: { ip_address: string }[] }).hosts.map((host) => host.ip_address);
}

/** One heartbeat of `ip` through `replica`; the send and answer times. */
async function heartbeatOnce(replica: ReplicaProcess, ip: string): Promise<{ sentAt: number; answeredAt: number }> {
  const sentAt = Date.now();
  const response = await fetch(`${replica.url}/v1/registration/${SERVICE}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      ip,
      port: 8080,
      revision: 'r1',
      tags: { az: 'az-1', region: 'region-1', instance_id: `i-${ip}` },
    }),
  });
  assert.equal(response.status, 200, await response.text());
  return { sentAt, answeredAt: Date.now() };
}

function shows(stream: XdsWatcher, ip: string): boolean {
  return stream.clusters.get(SERVICE)?.some((endpoint) => endpoint.ip === ip) ?? false;
}

test('a host whose expiry owner was killed leaves the other replica’s stream, with no other change in the fleet', async (t) => {
  const [a, b] = replicas as [ReplicaProcess, ReplicaProcess];
  const startedAt = Date.now();
  for (const replica of replicas) {
    while (!(await knowsPeers(replica, 1))) {
      if (Date.now() - startedAt > 20_000) assert.fail(`replica ${replica.name} did not learn of its peer within 20 s`);
      await sleep(200);
    }
  }
  // Each replica re-reads everything once, one host lifetime after it starts: let that pass
  // first, or it, not the departure, would be what removes the host.
  await sleep(Math.max(0, startedAt + HOST_LIFETIME_MS + 1500 - Date.now()));

  watcher = new XdsWatcher(b.xdsPort, [SERVICE], 'departure-test');
  const stream = watcher;
  await stream.until(
    () => stream.clusters.has(SERVICE),
    5000,
    () => 'B’s first response',
  );

  // One heartbeat through A, which then owns the host's expiry; never another.
  const { sentAt, answeredAt } = await heartbeatOnce(a, HOST_IP);
  await stream.until(
    () => shows(stream, HOST_IP),
    5000,
    () => 'the host on B’s stream (by A’s hint)',
  );

  // A dies without a word (no withdrawal), before the host's expiry was due.
  await a.stop('SIGKILL');
  const killedAt = Date.now();
  const expiresBy = answeredAt + HOST_LIFETIME_MS;
  assert.ok(
    killedAt < sentAt + HOST_LIFETIME_MS,
    `A was killed ${killedAt - sentAt} ms after the heartbeat, after the host's expiry: the run was too slow to test this`,
  );

  // Nothing else happens: no GET either, since a read judges expired hosts and removes them,
  // which is another path than the one tested here.
  try {
    await stream.until(
      () => !shows(stream, HOST_IP),
      BOUND_OWNER_KILLED_MS + NOISE_MARGIN_MS,
      () => 'the expired host dropped from B’s stream',
    );
  } catch (error) {
    assert.fail(
      `${(error as Error).message}: B still routes ${HOST_IP} ${Date.now() - killedAt} ms after A was killed and ` +
        `${Date.now() - expiresBy} ms after the host expired (bound: announcement lapse ${ANNOUNCEMENT_LAPSE_MS} ms + ` +
        `host lifetime ${HOST_LIFETIME_MS} ms + interval ${CHANGE_FEED_INTERVAL_MS} ms, + ${NOISE_MARGIN_MS} ms noise margin)`,
    );
  }
  const goneAt = Date.now();
  t.diagnostic(
    `dropped from B's stream ${goneAt - killedAt} ms after the kill, ${goneAt - expiresBy} ms after the expiry`,
  );
  assert.ok(
    goneAt >= sentAt + HOST_LIFETIME_MS,
    `dropped ${sentAt + HOST_LIFETIME_MS - goneAt} ms before it could have expired`,
  );
  assert.deepEqual(await listed(b), [], 'B’s GET after the drop');
});

test('B’s GET never lists a host whose owner was killed once it has expired', async () => {
  const [a, b] = replicas as [ReplicaProcess, ReplicaProcess];
  const ip = '10.77.0.2';
  await a.start();
  const startedAt = Date.now();
  while (!(await knowsPeers(b, 1))) {
    if (Date.now() - startedAt > 20_000) assert.fail('B did not learn of the restarted A within 20 s');
    await sleep(200);
  }
  const { answeredAt } = await heartbeatOnce(a, ip);
  assert.deepEqual(await listed(b), [ip], 'B’s GET lists the live host');
  await a.stop('SIGKILL');
  const expiresBy = answeredAt + HOST_LIFETIME_MS;
  const shownAfterExpiry: string[] = [];
  while (Date.now() < expiresBy + 3000) {
    const askedAt = Date.now();
    const ips = await listed(b);
    if (askedAt > expiresBy && ips.includes(ip)) shownAfterExpiry.push(`${askedAt - expiresBy} ms after expiry`);
    await sleep(200);
  }
  assert.deepEqual(shownAfterExpiry, [], 'B’s GET listed the expired host');
});
