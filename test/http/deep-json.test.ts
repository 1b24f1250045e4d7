import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { formatJsonPath, jsonDepthExceeds } from '../../src/hosts/json-limits.js';
import { TAG_VALUE_DEPTH_MAX } from '../../src/hosts/model.js';
import { ADS_METHOD } from '../../src/xds/grpc-server.js';
import { TYPE_URL } from '../../src/xds/protos.js';
import { RawXdsStream } from '../helpers/ads-client.js';
import { hostAt, registerOrThrow, startRegistry, type RunningRegistry } from '../helpers/registry.js';

/**
 * JSON nested thousands of levels deep, in every place a client can send JSON: the answer is a
 * 400 naming the field (a gRPC status for xDS streams), never a 500 from a stack overflow, and
 * the server keeps serving. JSON.parse builds such values without trouble; what overflowed were
 * the recursive walks after it.
 */

const arrays = (levels: number) => '['.repeat(levels) + ']'.repeat(levels);
const objects = (levels: number) => '{"":'.repeat(levels) + '1' + '}'.repeat(levels);
const TAGS_TEXT = '"az":"a","region":"r","instance_id":"i"';

describe('jsonDepthExceeds', () => {
  test('counts containers: a scalar is 0 deep, [] is 1; names the first container past the limit', () => {
    assert.equal(jsonDepthExceeds(1, 0), undefined);
    assert.equal(jsonDepthExceeds(null, 0), undefined);
    assert.deepEqual(jsonDepthExceeds([], 0), []);
    assert.equal(jsonDepthExceeds([], 1), undefined);
    assert.equal(jsonDepthExceeds({ a: [1, { b: 2 }] }, 3), undefined);
    assert.deepEqual(jsonDepthExceeds({ a: [1, { b: 2 }] }, 2), ['a', 1]);
    assert.deepEqual(jsonDepthExceeds({ x: 1, deep: { ok: 1, more: [[{}]] } }, 3), ['deep', 'more', 0]);
    assert.equal(formatJsonPath('tags', ['deep', 'more', 0]), 'tags.deep.more[0]');
    assert.equal(formatJsonPath('', ['node', 'metadata']), 'node.metadata');
  });

  test('a million levels are refused at once, without recursion', () => {
    let deep: unknown = 1;
    for (let level = 0; level < 1_000_000; level++) deep = [deep];
    const started = performance.now();
    assert.equal(jsonDepthExceeds(deep, 8)?.length, 8);
    assert.ok(performance.now() - started < 50, 'stops at the limit instead of walking to the bottom');
    const parsed: unknown = JSON.parse(arrays(100_000));
    assert.equal(jsonDepthExceeds(parsed, 64)?.length, 64);
  });
});

describe('deeply nested client JSON', { timeout: 60_000 }, () => {
  let running: RunningRegistry;
  let url: string;

  before(async () => {
    running = await startRegistry({ xds: true });
    url = running.url;
    await registerOrThrow(url, 'guarded', hostAt('10.0.0.1', 9000));
  });
  after(async () => running?.close());

  async function assertNamed400(response: Response, field: RegExp): Promise<void> {
    const text = await response.text();
    assert.equal(response.status, 400, text.slice(0, 300));
    assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
    assert.match((JSON.parse(text) as { error: string }).error, field);
  }

  async function stillServing(): Promise<void> {
    const response = await fetch(`${url}/v1/registration/guarded`);
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { hosts: unknown[] }).hosts.length, 1);
  }

  // A form's `tags` is at most 16 KB of text: 6,000 levels of arrays fit, 3,000 of objects.
  for (const [shape, nested] of [
    ['arrays', arrays(6000)],
    ['objects', objects(3000)],
  ] as const) {
    test(`a form heartbeat (the fast path) with a tag of ${shape} thousands of levels deep: 400 naming the tag`, async () => {
      // Raw form bytes, as the 12 KB body: brackets and braces are sent unescaped.
      const body = `ip=10.0.0.2&port=80&revision=r&tags={${TAGS_TEXT},"deep":${nested}}`;
      const response = await fetch(`${url}/v1/registration/guarded`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      await assertNamed400(response, new RegExp(`'tags\\.deep'.*deeper than ${TAG_VALUE_DEPTH_MAX}`));
      await stillServing();
    });

    test(`a JSON heartbeat with a tag of ${shape} thousands of levels deep (tags an object, then a string): 400 naming the tag`, async () => {
      // As an object, tags have no 16 KB bound of their own: the 64 KB body holds 6,000 levels of either.
      const deepest = shape === 'objects' ? objects(6000) : nested;
      for (const tags of [`{${TAGS_TEXT},"deep":${deepest}}`, JSON.stringify(`{${TAGS_TEXT},"deep":${nested}}`)]) {
        const response = await fetch(`${url}/v1/registration/guarded`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: `{"ip":"10.0.0.2","port":80,"revision":"r","tags":${tags}}`,
        });
        await assertNamed400(response, /'tags\.deep'/);
      }
      await stillServing();
    });

    test(`a multipart heartbeat with a tag of ${shape} thousands of levels deep: 400 naming the tag`, async () => {
      const body = new FormData();
      body.append('ip', '10.0.0.2');
      body.append('port', '80');
      body.append('revision', 'r');
      body.append('tags', `{${TAGS_TEXT},"deep":${nested}}`);
      await assertNamed400(await fetch(`${url}/v1/registration/guarded`, { method: 'POST', body }), /'tags\.deep'/);
      await stillServing();
    });

    test(`the Fastify form route (not the fast path) with ${shape} thousands of levels deep: 400 naming the tag`, async () => {
      const response = await running.registry.app.inject({
        method: 'POST',
        url: '/v1/registration/guarded',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `ip=10.0.0.2&port=80&revision=r&tags={${TAGS_TEXT},"deep":${nested}}`,
      });
      assert.equal(response.statusCode, 400, response.body.slice(0, 300));
      assert.match((response.json() as { error: string }).error, /'tags\.deep'/);
    });

    test(`REST EDS with node.metadata of ${shape} 5,000 levels deep: 400 naming node.metadata`, async () => {
      const inner = shape === 'arrays' ? arrays(5000) : objects(5000);
      const response = await fetch(`${url}/v3/discovery:endpoints`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"node":{"id":"n","metadata":{"k":${inner}}},"resource_names":["guarded"]}`,
      });
      await assertNamed400(response, /node\.metadata/);
      await stillServing();
    });
  }

  test('REST EDS: deep JSON anywhere else in the request (an Any in error_detail) is a 400 too', async () => {
    const response = await fetch(`${url}/v3/discovery:endpoints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"error_detail":{"details":[{"@type":"type.googleapis.com/google.protobuf.Struct","value":{"k":${objects(60)}}}]},"resource_names":["guarded"]}`,
    });
    await assertNamed400(response, /error_detail/);
  });

  test('an xDS stream whose DiscoveryRequest nests node.metadata 5,000 levels deep is refused with INVALID_ARGUMENT; the server keeps serving', async () => {
    const client = new grpc.Client(`127.0.0.1:${running.xdsPort}`, grpc.credentials.createInsecure());
    try {
      const raw = client.makeBidiStreamRequest(
        ADS_METHOD,
        (bytes: Buffer) => bytes,
        (bytes: Buffer) => bytes,
      );
      const status = new Promise<grpc.StatusObject>((resolve) => raw.on('status', resolve));
      raw.on('error', () => undefined);
      raw.on('data', () => undefined);
      raw.write(deepMetadataRequest(5000));
      const ended = await Promise.race([
        status,
        new Promise<undefined>((resolve) => setTimeout(resolve, 5000, undefined)),
      ]);
      assert.ok(ended, 'the stream was ended with a status');
      assert.equal(ended.code, grpc.status.INVALID_ARGUMENT, ended.details);
      assert.match(ended.details, /nest/);

      // The same client, a new stream: served as usual.
      const stream = new RawXdsStream(client);
      stream.send({ node: { id: 'after' }, type_url: TYPE_URL.clusterLoadAssignment, resource_names: ['guarded'] });
      const response = await stream.next(5000);
      assert.equal(response.resources.length, 1);
      stream.close();
      await stillServing();
    } finally {
      client.close();
    }
  });
});

/**
 * The bytes of a DiscoveryRequest (ADS, ClusterLoadAssignment of `guarded`) whose node.metadata
 * is a Struct nesting `levels` deep, built by hand: protobufjs's own encoder refuses such depth.
 */
function deepMetadataRequest(levels: number): Buffer {
  const field = (number: number, payload: Buffer) =>
    Buffer.concat([varint((number << 3) | 2), varint(payload.length), payload]);
  const text = (value: string) => Buffer.from(value, 'utf8');
  // Value { number_value (2) = 1 }
  let value = Buffer.concat([varint((2 << 3) | 1), Buffer.from(new Float64Array([1]).buffer)]);
  let struct = Buffer.alloc(0);
  for (let level = 0; level < levels; level++) {
    // Struct { fields (1): map entry { key (1) = "k", value (2) = Value } }
    struct = field(1, Buffer.concat([field(1, text('k')), field(2, value)]));
    // Value { struct_value (5) = Struct }
    value = field(5, struct);
  }
  // Node { id (1), metadata (3) = Struct }
  const node = Buffer.concat([field(1, text('deep')), field(3, struct)]);
  // DiscoveryRequest { node (2), resource_names (3), type_url (4) }
  return Buffer.concat([field(2, node), field(3, text('guarded')), field(4, text(TYPE_URL.clusterLoadAssignment))]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}
