import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { HostService } from '../../src/hosts/host-service.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import type { XdsSnapshotCache } from '../../src/xds/snapshot-cache.js';
import type { DiscoveryRequest, DiscoveryResponse, XdsStream, XdsStreamServer } from '../../src/xds/stream-server.js';
import { waitFor, type RecordingStats } from '../helpers/registry.js';
import {
  assertEnded,
  eachSentExactly,
  endpointsOf,
  RecordingTransport,
  settle,
  StreamFixture,
  type StreamFixtureOptions,
} from '../helpers/xds-wire.js';

const EDS = TYPE_URL.clusterLoadAssignment;
const CDS = TYPE_URL.cluster;
const LDS = TYPE_URL.listener;

function request(
  typeUrl: string,
  names: string[],
  previous?: DiscoveryResponse,
  extra: Partial<DiscoveryRequest> = {},
): DiscoveryRequest {
  return {
    type_url: typeUrl,
    resource_names: names,
    version_info: previous?.version_info ?? '',
    response_nonce: previous?.nonce ?? '',
    ...extra,
  };
}

describe('xDS state-of-the-world stream protocol', () => {
  let fixture: StreamFixture;
  let hostService: HostService;
  let cache: XdsSnapshotCache;
  let server: XdsStreamServer;
  let stats: RecordingStats;

  function setUp(options: StreamFixtureOptions = {}) {
    fixture = new StreamFixture(options);
    ({ hostService, cache, server, stats } = fixture);
  }

  function heartbeat(service: string, ip: string, tags: Record<string, unknown> = {}, port = 8080) {
    return fixture.heartbeat(service, ip, tags, port);
  }

  function open(kind: 'ads' | 'eds' = 'ads'): {
    stream: XdsStream;
    transport: RecordingTransport<DiscoveryResponse>;
  } {
    const transport = new RecordingTransport<DiscoveryResponse>();
    return { stream: server.openStream(kind, transport), transport };
  }

  beforeEach(() => setUp());
  afterEach(() => fixture.close());

  test('the first request of a type is answered with every subscribed resource, a version and a nonce', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users'], undefined, { node: { id: 'envoy-1', cluster: 'edge' } }));
    const response = transport.last();
    assert.equal(response.type_url, EDS);
    assert.notEqual(response.version_info, '');
    assert.notEqual(response.nonce, '');
    assert.deepEqual(endpointsOf(response), { users: ['10.0.0.1:8080'] });
  });

  test('an ACK is never answered while content is unchanged', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    await stream.receive(request(EDS, ['users'], transport.last()));
    await stream.receive(request(EDS, ['users'], transport.last()));
    await settle();
    assert.equal(transport.sent.length, 1);
    const status = server.clients()[0]?.resources[0];
    assert.equal(status?.version_acked, transport.last().version_info);
    assert.equal(status?.up_to_date, true);
  });

  test('a heartbeat that changes nothing sends nothing; a weight change pushes a new version', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    await stream.receive(request(EDS, ['users'], transport.last()));
    await heartbeat('users', '10.0.0.1');
    await settle();
    assert.equal(transport.sent.length, 1, 'an unchanged heartbeat pushed nothing');
    const before = transport.last().version_info;
    await hostService.setWeight('users', '10.0.0.1', 42);
    await waitFor('a push', () => transport.sent.length === 2, 2000, 5);
    assert.notEqual(transport.last().version_info, before);
  });

  test('registration, delete and a second service reach only the streams watching them', async () => {
    await heartbeat('users', '10.0.0.1');
    const watcher = open();
    const other = open();
    await watcher.stream.receive(request(EDS, ['users']));
    await other.stream.receive(request(EDS, ['orders']));
    await heartbeat('users', '10.0.0.2');
    await waitFor('a push of the new host', () => watcher.transport.sent.length === 2, 2000, 5);
    assert.deepEqual(endpointsOf(watcher.transport.last()), { users: ['10.0.0.1:8080', '10.0.0.2:8080'] });
    await hostService.deregister('users', '10.0.0.1');
    await waitFor('a push of the delete', () => watcher.transport.sent.length === 3, 2000, 5);
    assert.deepEqual(endpointsOf(watcher.transport.last()), { users: ['10.0.0.2:8080'] });
    await settle();
    assert.equal(other.transport.sent.length, 1, 'a stream watching another service was not woken');
  });

  test('a NACK is logged and counted, the client keeps its version, and nothing is resent', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    const good = transport.last();
    await stream.receive(request(EDS, ['users'], good));
    await heartbeat('users', '10.0.0.2');
    await waitFor('a push', () => transport.sent.length === 2, 2000, 5);
    const rejected = transport.last();
    await stream.receive(
      request(EDS, ['users'], rejected, {
        version_info: good.version_info,
        error_detail: { code: 3, message: 'bad endpoint' },
      }),
    );
    await settle();
    assert.equal(transport.sent.length, 2, 'a NACK is not answered with the same content');
    assert.equal(stats.counts.get('xds.nack'), 1);
    const status = server.clients()[0]?.resources[0];
    assert.equal(status?.version_acked, good.version_info);
    assert.equal(status?.version_sent, rejected.version_info);
    assert.equal(status?.up_to_date, false);
    assert.equal(status?.nack_count, 1);
    assert.equal(status?.last_nack?.error, 'bad endpoint');
    // New content after a NACK is sent again.
    await heartbeat('users', '10.0.0.3');
    await waitFor('a push after the NACK', () => transport.sent.length === 3, 2000, 5);
  });

  test('a request carrying a stale nonce is ignored', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    const first = transport.last();
    await heartbeat('users', '10.0.0.2');
    await waitFor('a push', () => transport.sent.length === 2, 2000, 5);
    // The ACK of the first response crossed the push: its subscription change must not apply.
    await stream.receive(request(EDS, ['users', 'orders'], first));
    await settle();
    assert.equal(transport.sent.length, 2);
    assert.deepEqual(server.clients()[0]?.resources[0]?.resource_names, ['users']);
    assert.equal(server.clients()[0]?.resources[0]?.version_acked, null);
  });

  test('subscription changes: an added name is sent alone; a dropped and re-added name is sent again', async () => {
    await heartbeat('users', '10.0.0.1');
    await heartbeat('orders', '10.0.1.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    await stream.receive(request(EDS, ['users', 'orders'], transport.last()));
    assert.equal(transport.sent.length, 2);
    assert.deepEqual(
      endpointsOf(transport.last()),
      { orders: ['10.0.1.1:8080'] },
      'EDS sends only what the client lacks',
    );
    await stream.receive(request(EDS, ['users'], transport.last()));
    assert.equal(transport.sent.length, 2, 'dropping a name needs no EDS response');
    await stream.receive(request(EDS, ['users', 'orders'], transport.last()));
    assert.equal(transport.sent.length, 3);
    assert.deepEqual(endpointsOf(transport.last()), { orders: ['10.0.1.1:8080'] });
    assert.deepEqual(cache.watchedServices(), ['orders', 'users']);
  });

  test('Listener and Cluster responses list every subscribed resource', async () => {
    const { stream, transport } = open();
    await stream.receive(request(LDS, ['users']));
    await stream.receive(request(LDS, ['users', 'orders'], transport.last()));
    assert.deepEqual(
      transport.last().resources.map((resource) => resource.name),
      ['orders', 'users'],
    );
    await stream.receive(request(CDS, ['users']));
    assert.deepEqual(
      transport.last().resources.map((resource) => resource.name),
      ['users'],
    );
  });

  test('unknown resource names are never sent', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    const unknown = 'xdstp://example/envoy.config.listener.v3.Listener/users';
    await stream.receive(request(LDS, [unknown, 'users']));
    assert.deepEqual(
      transport.last().resources.map((resource) => resource.name),
      ['users'],
    );
    await stream.receive(request(EDS, [unknown]));
    assert.deepEqual(transport.last().resources, [], 'answered, with nothing');
    assert.deepEqual(cache.watchedServices(), [], 'an unknown name is not watched');
  });

  test('a wildcard Cluster subscription lists every service and follows new ones', async () => {
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(CDS, []));
    assert.deepEqual(
      transport.last().resources.map((resource) => resource.name),
      ['users'],
    );
    await stream.receive(request(CDS, [], transport.last()));
    await heartbeat('orders', '10.0.1.1');
    await waitFor('the new service to be pushed', () => transport.sent.length === 2, 2000, 5);
    assert.deepEqual(
      transport.last().resources.map((resource) => resource.name),
      ['orders', 'users'],
    );
    assert.equal(server.clients()[0]?.resources[0]?.wildcard, true);
    await hostService.deregister('orders', '10.0.1.1');
    await waitFor('the emptied service to be dropped', () => transport.sent.length === 3, 2000, 5);
    assert.deepEqual(
      transport.last().resources.map((resource) => resource.name),
      ['users'],
    );
  });

  test('a client that disconnects leaves no watch behind', async () => {
    const { stream } = open();
    await stream.receive(request(EDS, ['users', 'orders']));
    assert.deepEqual(cache.watchedServices(), ['orders', 'users']);
    stream.close();
    assert.deepEqual(cache.watchedServices(), []);
    assert.deepEqual(server.clients(), []);
  });

  test('the EDS-only service refuses other resource types', async () => {
    const { stream, transport } = open('eds');
    await stream.receive(request(CDS, []));
    assert.equal(transport.ended?.error?.code, 3);
  });

  test('an expiry is pushed when the host expires, with no write and no poll', async () => {
    cache.close();
    setUp({ hostTtlSeconds: 0.3 });
    // The host's check-in is no earlier than this, so neither is its expiry plus HOST_TTL; timed
    // after the calls instead, a loaded machine made a push on time look early.
    const expiresAt = Date.now() + 300;
    await heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    await waitFor('the expiry push', () => transport.sent.length === 2, 3000, 5);
    assert.ok(Date.now() >= expiresAt - 5, 'not before the host expired');
    assert.deepEqual(endpointsOf(transport.last()), { users: [] });
  });

  test("another replica's write reaches subscribers through the poll", async () => {
    cache.close();
    setUp({ pollIntervalMs: 100 });
    // A second HostService over the same store stands for another replica writing to the shared table.
    const otherReplica = fixture.replica();
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    await fixture.heartbeat('users', '10.0.0.9', {}, 8080, otherReplica);
    await waitFor('the remote write to be pushed', () => transport.sent.length === 2, 3000, 10);
    assert.deepEqual(endpointsOf(transport.last()), { users: ['10.0.0.9:8080'] });
  });

  test('watched names are bounded across streams, and every name a stream drops or leaves with is released', async () => {
    server.closeAll();
    cache.close();
    setUp({ maxWatchedNames: 100 });
    const names = (prefix: string, count: number) => Array.from({ length: count }, (_, index) => `${prefix}-${index}`);
    const first = open();
    await first.stream.receive(request(EDS, names('a', 60)));
    assert.equal(cache.watchedServices().length, 60);

    const second = open();
    await second.stream.receive(request(EDS, names('b', 60)));
    assertEnded(second.transport, 8, /100 services are watched/);
    assert.equal(cache.watchedServices().length, 60, 'what the refused stream had watched is released');

    // Names shared with another stream cost nothing more.
    const third = open();
    await third.stream.receive(request(EDS, names('a', 60)));
    assert.equal(third.transport.ended, undefined);
    assert.equal(cache.watchedServices().length, 60);
    third.stream.close();

    // A new subscription replaces the old: the dropped names are released.
    await first.stream.receive(request(EDS, names('c', 90), first.transport.last()));
    assert.deepEqual(cache.watchedServices(), names('c', 90).sort());
    first.stream.close();
    assert.deepEqual(cache.watchedServices(), []);
  });

  test('a change reaches each of 2,500 watching streams exactly once, over several event-loop turns, with the same version', async () => {
    await heartbeat('users', '10.0.0.1');
    const streams = Array.from({ length: 2_500 }, () => open('eds'));
    for (const { stream } of streams) await stream.receive(request(EDS, ['users', 'orders']));
    await heartbeat('users', '10.0.0.2');
    await eachSentExactly(
      streams.map(({ transport }) => transport),
      2,
    );
    assert.equal(new Set(streams.map(({ transport }) => transport.last().version_info)).size, 1);
    assert.deepEqual(endpointsOf(streams.at(-1)!.transport.last()), { users: ['10.0.0.1:8080', '10.0.0.2:8080'] });
  });

  test('closeAll ends every stream cleanly', async () => {
    const { stream, transport } = open();
    await stream.receive(request(EDS, ['users']));
    server.closeAll();
    assert.deepEqual(transport.ended, { error: undefined });
    assert.deepEqual(cache.watchedServices(), []);
  });
});
