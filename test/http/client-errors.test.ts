import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { form, listHosts, register, startRegistry, TAGS, type RunningRegistry } from '../helpers/registry.js';

/** Every answer on one raw connection, in order, once the server has closed it (bounded). */
async function exchange(
  url: string,
  bytes: string | Buffer,
): Promise<Array<{ status: number; headers: string; body: string }>> {
  const socket = connect(Number(new URL(url).port), '127.0.0.1');
  await once(socket, 'connect');
  socket.write(bytes);
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  const closed = once(socket, 'close');
  const timer = setTimeout(() => socket.destroy(new Error(`no close within 5 s; received so far: ${received}`)), 5000);
  await closed;
  clearTimeout(timer);
  return received
    .split(/(?=HTTP\/1\.1 \d{3} )/)
    .filter((answer) => answer !== '')
    .map((answer) => {
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      return { status: Number(head.slice(9, 12)), headers: head.toLowerCase(), body };
    });
}

function heartbeatRequest(service: string, ip: string, extraHeaders = ''): string {
  const body = form({ ip, port: 8080, revision: 'r1', tags: TAGS }).toString();
  return `POST /v1/registration/${service} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n${extraHeaders}\r\n${body}`;
}

const GARBAGE = '\u0001\u0002 NOT HTTP AT ALL\r\n\r\n';

function assertJsonErrorThenClose(
  answer: { status: number; headers: string; body: string } | undefined,
  status: number,
): void {
  assert.ok(answer, 'no answer to the unparsable bytes');
  assert.equal(answer.status, status);
  assert.match(answer.headers, /content-type: application\/json/);
  assert.match(answer.headers, /connection: close/);
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error']);
  assert.equal(typeof body.error, 'string');
}

for (const fastPaths of [true, false]) {
  describe(`unparsable bytes after valid requests on one connection (${fastPaths ? 'fast paths' : 'Fastify routes'})`, () => {
    let server: RunningRegistry;
    before(async () => {
      server = await startRegistry({ fastPaths });
    });
    after(async () => server.close());

    test('a heartbeat followed by garbage is answered 200 first, then a JSON 400, then the connection closes', async () => {
      const answers = await exchange(server.url, heartbeatRequest('pipelined', '10.0.0.1') + GARBAGE);
      assert.equal(answers.length, 2, JSON.stringify(answers));
      assert.equal(answers[0]?.status, 200);
      assert.equal(answers[0]?.body, '{}');
      assertJsonErrorThenClose(answers[1], 400);
      assert.deepEqual(
        (await listHosts(server.url, 'pipelined')).hosts.map((host) => host.ip_address),
        ['10.0.0.1'],
      );
    });

    test('a DELETE followed by garbage is answered 200 first, then a JSON 400', async () => {
      assert.equal((await register(server.url, 'deleted', { ip: '10.0.0.2' })).status, 200);
      const answers = await exchange(
        server.url,
        `DELETE /v1/registration/deleted/10.0.0.2 HTTP/1.1\r\nHost: x\r\n\r\n${GARBAGE}`,
      );
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [200, 400],
      );
      assertJsonErrorThenClose(answers[1], 400);
      assert.deepEqual((await listHosts(server.url, 'deleted')).hosts, []);
    });

    test('several pipelined requests then garbage: every answer in order, the error last', async () => {
      const answers = await exchange(
        server.url,
        heartbeatRequest('several', '10.0.0.3') +
          'GET /v1/registration/several HTTP/1.1\r\nHost: x\r\n\r\n' +
          heartbeatRequest('several', '10.0.0.4') +
          GARBAGE,
      );
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [200, 200, 200, 400],
      );
      // (Whether the GET sees the heartbeat before it is not promised: RFC 9112 asks clients not to pipeline after a POST.)
      assert.match(answers[1]?.body ?? '', /^\{"env":"[^"]*","hosts":\[.*\],"service":"several"\}$/);
      assert.deepEqual(
        (await listHosts(server.url, 'several')).hosts.map((host) => host.ip_address),
        ['10.0.0.3', '10.0.0.4'],
      );
    });

    test('garbage alone gets a JSON 400 naming the problem, never the framework default', async () => {
      const answers = await exchange(server.url, GARBAGE);
      assert.equal(answers.length, 1);
      assertJsonErrorThenClose(answers[0], 400);
      assert.match(answers[0]?.body ?? '', /Malformed HTTP request/);
    });

    test('a header block over the limit gets a JSON 431', async () => {
      const answers = await exchange(
        server.url,
        `GET /v1/registration/x HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      );
      assert.equal(answers.length, 1);
      assertJsonErrorThenClose(answers[0], 431);
    });

    test('a bad request line after a heartbeat in the same packet: the heartbeat happened and was answered', async () => {
      const answers = await exchange(
        server.url,
        heartbeatRequest('bad-line', '10.0.0.5') + 'GET /v1 HTTP/9.9.9\r\n\r\n',
      );
      assert.deepEqual(
        answers.map((answer) => answer.status),
        [200, 400],
      );
      assert.deepEqual(
        (await listHosts(server.url, 'bad-line')).hosts.map((host) => host.ip_address),
        ['10.0.0.5'],
      );
    });
  });
}

describe('requests that arrive while the server closes', () => {
  test('are answered 503 with a JSON error and Connection: close, after the request in flight is answered', async () => {
    const server = await startRegistry();
    const socket = connect(Number(new URL(server.url).port), '127.0.0.1');
    await once(socket, 'connect');
    const body = form({ ip: '10.0.0.9', port: 8080, revision: 'r1', tags: TAGS }).toString();
    // A heartbeat whose body is still on its way when the close begins, then a read behind it.
    socket.write(
      `POST /v1/registration/closing HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = server.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.write(`${body.slice(10)}GET /v1/registration/closing HTTP/1.1\r\nHost: x\r\n\r\n`);
    const ended = once(socket, 'close');
    const timer = setTimeout(() => socket.destroy(), 5000);
    await ended;
    clearTimeout(timer);
    await closed;
    const answers = received.split(/(?=HTTP\/1\.1 \d{3} )/).filter((answer) => answer !== '');
    assert.equal(answers.length, 2, received);
    assert.match(answers[0] ?? '', /^HTTP\/1\.1 200 /);
    assert.match(answers[1] ?? '', /^HTTP\/1\.1 503 /);
    assert.match((answers[1] ?? '').toLowerCase(), /connection: close/);
    const [, json = ''] = (answers[1] ?? '').split('\r\n\r\n');
    assert.deepEqual(Object.keys(JSON.parse(json) as object), ['error']);
  });
});
