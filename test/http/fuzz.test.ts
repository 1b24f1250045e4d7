import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { hostProblem, type Host } from '../../src/hosts/model.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';
import { register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

/** How many generated requests one run throws at the server; bounded in count and time. */
const CASES = 3000;
const TIME_LIMIT_MS = 60_000;
/** Requests sent with bytes that are not HTTP behind them on the same connection. */
const PIPELINED_CASES = 500;

interface RawRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  body: string;
  extraHeaders: readonly string[];
}

/** A request's bytes exactly as generated (no client-side escaping). */
function rawBytes(request: RawRequest, close: boolean): Buffer {
  const body = Buffer.from(request.body, 'utf8');
  const head = [
    `${request.method} ${request.path} HTTP/1.1`,
    'Host: 127.0.0.1',
    ...(close ? ['Connection: close'] : []),
    ...(request.contentType !== undefined ? [`Content-Type: ${request.contentType}`] : []),
    `Content-Length: ${body.length}`,
    ...request.extraHeaders,
    '',
    '',
  ].join('\r\n');
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * Writes `bytes` on a fresh connection and returns everything answered until the server closes
 * it. With `halfClose` the client ends its side at once; then Node's server ends the connection
 * when the answers queued so far are written, so an answer to later garbage may not come.
 */
function exchange(port: number, bytes: Buffer, halfClose = true): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    socket.setTimeout(10_000, () =>
      socket.destroy(new Error(`no close within 10 s; answered so far: ${JSON.stringify(response.slice(0, 200))}`)),
    );
    socket.on('data', (chunk) => (response += chunk.toString('latin1')));
    socket.on('error', (error) =>
      (error as NodeJS.ErrnoException).code === 'ECONNRESET' && response ? resolve(response) : reject(error),
    );
    socket.on('end', () => resolve(response));
    if (halfClose) socket.end(bytes);
    else socket.write(bytes);
  });
}

/** Sends one request and returns the status code. */
async function send(port: number, request: RawRequest): Promise<number> {
  return statusOf(await exchange(port, rawBytes(request, true)));
}

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

/** The answers in a byte stream of HTTP/1.1 responses (bodies with Content-Length, as ours all are; none to a HEAD). */
function answersOf(response: string, firstIsHead: boolean): Answer[] {
  const answers: Answer[] = [];
  let rest = response;
  while (rest.length > 0) {
    const status = statusOf(rest);
    const headEnd = rest.indexOf('\r\n\r\n');
    const head = rest.slice(0, headEnd).toLowerCase();
    const after = rest.slice(headEnd + 4);
    // A HEAD's answer has no body, unless the request itself was unparsable and this is the error for it.
    const bodiless = firstIsHead && answers.length === 0 && (after === '' || after.startsWith('HTTP/1.1 '));
    const length = bodiless ? 0 : Number(/\r\ncontent-length: *(\d+)/.exec(head)?.[1] ?? 0);
    answers.push({
      status,
      contentType: /\r\ncontent-type: *([^\r]*)/.exec(head)?.[1] ?? '',
      body: rest.slice(headEnd + 4, headEnd + 4 + length),
    });
    rest = rest.slice(headEnd + 4 + length);
  }
  return answers;
}

function statusOf(response: string): number {
  const match = /^HTTP\/1\.1 (\d{3})/.exec(response);
  if (!match) throw new Error(`not an HTTP response: ${JSON.stringify(response.slice(0, 200))}`);
  return Number(match[1]);
}

const hostile = fc.constantFrom(
  '..',
  '%2F',
  '%2e%2e',
  '../../etc/passwd',
  '__proto__',
  'constructor',
  '%00',
  '%C0%AE',
  '\u202e',
  '😀',
  'a'.repeat(300),
  '%',
  '%zz',
  ' ',
  '?x=1',
  '#frag',
);
const segment = fc.oneof(
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.constantFrom('users', 'guarded', '10.0.0.1', '::1', '2001:db8::1'),
  hostile,
);
const ipish = fc.oneof(
  fc.ipV4().map(String),
  fc.ipV6(),
  fc.constantFrom('10.0.0.1', '256.1.1.1', '1.2.3', '::ffff:10.0.0.1', 'fe80::1%25eth0', ''),
  fc.string({ maxLength: 40 }),
);

const jsonValue = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string(),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    tie('array'),
    tie('object'),
  ),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(
    fc.oneof(
      fc.string({ maxLength: 10 }),
      fc.constantFrom('__proto__', 'constructor', 'prototype', 'az', 'load_balancing_weight'),
    ),
    tie('value'),
    { maxKeys: 5 },
  ),
})).value;

const tags = fc.oneof(
  jsonValue.map((value) => JSON.stringify(value)),
  fc.record({ az: fc.string(), region: fc.string(), instance_id: fc.string() }, { requiredKeys: [] }).chain((base) =>
    fc
      .dictionary(fc.constantFrom('__proto__', 'constructor', 'canary', 'load_balancing_weight', 'x'), jsonValue, {
        maxKeys: 3,
      })
      .map((extra) => JSON.stringify({ ...base, ...extra })),
  ),
  fc.constantFrom(
    '{"az":"a","region":"r","instance_id":"i","__proto__":{"polluted":1}}',
    '['.repeat(5000) + ']'.repeat(5000),
    '{"az":',
    'null',
    '"string"',
  ),
  // Numbers JSON reads as Infinity, and tags nested past any sane depth (a 12 KB body nests 6,000 levels).
  fc.constantFrom(
    '{"az":"a","region":"r","instance_id":"i","n":1e309}',
    '{"az":"a","region":"r","instance_id":"i","load_balancing_weight":1e309}',
  ),
  fc
    .integer({ min: 9, max: 6000 })
    .map((depth) => `{"az":"a","region":"r","instance_id":"i","deep":${'['.repeat(depth)}${']'.repeat(depth)}}`),
  fc
    .integer({ min: 9, max: 6000 })
    .map((depth) => `{"az":"a","region":"r","instance_id":"i","deep":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`),
);

const formFields = fc.record(
  {
    ip: ipish,
    port: fc.oneof(
      fc.integer({ min: -100000, max: 100000 }).map(String),
      fc.constantFrom(
        '80',
        '0',
        '65536',
        '1e3',
        '0x50',
        '',
        '80.0',
        'NaN',
        'Infinity',
        '-Infinity',
        '1e309',
        ' 80',
        '+80',
        '8_0',
        '٨٠',
      ),
      fc.double().map(String),
    ),
    revision: fc.oneof(fc.string({ maxLength: 300 }), fc.constant('')),
    service_repo_name: fc.oneof(fc.string({ maxLength: 300 }), hostile),
    tags,
    auto_ip: fc.constantFrom('true', 'false', 'maybe', '1'),
    load_balancing_weight: fc.oneof(
      fc.integer({ min: -1000, max: 1000 }).map(String),
      fc.constantFrom('1e2', '50.5', '', 'abc', '100', '007'),
    ),
  },
  { requiredKeys: [] },
);

const formBody = fc.tuple(formFields, fc.boolean()).map(([fields, duplicate]) => {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(fields)) {
    params.append(key, value);
    if (duplicate) params.append(key, value);
  }
  return params.toString();
});

const jsonBody = fc.oneof(
  formFields.map((fields) => JSON.stringify(fields)),
  jsonValue.map((value) => JSON.stringify(value)),
  fc.constantFrom(
    '{"ip":',
    '[]',
    'null',
    '{"__proto__":{"polluted":true},"ip":"10.0.0.1"}',
    '{"constructor":{"prototype":{"polluted":true}}}',
    '{"a":' + '['.repeat(10000) + ']'.repeat(10000) + '}',
  ),
  // Raw JSON numbers that parse to Infinity or a fraction, where an integer belongs.
  fc
    .constantFrom('1e309', '-1e309', '80.5', '1e3', '"Infinity"', '[80]', 'true')
    .map((port) => `{"ip":"10.0.0.5","port":${port},"revision":"r","tags":{"az":"a","region":"r","instance_id":"i"}}`),
  fc
    .integer({ min: 9, max: 20000 })
    .map(
      (depth) =>
        `{"ip":"10.0.0.5","port":80,"revision":"r","tags":{"az":"a","region":"r","instance_id":"i","deep":${'['.repeat(depth)}${']'.repeat(depth)}}}`,
    ),
  fc.constant(
    '{"ip":"10.0.0.1","port":1,"revision":"r","tags":{"az":"a","region":"r","instance_id":"i","deep":' +
      '{"":'.repeat(6000) +
      '1' +
      '}'.repeat(6000) +
      '}}',
  ),
);

const request: fc.Arbitrary<RawRequest> = fc.oneof(
  fc.record({
    method: fc.constantFrom('POST'),
    path: fc.oneof(
      segment.map((s) => `/v1/registration/${s}`),
      fc.tuple(segment, segment).map(([s, ip]) => `/v1/loadbalancing/${s}/${ip}`),
      segment.map((s) => `/v1/loadbalancing/${s}`),
    ),
    contentType: fc.constantFrom(
      'application/x-www-form-urlencoded',
      'application/x-www-form-urlencoded; charset=latin1',
    ),
    body: formBody,
    extraHeaders: fc.constant([]),
  }),
  fc.record({
    method: fc.constantFrom('POST'),
    path: fc.oneof(
      segment.map((s) => `/v1/registration/${s}`),
      fc.tuple(segment, segment).map(([s, ip]) => `/v1/loadbalancing/${s}/${ip}`),
    ),
    contentType: fc.constantFrom('application/json', 'application/json; charset=utf-8'),
    body: jsonBody,
    extraHeaders: fc.constant([]),
  }),
  fc.record({
    method: fc.constantFrom('GET', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS', 'POST'),
    path: fc.oneof(
      fc.tuple(segment, segment).map(([s, ip]) => `/v1/registration/${s}/${ip}`),
      segment.map((s) => `/v1/registration/${s}`),
      segment.map((s) => `/v1/registration/repo/${s}`),
      fc.string({ maxLength: 50 }).map((s) => `/${encodeURIComponent(s)}`),
      fc.constantFrom(
        '/v1/registration/../../etc/passwd',
        '/v1/registration/a%2Fb',
        '//v1//registration//x',
        '/v1/registration/' + '%'.repeat(3),
      ),
    ),
    contentType: fc.option(
      fc.constantFrom(
        'text/plain',
        'application/xml',
        'multipart/form-data',
        'multipart/form-data; boundary=x',
        'application/json',
        '',
        '*/*',
      ),
      { nil: undefined },
    ),
    body: fc.oneof(fc.string({ maxLength: 200 }), fc.constant(''), jsonBody, formBody),
    extraHeaders: fc.subarray([
      'X-Forwarded-For: 192.168.1.1, 10.0.0.1',
      'X-Forwarded-For: not-an-ip',
      'If-None-Match: *',
      'If-None-Match: W/"x"',
      'Transfer-Encoding: identity',
      'Authorization: Basic !!!',
    ]),
  }),
  fc.record({
    method: fc.constant('POST'),
    path: fc.constant('/v1/registration/guarded'),
    contentType: fc.constant('application/x-www-form-urlencoded'),
    body: fc
      .integer({ min: 70, max: 300 })
      .map((kib) => `ip=10.0.0.9&port=1&revision=r&tags=${'x'.repeat(kib * 1024)}`),
    extraHeaders: fc.constant([]),
  }),
);

async function registryState(store: MemoryHostStore): Promise<string> {
  const services = [...(await store.listServices())].sort();
  const all: Host[] = [];
  for (const service of services) all.push(...(await store.listByService(service)).hosts);
  all.sort((a, b) => `${a.service}\u0000${a.ip_address}`.localeCompare(`${b.service}\u0000${b.ip_address}`));
  return JSON.stringify(all);
}

/** Bytes that are not HTTP, to follow a valid request on the same connection. */
const garbage = fc.oneof(
  fc.constantFrom(
    '\u0000\u0001\u0002',
    'NOT HTTP\r\n\r\n',
    'GET / HTTP/9.9\r\n\r\n',
    'GET /x HTTP/1.1\r\nBad Header\r\n\r\n',
    'POST /v1/registration/x HTTP/1.1\r\nContent-Length: -1\r\n\r\n',
  ),
  fc.string({ minLength: 1, maxLength: 40 }).map((text) => `\u0001${text}\r\n\r\n`),
);

/**
 * What every answer to every reader must be, whatever was sent before: each record a valid host
 * and each service's list valid JSON holding exactly those records.
 */
async function assertServedListsValid(url: string, store: MemoryHostStore, context: string): Promise<void> {
  for (const service of await store.listServices()) {
    for (const host of (await store.listByService(service)).hosts)
      assert.equal(hostProblem(host), undefined, `${context}: stored ${JSON.stringify(host).slice(0, 200)}`);
    const response = await fetch(`${url}/v1/registration/${encodeURIComponent(service)}`);
    if (response.status === 400) continue; // a name the API cannot route (the store saw it through a plugin-free path? never: checked below)
    const text = await response.text();
    assert.doesNotThrow(() => JSON.parse(text), `${context}: GET ${service} is not valid JSON: ${text.slice(0, 200)}`);
  }
}

describe('hostile input', () => {
  let server: RunningRegistry;
  const store = new MemoryHostStore();
  before(async () => {
    server = await startRegistry({ store });
    await register(server.url, 'guarded', { ip: '10.0.0.1', tags: { ...TAGS, load_balancing_weight: 10 } });
    await register(server.url, 'users', { ip: '2001:db8::1' });
  });
  after(async () => server.close());

  test(`${CASES} generated requests: never a 5xx, rejected requests change nothing, memory stays bounded`, async (t) => {
    const port = Number(new URL(server.url).port);
    const started = Date.now();
    const rssBefore = process.memoryUsage().rss;
    const statuses = new Map<number, number>();
    let tried = 0;
    let rejected = 0;
    await fc.assert(
      fc.asyncProperty(request, async (generated) => {
        if (Date.now() - started > TIME_LIMIT_MS) return;
        const before = await registryState(store);
        const status = await send(port, generated);
        tried++;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok(status < 500, `${generated.method} ${generated.path} answered ${status}`);
        if (status >= 400) {
          rejected++;
          assert.equal(
            await registryState(store),
            before,
            `${generated.method} ${generated.path} was rejected with ${status} but changed the registry`,
          );
        } else if (generated.method === 'POST') {
          await assertServedListsValid(
            server.url,
            store,
            `${generated.method} ${generated.path} ${generated.body.slice(0, 120)}`,
          );
        }
      }),
      { numRuns: CASES, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was polluted');
    assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200, 'the server is still up');
    const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    // Resident memory, not heap: it includes what the generator itself allocates (300 kB bodies, deep JSON)
    // and V8's heap sizing, which differs between Node versions (Node 24 grew 213 MB once); a leak of
    // what 3,000 requests leave behind would pass any bound far sooner than this one.
    assert.ok(rssGrowthMb < 400, `memory grew by ${rssGrowthMb.toFixed(0)} MB`);
    t.diagnostic(
      `fuzz: ${tried} requests tried, ${rejected} rejected with 4xx, statuses ${JSON.stringify(Object.fromEntries(statuses))}, rss +${rssGrowthMb.toFixed(0)} MB`,
    );
    assert.ok(tried >= Math.min(CASES, 1000), `only ${tried} cases ran before the time limit`);
  });

  test(`${PIPELINED_CASES} requests followed by bytes that are not HTTP: the request is answered, then a JSON error, then the connection closes`, async () => {
    const port = Number(new URL(server.url).port);
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(request, garbage, async (generated, trailing) => {
        if (Date.now() - started > TIME_LIMIT_MS) return;
        const before = await registryState(store);
        const answers = answersOf(
          await exchange(port, Buffer.concat([rawBytes(generated, false), Buffer.from(trailing, 'latin1')]), false),
          generated.method === 'HEAD',
        );
        const [first, last] = [answers[0], answers.at(-1)];
        assert.ok(first && last, 'no answer at all');
        assert.ok(
          answers.every((answer) => answer.status < 500),
          `${generated.method} ${generated.path} then garbage: ${answers.map((answer) => answer.status).join(', ')}`,
        );
        // The garbage's own answer: JSON with one "error" key (unless the request itself was already the last thing read).
        assert.ok(last.status >= 400, `the garbage was answered ${last.status}`);
        assert.match(last.contentType, /^application\/json/);
        assert.deepEqual(Object.keys(JSON.parse(last.body) as object), ['error']);
        if (first.status >= 400)
          assert.equal(
            await registryState(store),
            before,
            `${generated.method} ${generated.path} was answered ${first.status} but changed the registry`,
          );
      }),
      { numRuns: PIPELINED_CASES, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    await assertServedListsValid(server.url, store, 'after the pipelined cases');
  });
});
