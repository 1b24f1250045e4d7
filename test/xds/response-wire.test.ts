import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TYPE_URL, xdsProtos } from '../../src/xds/protos.js';
import { toResource } from '../../src/xds/resources.js';
import { encodeDeltaDiscoveryResponse, encodeDiscoveryResponse } from '../../src/xds/response-wire.js';

const protos = xdsProtos();
const decode = (typeName: string, bytes: Uint8Array) => {
  const type = protos.root.lookupType(typeName);
  return type.toObject(type.decode(bytes), { defaults: true, bytes: Array }) as Record<string, unknown>;
};
const endpoints = (name: string, port: number) =>
  toResource(TYPE_URL.clusterLoadAssignment, name, {
    cluster_name: name,
    endpoints: [
      { lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } } } }] },
    ],
  });

describe('responses written by hand', () => {
  test('a DiscoveryResponse decodes to what protobufjs encodes from the same fields', () => {
    const resources = [endpoints('a', 80), endpoints('ü-b', 443)];
    const fields = { version_info: 'v1', type_url: TYPE_URL.clusterLoadAssignment, nonce: '7-1' };
    const ours = encodeDiscoveryResponse({ ...fields, resources });
    const theirs = protos.discoveryResponse
      .encode({ ...fields, resources: resources.map((r) => ({ type_url: r.typeUrl, value: r.body })) })
      .finish();
    assert.deepEqual(
      decode('envoy.service.discovery.v3.DiscoveryResponse', ours),
      decode('envoy.service.discovery.v3.DiscoveryResponse', theirs),
    );
    assert.deepEqual(Buffer.from(ours), Buffer.from(theirs));
  });

  test('an empty DiscoveryResponse (no resources, empty strings) still decodes', () => {
    const ours = encodeDiscoveryResponse({ version_info: '', type_url: TYPE_URL.cluster, nonce: '', resources: [] });
    const decoded = decode('envoy.service.discovery.v3.DiscoveryResponse', ours);
    assert.equal(decoded.type_url, TYPE_URL.cluster);
    assert.deepEqual(decoded.resources, []);
  });

  test('a DeltaDiscoveryResponse decodes to what protobufjs encodes from the same fields', () => {
    const resources = [endpoints('a', 80), endpoints('b', 8080)];
    const fields = {
      system_version_info: 'sv',
      type_url: TYPE_URL.clusterLoadAssignment,
      removed_resources: ['gone', 'gone-too'],
      nonce: 'd1-2',
    };
    const ours = encodeDeltaDiscoveryResponse({ ...fields, resources });
    const type = protos.root.lookupType('envoy.service.discovery.v3.DeltaDiscoveryResponse');
    const theirs = type
      .encode({
        ...fields,
        resources: resources.map((r) => ({
          name: r.name,
          version: r.version,
          resource: { type_url: r.typeUrl, value: r.body },
        })),
      })
      .finish();
    assert.deepEqual(
      decode('envoy.service.discovery.v3.DeltaDiscoveryResponse', ours),
      decode('envoy.service.discovery.v3.DeltaDiscoveryResponse', theirs),
    );
  });

  test('a resource sent to many streams is encoded once: the responses share its bytes', () => {
    const resource = endpoints('shared', 80);
    const one = encodeDiscoveryResponse({
      version_info: 'v',
      type_url: resource.typeUrl,
      nonce: '1',
      resources: [resource],
    });
    const two = encodeDiscoveryResponse({
      version_info: 'v',
      type_url: resource.typeUrl,
      nonce: '2',
      resources: [resource],
    });
    assert.notDeepEqual(one, two);
    assert.deepEqual(one.subarray(0, one.length - 1), two.subarray(0, two.length - 1));
  });
});
