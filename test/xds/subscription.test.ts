import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { TYPE_URL } from '../../src/xds/protos.js';
import { resourceSetVersion } from '../../src/xds/resources.js';
import {
  MAX_RESOURCE_NAMES,
  requestedType,
  serviceNamesOf,
  setVersion,
  StreamError,
  Subscription,
} from '../../src/xds/subscription.js';
import { waitFor } from '../helpers/registry.js';
import { StreamFixture } from '../helpers/xds-wire.js';

const EDS = TYPE_URL.clusterLoadAssignment;
const CDS = TYPE_URL.cluster;

describe('the xDS subscription core', () => {
  let fixture: StreamFixture;
  let changes: number;
  const subscription = (typeUrl: typeof EDS | typeof CDS) =>
    new Subscription(typeUrl, fixture.cache, () => void changes++);

  beforeEach(() => {
    fixture = new StreamFixture({ maxWatchedNames: 10 });
    changes = 0;
  });
  afterEach(() => fixture.close());

  test('the type asked for: the shared constant, EDS for an empty type on an EDS-only endpoint, refused there otherwise', () => {
    const refuse = (asked: string) => new Error(`refused ${asked}`);
    assert.equal(requestedType('type.googleapis.com/envoy.config.cluster.v3.Cluster', false, refuse), CDS);
    assert.equal(requestedType('', true, refuse), EDS);
    assert.throws(
      () => requestedType(CDS, true, refuse),
      /refused type.googleapis.com\/envoy.config.cluster.v3.Cluster/,
    );
    assert.equal(requestedType('type.googleapis.com/envoy.extensions.Secret', false, refuse), undefined);
  });

  test('the names that can be services, once each, sorted', () => {
    assert.deepEqual(serviceNamesOf(['b', 'a', 'b', 'xdstp://x/y']), ['a', 'b']);
  });

  test('state of the world: the legacy wildcard rule', () => {
    const clusters = subscription(CDS);
    assert.equal(clusters.replace([], true), true);
    assert.equal(clusters.wildcard, true, 'an empty first request subscribes to everything');
    assert.equal(clusters.replace([], false), false, 'a later empty request keeps the wildcard');
    clusters.replace(['users'], false);
    assert.equal(clusters.wildcard, false);
    clusters.replace([], false);
    assert.equal(clusters.wildcard, false, 'once names were given, an empty list means nothing');
    assert.deepEqual([...clusters.names], []);
    clusters.replace(['*', 'users'], false);
    assert.equal(clusters.wildcard, true);
    const endpoints = subscription(EDS);
    endpoints.replace([], true);
    assert.equal(endpoints.wildcard, false, 'endpoints are never a wildcard');
  });

  test('state of the world: repeated names change nothing; a dropped name is forgotten', () => {
    const endpoints = subscription(EDS);
    endpoints.replace(['users', 'orders'], true);
    endpoints.returned.set('users', 'v1').set('orders', 'v2');
    assert.equal(endpoints.replace(['users', 'orders'], false), false);
    assert.equal(endpoints.replace(['users'], false), true);
    assert.deepEqual([...endpoints.returned.keys()], ['users']);
    assert.deepEqual(endpoints.serviceNames, ['users']);
    assert.deepEqual(fixture.cache.watchedServices(), ['users']);
  });

  test('equal subscriptions share one name list', () => {
    const one = subscription(EDS);
    const other = subscription(EDS);
    one.replace(['users', 'orders'], true);
    other.update(['orders', 'users'], [], true);
    assert.equal(one.serviceNames, other.serviceNames);
  });

  test('delta: `*` in and out, and an unsubscribed name forgotten unless a wildcard', () => {
    const clusters = subscription(CDS);
    assert.equal(clusters.update(['users'], [], true), true);
    assert.equal(clusters.wildcard, false, 'names on the first request: no wildcard');
    clusters.update(['*'], [], false);
    assert.equal(clusters.wildcard, true);
    clusters.returned.set('users', 'v1');
    clusters.update([], ['users'], false);
    assert.equal(clusters.returned.get('users'), 'v1', 'still held through the wildcard');
    clusters.update(['users'], ['*'], false);
    assert.equal(clusters.wildcard, false);
    clusters.update([], ['users'], false);
    assert.equal(clusters.returned.has('users'), false);
    assert.equal(clusters.update([], ['users'], false), false, 'unsubscribing a name not held changes nothing');
  });

  test('delta: past MAX_RESOURCE_NAMES names, RESOURCE_EXHAUSTED', () => {
    const clusters = subscription(CDS);
    clusters.update(
      Array.from({ length: MAX_RESOURCE_NAMES }, (_, index) => `s-${index}`),
      [],
      true,
    );
    assert.throws(
      () => clusters.update(['one-more'], [], false),
      (error: unknown) => error instanceof StreamError && error.code === 8,
    );
  });

  test('the watch bound: RESOURCE_EXHAUSTED, and nothing the refused request added stays watched', () => {
    const endpoints = subscription(EDS);
    endpoints.replace(['a', 'b'], true);
    const names = Array.from({ length: 12 }, (_, index) => `n-${index}`);
    assert.throws(
      () => endpoints.replace(['a', ...names], false),
      (error: unknown) => error instanceof StreamError && error.code === 8 && /10 services/.test(error.message),
    );
    assert.deepEqual(fixture.cache.watchedServices(), ['a'], 'b was dropped, the new names rolled back');
    endpoints.release();
    assert.deepEqual(fixture.cache.watchedServices(), []);
  });

  test('release drops every watch, a wildcard one too', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const clusters = subscription(CDS);
    clusters.replace([], true);
    await clusters.resolve(undefined, () => assert.fail('nothing to read'));
    clusters.release();
    await fixture.heartbeat('orders', '10.0.1.1');
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(changes, 0, 'a released wildcard is not told of a new service');
  });

  test('resolution: at hand once read, with the wildcard every service, sorted', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    await fixture.heartbeat('orders', '10.0.1.1');
    const endpoints = subscription(EDS);
    endpoints.replace(['users', 'orders'], true);
    await waitFor('both read', () => endpoints.resolveNow(undefined) !== undefined, 2000, 5);
    assert.deepEqual(
      endpoints.resolveNow(undefined)?.map((resource) => resource.name),
      ['orders', 'users'],
    );
    const clusters = subscription(CDS);
    clusters.replace(['*', 'zeta'], true);
    assert.equal(clusters.resolveNow(undefined), undefined, 'a wildcard lists the services first');
    const resolved = await clusters.resolve(undefined, () => undefined);
    assert.deepEqual(
      resolved.map((resource) => resource.name),
      ['orders', 'users', 'zeta'],
    );
    clusters.release();
  });

  test('a set version is the one resourceSetVersion gives, worked out once per shared name list', async () => {
    await fixture.heartbeat('users', '10.0.0.1');
    const endpoints = subscription(EDS);
    endpoints.replace(['users'], true);
    await waitFor('read', () => endpoints.resolveNow(undefined) !== undefined, 2000, 5);
    const resources = endpoints.resolveNow(undefined)!;
    const version = setVersion(resources, endpoints.serviceNames);
    assert.equal(version, resourceSetVersion(resources));
    assert.equal(setVersion([...resources], endpoints.serviceNames), version);
    assert.equal(setVersion(resources, undefined), version);
  });
});
