import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, XdsDeltaStream } from '../../src/xds/delta-stream.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import { waitFor } from '../helpers/registry.js';
import { assertEnded, eachSentExactly, endpointsOf, RecordingTransport, settle } from '../helpers/xds-wire.js';
import { StreamFixture, type StreamFixtureOptions } from '../helpers/xds-wire.js';

const EDS = TYPE_URL.clusterLoadAssignment;
const CDS = TYPE_URL.cluster;
const LDS = TYPE_URL.listener;

/** A delta request of `typeUrl`; ACKs `answered` when given (its nonce), and subscribes `subscribe`. */
function delta(
  typeUrl: string,
  subscribe: string[] = [],
  answered?: DeltaDiscoveryResponse,
  extra: Partial<DeltaDiscoveryRequest> = {},
): DeltaDiscoveryRequest {
  return {
    type_url: typeUrl,
    resource_names_subscribe: subscribe,
    resource_names_unsubscribe: [],
    initial_resource_versions: {},
    response_nonce: answered?.nonce ?? '',
    ...extra,
  };
}

const namesOf = (response: DeltaDiscoveryResponse) => response.resources.map((resource) => resource.name);

describe('xDS incremental (delta) stream protocol', () => {
  let fixture: StreamFixture;

  function setUp(options: StreamFixtureOptions = {}) {
    fixture = new StreamFixture(options);
  }

  function open(kind: 'delta-ads' | 'delta-eds' = 'delta-ads'): {
    stream: XdsDeltaStream;
    transport: RecordingTransport<DeltaDiscoveryResponse>;
  } {
    const transport = new RecordingTransport<DeltaDiscoveryResponse>();
    return { stream: fixture.server.openDeltaStream(kind, transport), transport };
  }

  const typeStatus = () => fixture.server.clients()[0]?.resources[0];

  beforeEach(() => setUp());
  afterEach(() => fixture.close());

  test('the first request of a type is answered with every subscribed resource, each with its version, and a nonce', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users', 'orders'], undefined, { node: { id: 'envoy-1', cluster: 'edge' } }));
    const response = transport.last();
    assert.equal(response.type_url, EDS);
    assert.notEqual(response.system_version_info, '');
    assert.notEqual(response.nonce, '');
    assert.deepEqual(response.removed_resources, []);
    assert.deepEqual(endpointsOf(response), { orders: ['10.0.1.1:8080'], users: ['10.0.0.1:8080'] });
    assert.ok(response.resources.every((resource) => resource.version !== ''));
    assert.equal(fixture.server.clients()[0]?.node?.id, 'envoy-1');
  });

  test('an ACK is never answered, and is recorded as the version the client holds', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users']));
    await stream.receive(delta(EDS, [], transport.last()));
    await stream.receive(delta(EDS, [], transport.last()));
    await settle();
    assert.equal(transport.sent.length, 1);
    assert.equal(typeStatus()?.version_acked, transport.last().system_version_info);
    assert.equal(typeStatus()?.up_to_date, true);
  });

  test('a heartbeat that changes nothing sends nothing; a change sends only the resource that changed', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users', 'orders']));
    await stream.receive(delta(EDS, [], transport.last()));
    await fixture.heartbeat('users', '10.0.0.1');
    await settle();
    assert.equal(transport.sent.length, 1, 'an unchanged heartbeat pushed nothing');
    const before = transport.last().system_version_info;
    await fixture.hostService.setWeight('users', '10.0.0.1', 42);
    await waitFor('a push', () => transport.sent.length === 2, 2000, 5);
    assert.deepEqual(namesOf(transport.last()), ['users']);
    assert.deepEqual(transport.last().removed_resources, []);
    assert.notEqual(transport.last().system_version_info, before);
  });

  test('registration and delete reach only the streams watching them', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const watcher = open();
    const other = open();
    await watcher.stream.receive(delta(EDS, ['users']));
    await other.stream.receive(delta(EDS, ['orders']));
    await fixture.heartbeat('users', '10.0.0.2');
    await waitFor('a push of the new host', () => watcher.transport.sent.length === 2, 2000, 5);
    assert.deepEqual(endpointsOf(watcher.transport.last()), { users: ['10.0.0.1:8080', '10.0.0.2:8080'] });
    await fixture.hostService.deregister('users', '10.0.0.1');
    await fixture.hostService.deregister('users', '10.0.0.2');
    // A subscribed service without hosts is an empty assignment, not a removed resource.
    const emptied = () => endpointsOf(watcher.transport.last()).users?.length === 0;
    await waitFor('a push of the deletes', emptied, 2000, 5);
    assert.deepEqual(watcher.transport.last().removed_resources, []);
    await settle();
    assert.equal(other.transport.sent.length, 1, 'a stream watching another service was not woken');
  });

  test('a NACK is logged and counted, the client keeps the version it ACKed, and nothing is resent', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users']));
    const good = transport.last();
    await stream.receive(delta(EDS, [], good));
    await fixture.heartbeat('users', '10.0.0.2');
    await waitFor('a push', () => transport.sent.length === 2, 2000, 5);
    const rejected = transport.last();
    await stream.receive(delta(EDS, [], rejected, { error_detail: { code: 3, message: 'bad endpoint' } }));
    await settle();
    assert.equal(transport.sent.length, 2, 'a NACK is not answered');
    assert.equal(fixture.stats.counts.get('xds.nack'), 1);
    const status = typeStatus();
    assert.equal(status?.version_acked, good.system_version_info);
    assert.equal(status?.version_sent, rejected.system_version_info);
    assert.equal(status?.up_to_date, false);
    assert.equal(status?.nack_count, 1);
    assert.equal(status?.last_nack?.error, 'bad endpoint');
    assert.equal(status?.last_nack?.version_kept, good.system_version_info);
    await fixture.heartbeat('users', '10.0.0.3');
    await waitFor('a push after the NACK', () => transport.sent.length === 3, 2000, 5);
  });

  test('an answer to an unknown nonce is not recorded, but the subscription change it carries applies', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users']));
    await stream.receive(delta(EDS, ['orders'], undefined, { response_nonce: 'not-sent' }));
    assert.equal(transport.sent.length, 2);
    assert.deepEqual(namesOf(transport.last()), ['orders'], 'a delta is never dropped');
    assert.equal(typeStatus()?.version_acked, null);
    assert.deepEqual(typeStatus()?.resource_names, ['orders', 'users']);
  });

  test('subscribe and unsubscribe are deltas: an added name is sent alone; a dropped and re-added name is sent again', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users']));
    await stream.receive(delta(EDS, ['orders'], transport.last()));
    assert.equal(transport.sent.length, 2);
    assert.deepEqual(endpointsOf(transport.last()), { orders: ['10.0.1.1:8080'] });
    await stream.receive(delta(EDS, [], transport.last(), { resource_names_unsubscribe: ['orders'] }));
    assert.equal(transport.sent.length, 2, 'dropping a name needs no response');
    assert.deepEqual(fixture.cache.watchedServices(), ['users']);
    await stream.receive(delta(EDS, ['orders'], transport.last()));
    assert.equal(transport.sent.length, 3);
    assert.deepEqual(endpointsOf(transport.last()), { orders: ['10.0.1.1:8080'] });
    assert.deepEqual(fixture.cache.watchedServices(), ['orders', 'users']);
  });

  test('a reconnecting client that states the versions it holds is sent only what differs', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const first = open();
    await first.stream.receive(delta(EDS, ['users', 'orders']));
    const held = Object.fromEntries(
      first.transport.last().resources.map((resource) => [resource.name, resource.version]),
    );
    first.stream.close();
    await fixture.heartbeat('orders', '10.0.1.2');
    const again = open();
    await again.stream.receive(delta(EDS, ['users', 'orders'], undefined, { initial_resource_versions: held }));
    assert.deepEqual(endpointsOf(again.transport.last()), { orders: ['10.0.1.1:8080', '10.0.1.2:8080'] });
    // Everything held is current: nothing to send, and nothing is.
    const current = Object.fromEntries(
      again.transport.last().resources.map((resource) => [resource.name, resource.version]),
    );
    const third = open();
    await third.stream.receive(
      delta(EDS, ['users', 'orders'], undefined, { initial_resource_versions: { ...held, ...current } }),
    );
    assert.equal(third.transport.sent.length, 0);
  });

  test('Listener and Cluster: each resource is sent once; a name that cannot exist is said removed, once', async () => {
    const { stream, transport } = open();
    const unknown = 'xdstp://example/envoy.config.listener.v3.Listener/users';
    await stream.receive(delta(LDS, ['users', unknown]));
    assert.deepEqual(namesOf(transport.last()), ['users']);
    assert.deepEqual(transport.last().removed_resources, [unknown]);
    await stream.receive(delta(LDS, ['orders'], transport.last()));
    assert.deepEqual(namesOf(transport.last()), ['orders'], 'only the new listener');
    assert.deepEqual(transport.last().removed_resources, [], 'the unknown name is not said again');
    await stream.receive(delta(CDS, ['users']));
    assert.deepEqual(namesOf(transport.last()), ['users']);
    assert.deepEqual(fixture.cache.watchedServices(), [], 'Listener and Cluster watch no endpoints');
  });

  test('unknown EDS names are never watched and are said removed', async () => {
    const { stream, transport } = open();
    const unknown = 'xdstp://example/envoy.config.endpoint.v3.ClusterLoadAssignment/users';
    await stream.receive(delta(EDS, [unknown]));
    assert.deepEqual(transport.last().resources, []);
    assert.deepEqual(transport.last().removed_resources, [unknown]);
    assert.deepEqual(fixture.cache.watchedServices(), []);
  });

  test('a wildcard Cluster subscription lists every service, follows new ones, and removes an emptied one', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const { stream, transport } = open();
    await stream.receive(delta(CDS, []));
    assert.deepEqual(namesOf(transport.last()), ['users']);
    await stream.receive(delta(CDS, [], transport.last()));
    await fixture.heartbeat('orders', '10.0.1.1');
    await waitFor('the new service to be pushed', () => transport.sent.length === 2, 2000, 5);
    assert.deepEqual(namesOf(transport.last()), ['orders'], 'only the new cluster');
    assert.equal(typeStatus()?.wildcard, true);
    await fixture.hostService.deregister('orders', '10.0.1.1');
    await waitFor('the emptied service to be removed', () => transport.sent.length === 3, 2000, 5);
    assert.deepEqual(transport.last().resources, []);
    assert.deepEqual(transport.last().removed_resources, ['orders']);
  });

  test('unsubscribing `*` leaves the wildcard: only the names subscribed explicitly stay', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const { stream, transport } = open();
    await stream.receive(delta(CDS, ['*', 'users']));
    assert.deepEqual(namesOf(transport.last()), ['orders', 'users']);
    await stream.receive(delta(CDS, [], transport.last(), { resource_names_unsubscribe: ['*'] }));
    assert.equal(typeStatus()?.wildcard, false);
    assert.deepEqual(transport.last().removed_resources, ['orders']);
    assert.deepEqual(typeStatus()?.resource_names, ['users']);
  });

  test('a client that disconnects leaves no watch behind', async () => {
    const { stream } = open();
    await stream.receive(delta(EDS, ['users', 'orders']));
    assert.deepEqual(fixture.cache.watchedServices(), ['orders', 'users']);
    stream.close();
    assert.deepEqual(fixture.cache.watchedServices(), []);
    assert.deepEqual(fixture.server.clients(), []);
  });

  test('the EDS-only service reads an empty type as EDS and refuses other resource types', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const eds = open('delta-eds');
    await eds.stream.receive(delta('', ['users']));
    assert.equal(eds.transport.last().type_url, EDS);
    const refused = open('delta-eds');
    await refused.stream.receive(delta(CDS, []));
    assert.equal(refused.transport.ended?.error?.code, 3);
  });

  test('an unsupported type is ignored, not refused, on the aggregated stream', async () => {
    const { stream, transport } = open();
    await stream.receive(delta('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret', ['x']));
    assert.equal(transport.sent.length, 0);
    assert.equal(transport.ended, undefined);
  });

  // A host's expiry and another replica's write reach the streams through the same cache watcher
  // as a local write (above); stream-server.test.ts pins those wake-ups.

  test('limits: names per request (INVALID_ARGUMENT) and names held per type (RESOURCE_EXHAUSTED)', async () => {
    const names = (prefix: string, count: number) => Array.from({ length: count }, (_, index) => `${prefix}-${index}`);
    const oversized = open();
    await oversized.stream.receive(
      delta(LDS, names('a', 6_000), undefined, { resource_names_unsubscribe: names('b', 4_001) }),
    );
    assert.equal(oversized.transport.ended?.error?.code, 3);
    assert.match(oversized.transport.ended?.error?.message ?? '', /too many resource names in one request/);

    const filling = open();
    await filling.stream.receive(delta(LDS, names('a', 10_000)));
    assert.equal(filling.transport.last().resources.length, 10_000, 'up to the bound is served');
    await filling.stream.receive(delta(LDS, ['one-more'], filling.transport.last()));
    assert.equal(filling.transport.ended?.error?.code, 8);
    assert.match(filling.transport.ended?.error?.message ?? '', /too many resources subscribed/);
  });

  test('watched names are bounded across streams, and every name a stream drops or leaves with is released', async () => {
    fixture.close();
    setUp({ maxWatchedNames: 100 });
    const names = (prefix: string, count: number) => Array.from({ length: count }, (_, index) => `${prefix}-${index}`);
    const first = open();
    await first.stream.receive(delta(EDS, names('a', 60)));
    assert.equal(fixture.cache.watchedServices().length, 60);

    const second = open();
    await second.stream.receive(delta(EDS, names('b', 60)));
    assertEnded(second.transport, 8, /100 services are watched/);
    assert.equal(fixture.cache.watchedServices().length, 60, 'what the refused stream had watched is released');

    const third = open();
    await third.stream.receive(delta(EDS, names('a', 60)));
    assert.equal(third.transport.ended, undefined, 'names shared with another stream cost nothing more');
    third.stream.close();

    await first.stream.receive(
      delta(EDS, names('c', 90), first.transport.last(), { resource_names_unsubscribe: names('a', 60) }),
    );
    assert.deepEqual(fixture.cache.watchedServices(), names('c', 90).sort());
    first.stream.close();
    assert.deepEqual(fixture.cache.watchedServices(), []);
  });

  test('a change reaches each of 2,500 watching streams exactly once, with the same system version', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const streams = Array.from({ length: 2_500 }, () => open('delta-eds'));
    for (const { stream } of streams) await stream.receive(delta(EDS, ['users', 'orders']));
    await fixture.heartbeat('users', '10.0.0.2');
    await eachSentExactly(
      streams.map(({ transport }) => transport),
      2,
    );
    assert.equal(new Set(streams.map(({ transport }) => transport.last().system_version_info)).size, 1);
    assert.deepEqual(endpointsOf(streams.at(-1)!.transport.last()), { users: ['10.0.0.1:8080', '10.0.0.2:8080'] });
  });

  test('closeAll ends every stream cleanly', async () => {
    const { stream, transport } = open();
    await stream.receive(delta(EDS, ['users']));
    fixture.server.closeAll();
    assert.deepEqual(transport.ended, { error: undefined });
    assert.deepEqual(fixture.cache.watchedServices(), []);
  });
});
