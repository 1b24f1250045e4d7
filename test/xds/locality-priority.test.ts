/* eslint-disable @typescript-eslint/no-explicit-any -- decoded protobuf messages are untyped; the assertions pin their shape */
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import pino from 'pino';
import { systemClock } from '../../src/clock.js';
import { HostService } from '../../src/hosts/host-service.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { TYPE_URL, xdsProtos } from '../../src/xds/protos.js';
import { clusterLoadAssignment, toResource, type XdsResource } from '../../src/xds/resources.js';
import { XdsSnapshotCache } from '../../src/xds/snapshot-cache.js';
import { XdsStreamServer, type DiscoveryResponse, type NodeInfo } from '../../src/xds/stream-server.js';
import {
  hostAt,
  RecordingStats,
  registerOrThrow,
  startRegistry,
  waitFor,
  type RunningRegistry,
} from '../helpers/registry.js';
import { RecordingTransport } from '../helpers/xds-wire.js';

const EDS = TYPE_URL.clusterLoadAssignment;
const SERVICE = 'users';
/** Two zones of us-east-1 and one of eu-west-1. */
const HOSTS = [
  { ip: '10.0.1.1', region: 'us-east-1', az: 'us-east-1a' },
  { ip: '10.0.1.2', region: 'us-east-1', az: 'us-east-1a' },
  { ip: '10.0.2.1', region: 'us-east-1', az: 'us-east-1b' },
  { ip: '10.0.3.1', region: 'eu-west-1', az: 'eu-west-1a' },
] as const;

function decoded(resource: XdsResource): Record<string, any> {
  const type = xdsProtos().typeOf(EDS);
  assert.ok(type);
  return type.toObject(type.decode(resource.body));
}

/** `zone: priority` for every locality of the one assignment in `response` (0 when left out). */
function priorities(response: DiscoveryResponse): Record<string, number> {
  assert.equal(response.resources.length, 1);
  const cla = decoded(response.resources[0]!);
  return Object.fromEntries(
    (cla.endpoints as any[]).map((locality) => [locality.locality.zone, locality.priority ?? 0]),
  );
}

describe('xDS endpoints by the proxy locality (XDS_LOCALITY_PRIORITY)', () => {
  let hostService: HostService;
  let cache: XdsSnapshotCache;
  let server: XdsStreamServer;

  function setUp(localityPriority: boolean) {
    const stats = new RecordingStats();
    const log = pino({ level: 'silent' });
    hostService = new HostService({
      store: new MemoryHostStore(),
      clock: systemClock,
      hostTtlSeconds: 600,
      cacheType: 'null',
      cacheTtlSeconds: 30,
      stats,
      log,
    });
    cache = new XdsSnapshotCache({
      hostService,
      events: hostService.events,
      clock: systemClock,
      log,
      pollIntervalMs: 600_000,
      wildcardPollIntervalMs: 600_000,
      localityPriority,
    });
    server = new XdsStreamServer({ cache, log, stats });
  }

  async function registerAll(): Promise<void> {
    for (const host of HOSTS) {
      await hostService.heartbeat({
        service: SERVICE,
        ip_address: host.ip,
        port: 8080,
        revision: 'r1',
        service_repo_name: '',
        tags: { region: host.region, az: host.az },
      });
    }
  }

  /** Opens a stream (ADS unless `kind`) for a proxy at `locality` (no node at all for `'no node'`) and subscribes it to SERVICE. */
  async function subscribe(
    locality: NodeInfo['locality'] | 'no node',
    kind: 'ads' | 'eds' = 'ads',
  ): Promise<{ transport: RecordingTransport<DiscoveryResponse>; response: DiscoveryResponse }> {
    const transport = new RecordingTransport<DiscoveryResponse>();
    const stream = server.openStream(kind, transport);
    await stream.receive({
      type_url: EDS,
      resource_names: [SERVICE],
      version_info: '',
      response_nonce: '',
      ...(locality === 'no node' ? {} : { node: { id: 'proxy', locality } }),
    });
    return { transport, response: transport.last() };
  }

  /** The assignment discovery serves without the setting: today's function, today's bytes. */
  async function todaysBytes(): Promise<Uint8Array> {
    const snapshot = await hostService.listByService(SERVICE);
    return toResource(EDS, SERVICE, clusterLoadAssignment(SERVICE, snapshot)).body;
  }

  afterEach(() => {
    server.closeAll();
    cache.close();
  });

  test('own zone at priority 0, the rest of the region at 1, other regions at 2', async () => {
    setUp(true);
    await registerAll();
    const { response } = await subscribe({ region: 'us-east-1', zone: 'us-east-1a' });
    assert.deepEqual(priorities(response), { 'us-east-1a': 0, 'us-east-1b': 1, 'eu-west-1a': 2 });
    const other = await subscribe({ region: 'us-east-1', zone: 'us-east-1b' });
    assert.deepEqual(priorities(other.response), { 'us-east-1a': 1, 'us-east-1b': 0, 'eu-west-1a': 2 });
    const europe = await subscribe({ region: 'eu-west-1', zone: 'eu-west-1a' });
    assert.deepEqual(priorities(europe.response), { 'us-east-1a': 1, 'us-east-1b': 1, 'eu-west-1a': 0 });
  });

  test('the EDS-alone service orders endpoints by locality as ADS does', async () => {
    setUp(true);
    await registerAll();
    const ads = await subscribe({ region: 'us-east-1', zone: 'us-east-1b' }, 'ads');
    const eds = await subscribe({ region: 'us-east-1', zone: 'us-east-1b' }, 'eds');
    assert.deepEqual(priorities(eds.response), { 'us-east-1a': 1, 'us-east-1b': 0, 'eu-west-1a': 2 });
    assert.equal(eds.response.resources[0], ads.response.resources[0], 'one resource for both services');
  });

  test('every locality keeps its weight, and the endpoints are the same in every class', async () => {
    setUp(true);
    await registerAll();
    const { response } = await subscribe({ region: 'us-east-1', zone: 'us-east-1a' });
    const cla = decoded(response.resources[0]!);
    assert.deepEqual(
      (cla.endpoints as any[]).map((locality) => [locality.locality.zone, locality.load_balancing_weight.value]),
      [
        ['eu-west-1a', 1],
        ['us-east-1a', 2],
        ['us-east-1b', 1],
      ],
    );
    const base = xdsProtos()
      .typeOf(EDS)!
      .decode(await todaysBytes());
    const baseObject = xdsProtos().typeOf(EDS)!.toObject(base) as any;
    assert.deepEqual(
      (cla.endpoints as any[]).map((locality) => ({ ...locality, priority: undefined })),
      (baseObject.endpoints as any[]).map((locality) => ({ ...locality, priority: undefined })),
    );
  });

  test('a zone without hosts, or no zone stated, puts the whole region first; priorities stay contiguous', async () => {
    setUp(true);
    await registerAll();
    for (const zone of ['us-east-1z', '', undefined]) {
      const { response } = await subscribe({ region: 'us-east-1', zone });
      assert.deepEqual(priorities(response), { 'us-east-1a': 0, 'us-east-1b': 0, 'eu-west-1a': 1 }, `zone ${zone}`);
    }
    // Europe's only zone emptied: a proxy there gets us-east-1 at priority 0, not a gap at 0.
    await hostService.deregister(SERVICE, '10.0.3.1');
    await waitFor(
      'the cache to see the delete',
      async () => decoded(await cache.endpoints(SERVICE)).endpoints.length === 2,
      2000,
      5,
    );
    const { response } = await subscribe({ region: 'eu-west-1', zone: 'eu-west-1a' });
    assert.deepEqual(priorities(response), { 'us-east-1a': 0, 'us-east-1b': 0 });
  });

  test('a proxy without a locality, or in a region no host is in, gets today’s single-priority bytes', async () => {
    setUp(true);
    await registerAll();
    const today = await todaysBytes();
    for (const locality of [
      'no node',
      null,
      {},
      { region: '', zone: 'us-east-1a' },
      { region: 'ap-south-1' },
    ] as const) {
      const { response } = await subscribe(locality);
      assert.deepEqual(
        Buffer.from(response.resources[0]!.body),
        Buffer.from(today),
        `locality ${JSON.stringify(locality)}`,
      );
    }
  });

  test('with the setting off, a proxy stating its locality gets today’s bytes', async () => {
    setUp(false);
    await registerAll();
    const { response } = await subscribe({ region: 'us-east-1', zone: 'us-east-1a' });
    assert.deepEqual(Buffer.from(response.resources[0]!.body), Buffer.from(await todaysBytes()));
    assert.deepEqual(priorities(response), { 'us-east-1a': 0, 'us-east-1b': 0, 'eu-west-1a': 0 });
    assert.equal(cache.localityResourceCount(SERVICE), 0);
  });

  test('two streams of one class are sent one shared resource, built once', async () => {
    setUp(true);
    await registerAll();
    const first = await subscribe({ region: 'us-east-1', zone: 'us-east-1a', sub_zone: 'rack-1' });
    const second = await subscribe({ region: 'us-east-1', zone: 'us-east-1a', sub_zone: 'rack-2' });
    assert.equal(first.response.resources[0], second.response.resources[0], 'the same object');
    assert.equal(cache.localityResourceCount(SERVICE), 1);
  });

  test('many distinct unknown localities build no more resources than the hosts have classes', async () => {
    setUp(true);
    await registerAll();
    const sent = new Set<XdsResource>();
    for (let i = 0; i < 500; i++) {
      const locality =
        i % 2 === 0 ? { region: `nowhere-${i}`, zone: `zone-${i}` } : { region: 'us-east-1', zone: `us-east-1-${i}` };
      const { response } = await subscribe(locality);
      sent.add(response.resources[0]!);
    }
    // Unknown regions share today's resource; unknown zones of us-east-1 share its "no local zone" one.
    assert.equal(sent.size, 2);
    assert.equal(cache.localityResourceCount(SERVICE), 1);
    server.closeAll();
    // Every class that exists: 3 zones, 2 regions; asking again for each builds nothing more.
    setUp(true);
    await registerAll();
    for (let round = 0; round < 3; round++) {
      for (const host of HOSTS) {
        await subscribe({ region: host.region, zone: host.az });
        await subscribe({ region: host.region, zone: `${host.az}-unknown` });
      }
    }
    assert.equal(cache.localityResourceCount(SERVICE), 5);
  });

  test("a stream is pushed a new assignment when its class's resource changes", async () => {
    setUp(true);
    await registerAll();
    const { transport, response } = await subscribe({ region: 'us-east-1', zone: 'us-east-1a' });
    await hostService.deregister(SERVICE, '10.0.1.1');
    await waitFor('a push after the first delete', () => transport.sent.length === 2, 2000, 5);
    assert.deepEqual(priorities(transport.last()), { 'us-east-1a': 0, 'us-east-1b': 1, 'eu-west-1a': 2 });
    await hostService.deregister(SERVICE, '10.0.1.2');
    await waitFor('a push after the zone emptied', () => transport.sent.length === 3, 2000, 5);
    const failedOver = transport.last();
    assert.deepEqual(priorities(failedOver), { 'us-east-1b': 0, 'eu-west-1a': 1 });
    const versions = new Set([response, transport.sent[1]!, failedOver].map((sent) => sent.version_info));
    assert.equal(versions.size, 3, 'each change has its own version');
    const nonces = new Set(transport.sent.map((sent) => sent.nonce));
    assert.equal(nonces.size, 3, 'each response has its own nonce');
  });
});

describe('REST EDS by the proxy locality', { timeout: 30_000 }, () => {
  let running: RunningRegistry | undefined;
  afterEach(async () => running?.close());

  async function restPriorities(node: Record<string, unknown>): Promise<Record<string, number>> {
    assert.ok(running);
    const response = await fetch(`${running.url}/v3/discovery:endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ node, resource_names: [SERVICE] }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { resources: { endpoints: any[] }[] };
    return Object.fromEntries(
      body.resources[0]!.endpoints.map((locality) => [locality.locality.zone, locality.priority ?? 0]),
    );
  }

  test("a REST request's node locality orders the endpoints as on a stream", async () => {
    running = await startRegistry({ xds: true, env: { XDS_LOCALITY_PRIORITY: 'true' } });
    for (const host of HOSTS) {
      await registerOrThrow(running.url, SERVICE, hostAt(host.ip, 8080, { region: host.region, az: host.az }));
    }
    assert.deepEqual(await restPriorities({ id: 'envoy', locality: { region: 'us-east-1', zone: 'us-east-1b' } }), {
      'eu-west-1a': 2,
      'us-east-1a': 1,
      'us-east-1b': 0,
    });
    assert.deepEqual(await restPriorities({ id: 'envoy' }), { 'eu-west-1a': 0, 'us-east-1a': 0, 'us-east-1b': 0 });
  });
});
