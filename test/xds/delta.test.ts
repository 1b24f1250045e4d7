import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TYPE_URL, xdsProtos } from '../../src/xds/protos.js';
import { RawDeltaStream, type DeltaWireResponse } from '../helpers/delta-client.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { endpointsOf } from '../helpers/xds-wire.js';
import { deregister, hostAt, registerOrThrow, startRegistry, type RunningRegistry } from '../helpers/registry.js';

describe('incremental xDS (DeltaAggregatedResources, DeltaEndpoints) over real gRPC', () => {
  let running: RunningRegistry;
  let client: grpc.Client;
  before(async () => {
    running = await startRegistry({ xds: true });
    client = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure());
  });
  after(async () => {
    client.close();
    await running.close();
  });

  test('a client watching 1,000 clusters gets all of them once, then only the one that changed', async () => {
    const names = Array.from({ length: 1000 }, (_, index) => `svc-${index}`);
    await registerOrThrow(running.url, 'svc-7', hostAt('10.7.0.1', 8080));
    const stream = new RawDeltaStream(client);
    stream.send({ node: { id: 'delta-1' }, type_url: TYPE_URL.clusterLoadAssignment, resource_names_subscribe: names });
    const first = await stream.next();
    assert.equal(first.resources.length, 1000);
    assert.deepEqual(first.removed_resources, []);
    assert.deepEqual(endpointsOf(first)['svc-7'], ['10.7.0.1:8080']);
    assert.ok(
      first.resources.every((resource) => resource.version !== ''),
      'every resource has its own version',
    );
    stream.ack(first);
    assert.ok(await stream.silentFor(300), 'an ACK is not answered');

    await registerOrThrow(running.url, 'svc-42', hostAt('10.42.0.1', 8080));
    const change = await stream.next();
    assert.deepEqual(
      change.resources.map((resource) => resource.name),
      ['svc-42'],
    );
    assert.deepEqual(endpointsOf(change), { 'svc-42': ['10.42.0.1:8080'] });
    assert.notEqual(change.nonce, first.nonce);
    stream.ack(change);
    assert.ok(await stream.silentFor(300), 'nothing else changed');
    stream.close();
  });

  test('subscribe and unsubscribe are deltas; a reconnecting client that says what it holds gets only what differs', async () => {
    await registerOrThrow(running.url, 'alpha', hostAt('10.1.0.1', 80));
    await registerOrThrow(running.url, 'beta', hostAt('10.2.0.1', 80));
    const stream = new RawDeltaStream(client, 'eds');
    stream.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names_subscribe: ['alpha'] });
    const first = await stream.next();
    assert.deepEqual(Object.keys(endpointsOf(first)), ['alpha']);
    stream.send({
      type_url: TYPE_URL.clusterLoadAssignment,
      response_nonce: first.nonce,
      resource_names_subscribe: ['beta'],
    });
    const added = await stream.next();
    assert.deepEqual(Object.keys(endpointsOf(added)), ['beta'], 'only the new subscription is sent');
    stream.send({
      type_url: TYPE_URL.clusterLoadAssignment,
      response_nonce: added.nonce,
      resource_names_unsubscribe: ['alpha'],
    });
    assert.ok(await stream.silentFor(300), 'unsubscribing needs no answer');
    await registerOrThrow(running.url, 'alpha', hostAt('10.1.0.2', 80));
    assert.ok(await stream.silentFor(300), 'a change of an unsubscribed cluster is not pushed');
    const betaVersion = added.resources[0]!.version;
    const alphaVersion = first.resources[0]!.version;
    stream.close();

    // Reconnect holding alpha's old version and beta's current one: only alpha comes.
    const again = new RawDeltaStream(client, 'eds');
    again.send({
      type_url: TYPE_URL.clusterLoadAssignment,
      resource_names_subscribe: ['alpha', 'beta'],
      initial_resource_versions: { alpha: alphaVersion, beta: betaVersion },
    });
    const resumed = await again.next();
    assert.deepEqual(endpointsOf(resumed), { alpha: ['10.1.0.1:80', '10.1.0.2:80'] });
    again.close();
  });

  test('the versions are those of the state-of-the-world streams, and a NACK is counted, not answered', async () => {
    await registerOrThrow(running.url, 'gamma', hostAt('10.3.0.1', 80));
    const sotw = new RawXdsStream(client);
    sotw.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: ['gamma'], node: { id: 'sotw' } });
    await sotw.next();
    sotw.close();
    const stream = new RawDeltaStream(client);
    stream.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names_subscribe: ['gamma'] });
    const response = await stream.next();
    const nacksBefore = running.stats.counts.get('xds.nack') ?? 0;
    stream.send({
      type_url: TYPE_URL.clusterLoadAssignment,
      response_nonce: response.nonce,
      error_detail: { code: 3, message: 'rejected for the test' },
    });
    assert.ok(await stream.silentFor(300));
    assert.equal(running.stats.counts.get('xds.nack'), nacksBefore + 1);
    stream.close();
  });

  test('wildcard clusters: a new service is added, a service gone is in removed_resources', async () => {
    const stream = new RawDeltaStream(client);
    // An empty first subscription of a wildcard type is the wildcard (the legacy rule; `*` says it outright).
    stream.send({ type_url: TYPE_URL.cluster });
    const first = await stream.next();
    const before = first.resources.map((resource) => resource.name);
    assert.ok(before.includes('svc-7'), before.join(','));
    stream.ack(first);
    await registerOrThrow(running.url, 'delta-new', hostAt('10.9.0.1', 80));
    let added: DeltaWireResponse | undefined;
    for (let attempt = 0; attempt < 10 && added === undefined; attempt++) {
      const response = await stream.next(5000);
      stream.ack(response);
      if (response.resources.some((resource) => resource.name === 'delta-new')) added = response;
    }
    assert.deepEqual(
      added?.resources.map((resource) => resource.name),
      ['delta-new'],
    );
    await deregister(running.url, 'delta-new', '10.9.0.1');
    let removed: DeltaWireResponse | undefined;
    for (let attempt = 0; attempt < 10 && removed === undefined; attempt++) {
      const response = await stream.next(5000);
      stream.ack(response);
      if (response.removed_resources.includes('delta-new')) removed = response;
    }
    assert.deepEqual(removed?.removed_resources, ['delta-new']);
    assert.deepEqual(removed?.resources, []);
    stream.close();
  });

  test('GET /v1/xds/clients lists delta streams too', async () => {
    const stream = new RawDeltaStream(client);
    stream.send({
      node: { id: 'delta-view' },
      type_url: TYPE_URL.clusterLoadAssignment,
      resource_names_subscribe: ['alpha'],
    });
    const response = await stream.next();
    stream.ack(response);
    let entry:
      { kind: string; resources: Array<{ version_acked: string | null; version_sent: string | null }> } | undefined;
    for (let attempt = 0; attempt < 50; attempt++) {
      const view = (await running.registry.app.inject({ method: 'GET', url: '/v1/xds/clients' })).json() as {
        clients: Array<{ node: { id: string } | null; kind: string; resources: [] }>;
      };
      entry = view.clients.find((candidate) => candidate.node?.id === 'delta-view');
      if (entry?.resources[0]?.version_acked) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(entry?.kind, 'delta-ads');
    assert.equal(entry?.resources[0]?.version_acked, response.system_version_info);
    stream.close();
  });
});

describe('incremental xDS with XDS_LOCALITY_PRIORITY', () => {
  test('a delta client that states its locality gets its zone at priority 0, as a state-of-the-world one does', async () => {
    const running = await startRegistry({ xds: true, env: { XDS_LOCALITY_PRIORITY: 'true' } });
    const client = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure());
    try {
      await registerOrThrow(running.url, 'zoned', hostAt('10.5.0.1', 80, { region: 'region-1', az: 'az-a' }));
      await registerOrThrow(running.url, 'zoned', hostAt('10.5.0.2', 80, { region: 'region-1', az: 'az-b' }));
      const stream = new RawDeltaStream(client);
      stream.send({
        node: { id: 'zoned-proxy', locality: { region: 'region-1', zone: 'az-a' } },
        type_url: TYPE_URL.clusterLoadAssignment,
        resource_names_subscribe: ['zoned'],
      });
      const response = await stream.next();
      const type = xdsProtos().typeOf(TYPE_URL.clusterLoadAssignment)!;
      const assignment = type.toObject(type.decode(response.resources[0]!.resource.value), { defaults: true }) as {
        endpoints: { locality: { zone: string }; priority: number }[];
      };
      assert.deepEqual(assignment.endpoints.map((locality) => [locality.locality.zone, locality.priority]).sort(), [
        ['az-a', 0],
        ['az-b', 1],
      ]);
      stream.close();
    } finally {
      client.close();
      await running.close();
    }
  });
});
