/* eslint-disable @typescript-eslint/no-explicit-any -- decoded protobuf messages are untyped; the assertions pin their shape */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { HostSnapshot } from '../../src/hosts/host-lists.js';
import type { Host } from '../../src/hosts/model.js';
import { TYPE_URL, xdsProtos } from '../../src/xds/protos.js';
import { clusterLoadAssignment, isServiceName, staticResource, toResource } from '../../src/xds/resources.js';

function host(ip: string, tags: Record<string, unknown> = {}, port = 9000): Host {
  return {
    service: 'users',
    ip_address: ip,
    port,
    revision: 'r1',
    service_repo_name: '',
    last_check_in: '2026-11-28 06:40:12.345678',
    tags: { region: 'us-east-1', az: 'us-east-1a', instance_id: `i-${ip}`, ...tags },
  };
}

function snapshot(hosts: Host[]): HostSnapshot {
  return { hosts, version: 'v', nextExpiryAt: Infinity, protectedHosts: 0 };
}

/** Encodes, then decodes with the Envoy protos: what a client would see. */
function decoded(typeUrl: string, body: Uint8Array): Record<string, any> {
  const type = xdsProtos().typeOf(typeUrl);
  assert.ok(type);
  return type.toObject(type.decode(body), { enums: String, longs: String, oneofs: true });
}

describe('xDS resources from hosts', () => {
  test('one locality per (region, az), weighted with the sum of its hosts, sorted', () => {
    const cla = decoded(
      TYPE_URL.clusterLoadAssignment,
      toResource(
        TYPE_URL.clusterLoadAssignment,
        'users',
        clusterLoadAssignment(
          'users',
          snapshot([
            host('10.0.0.1', { az: 'us-east-1b', load_balancing_weight: 10 }),
            host('10.0.0.2', { az: 'us-east-1a' }),
            host('10.0.0.3', { az: 'us-east-1b', load_balancing_weight: 5 }),
          ]),
        ),
      ).body,
    );
    assert.equal(cla.cluster_name, 'users');
    assert.deepEqual(
      cla.endpoints.map((locality: any) => [
        locality.locality.region,
        locality.locality.zone,
        locality.load_balancing_weight.value,
      ]),
      [
        ['us-east-1', 'us-east-1a', 1],
        ['us-east-1', 'us-east-1b', 15],
      ],
    );
    const [, zoneB] = cla.endpoints;
    assert.deepEqual(
      zoneB.lb_endpoints.map((lb: any) => [
        lb.endpoint.address.socket_address.address,
        lb.endpoint.address.socket_address.port_value,
        lb.load_balancing_weight.value,
      ]),
      [
        ['10.0.0.1', 9000, 10],
        ['10.0.0.3', 9000, 5],
      ],
    );
  });

  test('a host without a valid weight gets weight 1', () => {
    for (const weight of [undefined, 0, 101, 'heavy', 2.5]) {
      const cla = clusterLoadAssignment(
        'users',
        snapshot([host('10.0.0.1', { load_balancing_weight: weight })]),
      ) as any;
      assert.equal(cla.endpoints[0].lb_endpoints[0].load_balancing_weight.value, 1, `weight ${String(weight)}`);
    }
  });

  test('every endpoint carries its revision and scalar tags as envoy.lb metadata; canary is a boolean', () => {
    const cla = decoded(
      TYPE_URL.clusterLoadAssignment,
      toResource(
        TYPE_URL.clusterLoadAssignment,
        'users',
        clusterLoadAssignment(
          'users',
          snapshot([
            host('10.0.0.1', { canary: true, version: 'v2', shard: 7, blue: false }),
            host('10.0.0.2', { canary: 'true' }),
            host('10.0.0.3', {
              nested: { a: 1 },
              list: [1],
              nothing: null,
              long: 'x'.repeat(257),
              revision: 'a tag, not the field',
            }),
          ]),
        ),
      ).body,
    );
    const [first, second, third] = cla.endpoints[0].lb_endpoints;
    const fields = (endpoint: { metadata: { filter_metadata: Record<string, { fields: object }> } }) =>
      (endpoint.metadata.filter_metadata['envoy.lb'] as { fields: object }).fields as Record<
        string,
        Record<string, unknown>
      >;
    const plain = (endpoint: Parameters<typeof fields>[0]) =>
      Object.fromEntries(Object.entries(fields(endpoint)).map(([key, value]) => [key, value[value.kind as string]]));
    assert.deepEqual(plain(first), {
      az: 'us-east-1a',
      blue: false,
      canary: true,
      instance_id: 'i-10.0.0.1',
      region: 'us-east-1',
      revision: 'r1',
      shard: 7,
      version: 'v2',
    });
    assert.equal(plain(second).canary, true, 'a canary tag of "true" still counts');
    assert.deepEqual(plain(third), {
      az: 'us-east-1a',
      canary: false,
      instance_id: 'i-10.0.0.3',
      region: 'us-east-1',
      revision: 'r1',
    });
  });

  test('a DRAINING host is sent with health_status DRAINING, an OUT_OF_SERVICE one not at all; UP is HEALTHY', () => {
    const cla = decoded(
      TYPE_URL.clusterLoadAssignment,
      toResource(
        TYPE_URL.clusterLoadAssignment,
        'users',
        clusterLoadAssignment(
          'users',
          snapshot([
            host('10.0.0.1'),
            { ...host('10.0.0.2'), reported_status: 'DRAINING' },
            { ...host('10.0.0.3'), reported_status: 'OUT_OF_SERVICE' },
            // The operator's override wins over the host's own word, both ways.
            { ...host('10.0.0.4'), reported_status: 'OUT_OF_SERVICE', status_override: 'DRAINING' },
            { ...host('10.0.0.5'), reported_status: 'DRAINING', status_override: 'UP' },
            { ...host('10.0.0.6'), status_override: 'OUT_OF_SERVICE' },
          ]),
        ),
      ).body,
    );
    assert.deepEqual(
      cla.endpoints.flatMap((locality: any) =>
        locality.lb_endpoints.map((endpoint: any) => [
          endpoint.endpoint.address.socket_address.address,
          endpoint.health_status,
        ]),
      ),
      [
        ['10.0.0.1', 'HEALTHY'],
        ['10.0.0.2', 'DRAINING'],
        ['10.0.0.4', 'DRAINING'],
        ['10.0.0.5', 'HEALTHY'],
      ],
    );
  });

  test('no hosts: an assignment with no endpoints', () => {
    const cla = decoded(
      TYPE_URL.clusterLoadAssignment,
      toResource(TYPE_URL.clusterLoadAssignment, 'users', clusterLoadAssignment('users', snapshot([]))).body,
    );
    assert.equal(cla.cluster_name, 'users');
    assert.deepEqual(cla.endpoints ?? [], []);
  });

  test('versions come from content: equal content, equal version; a weight change, a new one', () => {
    const build = (weight: number) =>
      toResource(
        TYPE_URL.clusterLoadAssignment,
        'users',
        clusterLoadAssignment('users', snapshot([host('10.0.0.1', { load_balancing_weight: weight })])),
      );
    assert.equal(build(3).version, build(3).version);
    assert.notEqual(build(3).version, build(4).version);
  });

  test('the Cluster is EDS over ADS, round robin', () => {
    const cluster = decoded(TYPE_URL.cluster, staticResource(TYPE_URL.cluster, 'users').body);
    assert.equal(cluster.name, 'users');
    assert.equal(cluster.type, 'EDS');
    assert.deepEqual(cluster.eds_cluster_config.eds_config.ads, {});
    assert.equal(cluster.eds_cluster_config.service_name, 'users');
    assert.equal(cluster.lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN');
  });

  test('the Listener is an api_listener whose HttpConnectionManager routes everything to the cluster', () => {
    const listener = decoded(TYPE_URL.listener, staticResource(TYPE_URL.listener, 'users').body);
    assert.equal(listener.name, 'users');
    assert.equal(listener.api_listener.api_listener.type_url, TYPE_URL.httpConnectionManager);
    const hcm = decoded(TYPE_URL.httpConnectionManager, listener.api_listener.api_listener.value);
    assert.equal(hcm.route_config.virtual_hosts[0].routes[0].route.cluster, 'users');
    assert.deepEqual(hcm.route_config.virtual_hosts[0].domains, ['*']);
    assert.equal(hcm.http_filters.at(-1).typed_config.type_url, TYPE_URL.router, 'the router filter comes last');
  });

  test('names that cannot be services are unknown resources', () => {
    assert.equal(isServiceName('users'), true);
    for (const name of [
      '',
      'xdstp://authority/envoy.config.listener.v3.Listener/users',
      'a/b',
      'x'.repeat(257),
      'bad\nname',
    ]) {
      assert.equal(isServiceName(name), false, JSON.stringify(name));
    }
  });
});
