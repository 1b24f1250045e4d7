/* eslint-disable @typescript-eslint/no-explicit-any -- decoded protobuf messages are untyped; the assertions pin their shape */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { messageFromJson } from '../../src/xds/proto-json.js';
import { TYPE_URL, xdsProtos } from '../../src/xds/protos.js';
import { RawXdsStream, type WireResponse } from '../helpers/ads-client.js';
import { hostAt, registerOrThrow, startRegistry, type RunningRegistry } from '../helpers/registry.js';

/** Decodes a REST DiscoveryResponse with the Envoy protos, strictly (unknown fields fail). */
function decodeJsonResponse(json: unknown) {
  const protos = xdsProtos();
  const plain = messageFromJson(protos.discoveryResponse, json);
  const message = protos.discoveryResponse.toObject(protos.discoveryResponse.fromObject(plain), {
    defaults: true,
  }) as WireResponse;
  return message;
}

describe('REST xDS and the clients admin view', { timeout: 30_000 }, () => {
  let running: RunningRegistry;

  before(async () => {
    running = await startRegistry({ xds: true });
    await registerOrThrow(running.url, 'users', hostAt('10.0.0.1', 9000, { load_balancing_weight: 7 }));
    await registerOrThrow(running.url, 'users', hostAt('10.0.0.2', 9000, { canary: true, az: 'az-2' }));
  });
  after(async () => running?.close());

  const post = (body: unknown) =>
    running.registry.app.inject({
      method: 'POST',
      url: '/v3/discovery:endpoints',
      payload: body as Record<string, unknown>,
    });

  test('POST /v3/discovery:endpoints answers a proto3-JSON DiscoveryResponse with the gRPC ClusterLoadAssignment', async () => {
    const response = await post({
      node: { id: 'envoy-rest', cluster: 'edge' },
      resourceNames: ['users'],
      typeUrl: TYPE_URL.clusterLoadAssignment,
    });
    assert.equal(response.statusCode, 200);
    const json = response.json() as Record<string, any>;
    assert.equal(json.typeUrl, TYPE_URL.clusterLoadAssignment);
    assert.equal(json.resources[0]['@type'], TYPE_URL.clusterLoadAssignment);
    assert.equal(json.resources[0].endpoints[0].loadBalancingWeight, 7, 'wrappers are bare numbers in proto3 JSON');
    assert.equal(json.resources[0].endpoints[1].lbEndpoints[0].metadata.filterMetadata['envoy.lb'].canary, true);

    const decoded = decodeJsonResponse(json);
    assert.equal(decoded.resources.length, 1);
    const fromGrpc = await running.registry.xds.cache.endpoints('users');
    assert.deepEqual(
      Buffer.from(decoded.resources[0]!.value),
      Buffer.from(fromGrpc.body),
      'the same bytes as the gRPC server sends',
    );
    assert.equal(decoded.version_info, json.versionInfo);
  });

  test('a request whose version_info is already current gets 304', async () => {
    const first = (await post({ resource_names: ['users'], type_url: TYPE_URL.clusterLoadAssignment })).json() as {
      versionInfo: string;
    };
    const again = await post({
      version_info: first.versionInfo,
      resource_names: ['users'],
      type_url: TYPE_URL.clusterLoadAssignment,
    });
    assert.equal(again.statusCode, 304);
    await registerOrThrow(running.url, 'users', hostAt('10.0.0.3', 9000));
    const changed = await post({
      version_info: first.versionInfo,
      resource_names: ['users'],
      type_url: TYPE_URL.clusterLoadAssignment,
    });
    assert.equal(changed.statusCode, 200);
    assert.notEqual((changed.json() as { versionInfo: string }).versionInfo, first.versionInfo);
  });

  test('the REST and gRPC servers agree on versions', async () => {
    const rest = (await post({ resource_names: ['users'] })).json() as { versionInfo: string };
    const client = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure());
    const stream = new RawXdsStream(client);
    stream.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: ['users'], node: { id: 'raw' } });
    const response = await stream.next();
    assert.equal(response.version_info, rest.versionInfo);
    stream.close();
    client.close();
  });

  test('a malformed DiscoveryRequest or another type is a 400 naming the problem', async () => {
    const unknownField = await post({ resourceNames: ['users'], colour: 'red' });
    assert.equal(unknownField.statusCode, 400);
    assert.match((unknownField.json() as { error: string }).error, /unknown field 'colour'/);
    const otherType = await post({ resourceNames: ['users'], typeUrl: TYPE_URL.cluster });
    assert.equal(otherType.statusCode, 400);
  });

  test('GET /v1/xds/clients lists node, subscriptions, and versions sent and ACKed per type', async () => {
    const client = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure());
    const stream = new RawXdsStream(client);
    stream.send({
      type_url: TYPE_URL.clusterLoadAssignment,
      resource_names: ['users'],
      node: { id: 'envoy-7', cluster: 'edge', locality: { region: 'us-east-1', zone: 'us-east-1a' } },
    });
    const response = await stream.next();
    stream.ack(response, ['users']);
    stream.send({ type_url: TYPE_URL.cluster, resource_names: ['users'] });
    const clusters = await stream.next();
    stream.send({
      type_url: TYPE_URL.cluster,
      resource_names: ['users'],
      version_info: '',
      response_nonce: clusters.nonce,
      error_detail: { code: 3, message: 'cluster rejected' },
    });
    let entry: any;
    for (let attempt = 0; attempt < 50; attempt++) {
      const view = (await running.registry.app.inject({ method: 'GET', url: '/v1/xds/clients' })).json() as {
        clients: any[];
      };
      entry = view.clients.find((candidate) => candidate.node?.id === 'envoy-7');
      if (entry?.resources.find((r: any) => r.type_url === TYPE_URL.cluster)?.nack_count === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(entry);
    assert.equal(entry.node.cluster, 'edge');
    assert.deepEqual(entry.node.locality, { region: 'us-east-1', zone: 'us-east-1a', sub_zone: '' });
    const eds = entry.resources.find((r: any) => r.type_url === TYPE_URL.clusterLoadAssignment);
    assert.deepEqual(eds.resource_names, ['users']);
    assert.equal(eds.version_sent, response.version_info);
    assert.equal(eds.version_acked, response.version_info);
    const cds = entry.resources.find((r: any) => r.type_url === TYPE_URL.cluster);
    assert.equal(cds.version_acked, null);
    assert.equal(cds.last_nack.error, 'cluster rejected');
    assert.equal(running.stats.counts.get('xds.nack'), 1);
    stream.close();
    client.close();
  });
});

describe('xDS gRPC server shutdown', { timeout: 30_000 }, () => {
  test('closing the registry ends open ADS streams with status OK', async () => {
    const running = await startRegistry({ xds: true });
    const client = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure());
    const stream = new RawXdsStream(client);
    stream.send({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: ['users'] });
    await stream.next();
    await running.close();
    const status = await stream.status;
    assert.equal(status.code, grpc.status.OK);
    client.close();
  });
});
