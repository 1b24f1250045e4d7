import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PORT_INVALID, TAGS_NOT_JSON } from '../../src/http/validation.js';
import { form, listHosts, register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

describe('heartbeat validation', () => {
  let server: RunningRegistry;
  const valid = { ip: '10.0.0.1', port: 9211, revision: 'r1', service_repo_name: 'repo', tags: TAGS };

  before(async () => {
    server = await startRegistry();
    // The stored record every rejected request below must leave as it is.
    assert.equal((await register(server.url, 'guarded', valid)).status, 200);
  });
  after(async () => server.close());

  async function snapshotOfGuarded(): Promise<string> {
    const body = await listHosts(server.url, 'guarded');
    return JSON.stringify(body.hosts);
  }

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['ip missing', { ip: undefined }, /'ip' is missing/],
    ['ip not an address', { ip: '10.0.0.256' }, /'ip'/],
    ['ip a hostname', { ip: 'example.internal' }, /'ip'/],
    ['port missing', { port: undefined }, /'port' is missing/],
    ['port not a number', { port: 'http' }, /'port'/],
    ['port zero', { port: 0 }, /'port'/],
    ['port above 65535', { port: 65536 }, /'port'/],
    ['port fractional', { port: 80.5 }, /'port'/],
    ['revision missing', { revision: undefined }, /'revision' is missing/],
    ['revision empty', { revision: '' }, /'revision'/],
    ['tags missing', { tags: undefined }, /'tags' is missing/],
    ['tags not JSON', { tags: '{az:' }, new RegExp(TAGS_NOT_JSON)],
    ['tags a JSON array', { tags: '[1,2]' }, /'tags'/],
    ['tags without az', { tags: { region: 'r', instance_id: 'i' } }, /'tags'.*'az'/],
    ['tags without region', { tags: { az: 'a', instance_id: 'i' } }, /'tags'.*'region'/],
    ['tags without instance_id', { tags: { az: 'a', region: 'r' } }, /'tags'.*'instance_id'/],
    ['canary not a boolean', { tags: { ...TAGS, canary: 'yes' } }, /'tags'.*canary/],
    ['weight tag out of range', { tags: { ...TAGS, load_balancing_weight: 0 } }, /'tags'.*load_balancing_weight/],
    ['weight tag not an integer', { tags: { ...TAGS, load_balancing_weight: 2.5 } }, /'tags'.*load_balancing_weight/],
    ['__proto__ tag', { tags: '{"az":"a","region":"r","instance_id":"i","__proto__":{"polluted":true}}' }, /__proto__/],
    ['too deep tag', { tags: { ...TAGS, deep: JSON.parse('['.repeat(20) + ']'.repeat(20)) } }, /deep/],
    ['tag key longer than 256 characters', { tags: { ...TAGS, ['k'.repeat(257)]: 1 } }, /'tags'.*256 characters/],
    ['auto_ip nonsense', { ip: undefined, auto_ip: 'maybe' }, /auto_ip/],
    ['a tag number JSON cannot write', { tags: '{"az":"a","region":"r","instance_id":"i","n":1e309}' }, /'tags\.n'/],
    [
      'a tag nested 6,000 levels (a 12 KB form body)',
      { tags: `{"az":"a","region":"r","instance_id":"i","deep":${'['.repeat(6000)}${']'.repeat(6000)}}` },
      /'tags\.deep'.*nested deeper/,
    ],
    [
      'a tag object nested 2,000 levels',
      { tags: `{"az":"a","region":"r","instance_id":"i","deep":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}}` },
      /'tags\.deep'.*nested deeper/,
    ],
  ];

  for (const [name, change, message] of cases) {
    test(`${name}: 400 naming the field, counted as a failure, nothing written`, async () => {
      const before = await snapshotOfGuarded();
      const response = await register(server.url, 'guarded', {
        ...valid,
        ...change,
        revision: 'changed',
        ...('revision' in change ? { revision: change.revision } : {}),
      } as never);
      assert.equal(response.status, 400);
      assert.equal(response.headers.get('content-type')?.startsWith('application/json'), true);
      const body = (await response.json()) as { error: string };
      assert.match(body.error, message);
      assert.equal(await snapshotOfGuarded(), before);
    });
  }

  test('tags sent as a JSON object are held to the 16 KB the form field allows', async () => {
    const before = await snapshotOfGuarded();
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...valid, revision: 'changed', tags: { ...TAGS, big: 'x'.repeat(20_000) } }),
    });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /'tags'.*16384 characters/);
    assert.equal(await snapshotOfGuarded(), before);
  });

  test('a field sent twice: the first value counts, as the original read it', async () => {
    const body = form({ ...valid, ip: '10.0.8.1', revision: 'first' });
    body.append('ip', '10.0.8.2');
    body.append('revision', 'second');
    for (const fastPath of [true, false]) {
      // The query string takes the request past the fast path to the Fastify route.
      const response = await fetch(`${server.url}/v1/registration/twice${fastPath ? '' : '?'}`, {
        method: 'POST',
        body,
      });
      assert.equal(response.status, 200);
    }
    const hosts = (await listHosts(server.url, 'twice')).hosts;
    assert.deepEqual(
      hosts.map((host) => [host.ip_address, host.revision]),
      [['10.0.8.1', 'first']],
    );
  });

  test('a percent-escape that is not UTF-8 is stored as U+FFFD, never as its escape text', async () => {
    for (const [fastPath, ip] of [
      [true, '10.0.9.1'],
      [false, '10.0.9.2'],
    ] as const) {
      const body = `ip=${ip}&port=80&revision=r%FFx%E2%82&tags=${encodeURIComponent(JSON.stringify(TAGS))}&service_repo_name=a%zz`;
      const response = await fetch(`${server.url}/v1/registration/escapes${fastPath ? '' : '?'}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
      });
      assert.equal(response.status, 200);
    }
    const hosts = (await listHosts(server.url, 'escapes')).hosts;
    // `%zz` is no escape at all and stays as written, as werkzeug kept it.
    assert.deepEqual(
      hosts.map((host) => [host.revision, host.service_repo_name]),
      [
        ['r\uFFFDx\uFFFD', 'a%zz'],
        ['r\uFFFDx\uFFFD', 'a%zz'],
      ],
    );
  });

  test('an over-long service name answers 400 naming it', async () => {
    const response = await register(server.url, 's'.repeat(300), valid);
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /'service'/);
    const read = await fetch(`${server.url}/v1/registration/${'s'.repeat(300)}`);
    assert.equal(read.status, 400);
  });

  test('an over-long repo name answers 400 naming it', async () => {
    const response = await register(server.url, 'guarded', { ...valid, service_repo_name: 'r'.repeat(300) });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /service_repo_name/);
  });

  test('a body over the size limit answers 413 with a JSON error', async () => {
    const response = await register(server.url, 'guarded', { ...valid, padding: 'x'.repeat(200 * 1024) });
    assert.equal(response.status, 413);
    assert.ok(((await response.json()) as { error: string }).error);
  });

  test('an unsupported content type answers 415 with a JSON error', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'text/xml' },
      body: '<host/>',
    });
    assert.equal(response.status, 415);
    assert.ok(((await response.json()) as { error: string }).error);
  });

  test('a multipart body without a boundary answers 400, not 500 (found by the fuzz test)', async () => {
    for (const method of ['POST', 'DELETE']) {
      const response = await fetch(`${server.url}/v1/registration/guarded${method === 'DELETE' ? '/10.0.0.1' : ''}`, {
        method,
        headers: { 'content-type': 'multipart/form-data' },
        body: 'ip=10.0.0.1',
      });
      assert.equal(response.status, 400, method);
      assert.match(((await response.json()) as { error: string }).error, /Malformed request/);
    }
    assert.equal((await listHosts(server.url, 'guarded')).hosts.length, 1);
  });

  test('malformed JSON answers 400 with a JSON error', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"ip": "10.0.0.1",',
    });
    assert.equal(response.status, 400);
    assert.ok(((await response.json()) as { error: string }).error);
  });

  test('a POST without any body answers 400 naming a missing field', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, { method: 'POST' });
    assert.equal(response.status, 400);
    assert.match(((await response.json()) as { error: string }).error, /is missing/);
  });

  test('a __proto__ key never reaches any prototype', async () => {
    const response = await fetch(`${server.url}/v1/registration/guarded`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"ip":"10.0.0.1","port":1,"revision":"x","tags":{"az":"a","region":"r","instance_id":"i","__proto__":{"polluted":true}}}',
    });
    assert.equal(response.status, 400);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('port: an integer written as digits, as the original read it with int()', () => {
  const valid = { ip: '10.0.0.2', port: 9211, revision: 'r1', tags: TAGS };
  const refusedText = [
    'Infinity',
    '-Infinity',
    '1e309',
    '1e3',
    '80.0',
    '8e1',
    '0x50',
    'NaN',
    '-80',
    '0',
    '65536',
    '',
    ' ',
    '80 80',
    '1__000',
    '_80',
    '80_',
    '- 80',
    '80\ufeff',
  ];
  const refusedJson = ['"Infinity"', '1e309', '-1e309', '"1e3"', '"80.0"', '80.5', 'true', 'null', '{}', '0', '65536'];

  for (const fastPaths of [true, false]) {
    describe(fastPaths ? 'through the fast paths' : 'through the Fastify routes', () => {
      let server: RunningRegistry;
      before(async () => {
        server = await startRegistry({ fastPaths });
        assert.equal((await register(server.url, 'web', valid)).status, 200);
      });
      after(async () => server.close());

      /** The list must stay valid JSON with the one good host, as registered. */
      async function assertListUnchanged(): Promise<void> {
        const response = await fetch(`${server.url}/v1/registration/web`);
        const text = await response.text();
        const body = JSON.parse(text) as { hosts: Array<{ port: unknown; revision: string }> };
        assert.deepEqual(
          body.hosts.map((host) => [host.port, host.revision]),
          [[9211, 'r1']],
        );
      }

      for (const port of refusedText) {
        test(`form port ${JSON.stringify(port)}: 400 saying what a port is, nothing written`, async () => {
          const response = await register(server.url, 'web', { ...valid, port, revision: 'poisoned' });
          assert.equal(response.status, 400);
          assert.equal(((await response.json()) as { error: string }).error, PORT_INVALID);
          await assertListUnchanged();
        });
      }

      for (const port of refusedJson) {
        test(`JSON port ${port}: 400 naming 'port', nothing written`, async () => {
          const response = await fetch(`${server.url}/v1/registration/web`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: `{"ip":"10.0.0.2","port":${port},"revision":"poisoned","tags":${JSON.stringify(TAGS)}}`,
          });
          assert.equal(response.status, 400);
          assert.match(((await response.json()) as { error: string }).error, /'port'/);
          await assertListUnchanged();
        });
      }

      test('digits with the whitespace, sign and underscores int() accepts are the port they spell', async () => {
        for (const [port, expected] of [
          [' 8081', 8081],
          ['+8082', 8082],
          ['08083', 8083],
          ['65535', 65535],
          ['1', 1],
          // `--data-urlencode port@file` sends the file's trailing newline; int() strips it.
          ['8084\n', 8084],
          ['\t8085 \r\n', 8085],
          ['8_086', 8086],
          ['\u0668\u0660\u0668\u0667', 8087],
        ] as const) {
          assert.equal((await register(server.url, 'web-accepted', { ...valid, port })).status, 200, port);
          assert.equal((await listHosts(server.url, 'web-accepted')).hosts[0]?.port, expected, port);
        }
        const json = await fetch(`${server.url}/v1/registration/web-accepted`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: `{"ip":"10.0.0.2","port":"9090","revision":"r","tags":${JSON.stringify(TAGS)}}`,
        });
        assert.equal(json.status, 200);
        assert.equal((await listHosts(server.url, 'web-accepted')).hosts[0]?.port, 9090);
      });
    });
  }
});

describe('multipart heartbeats', () => {
  test('a field sent twice keeps its first value, as in a form body', async () => {
    const server = await startRegistry();
    try {
      const body = new FormData();
      for (const [key, value] of [
        ['ip', '10.0.7.1'],
        ['ip', '10.0.7.2'],
        ['port', '80'],
        ['revision', 'first'],
        ['revision', 'second'],
        ['tags', JSON.stringify(TAGS)],
      ])
        body.append(key as string, value as string);
      const response = await fetch(`${server.url}/v1/registration/multipart-twice`, { method: 'POST', body });
      assert.equal(response.status, 200, await response.clone().text());
      assert.deepEqual(
        (await listHosts(server.url, 'multipart-twice')).hosts.map((host) => [host.ip_address, host.revision]),
        [['10.0.7.1', 'first']],
      );
    } finally {
      await server.close();
    }
  });
});

describe('router errors are JSON {"error": ...} too', () => {
  let server: RunningRegistry;
  before(async () => {
    server = await startRegistry();
  });
  after(async () => server.close());

  for (const [name, method, path, status] of [
    ['a percent-escape that is not UTF-8 in the path', 'GET', '/v1/registration/%E0%A4%A', 400],
    ['a lone % in a DELETE path', 'DELETE', '/v1/registration/users/%', 400],
    ['a path segment longer than the router takes', 'GET', `/v1/registration/${'s'.repeat(2000)}`, 414],
  ] as const) {
    test(`${name}: ${status} with only an "error" key`, async () => {
      const response = await fetch(`${server.url}${path}`, { method });
      assert.equal(response.status, status);
      assert.match(String(response.headers.get('content-type')), /^application\/json/);
      const body = (await response.json()) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['error']);
    });
  }
});
