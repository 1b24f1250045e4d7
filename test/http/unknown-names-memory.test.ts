import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { startDiscovery } from '../helpers/discovery-process.js';

/**
 * Reads by strangers cannot grow memory without bound: every distinct name read with
 * `GET /v1/registration/:service` used to stay cached with its encoded body (229,857 unknown
 * names took a process from 290 to 586 MB, never released). A real server process, so the
 * resident memory measured is the server's own and nothing of the test's.
 */

const WARM_UP_NAMES = 20_000;
const NAMES = 200_000;
/** The bound: 200,000 unknown names leave resident memory within this of where it was after the warm-up. */
const GROWTH_MAX_MB = 50;
/** Keep-alive connections, each with PIPELINE requests in flight: 16 at once, enough to keep the server busy, modest on 2 shared cores. */
const CONNECTIONS = 4;
const PIPELINE = 4;
/** Both phases of one run; 200,000 cached GETs take a few seconds at the speed the fast path answers. */
const TIME_LIMIT_MS = 90_000;

function residentMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/**
 * GETs `count` distinct names `<prefix>-<n>` over CONNECTIONS keep-alive connections, each
 * sending PIPELINE requests at a time (HTTP/1.1 pipelining: the server answers them in order),
 * until done or `deadline`; returns how many were answered 200. Raw sockets rather than
 * http.Agent, so the test's own client costs little of the two shared cores.
 */
async function readNames(baseUrl: string, prefix: string, count: number, deadline: number): Promise<number> {
  const { hostname, port } = new URL(baseUrl);
  let next = 0;
  let answered = 0;
  const connection = () =>
    new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), hostname);
      let pending: Buffer = Buffer.alloc(0);
      let outstanding = 0;
      const sendBatch = () => {
        if (next >= count || Date.now() >= deadline) {
          socket.end();
          return;
        }
        let batch = '';
        for (; outstanding < PIPELINE && next < count; outstanding++)
          batch += `GET /v1/registration/${prefix}-${next++} HTTP/1.1\r\nHost: x\r\n\r\n`;
        socket.write(batch);
      };
      socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
      socket.on('connect', sendBatch);
      socket.on('data', (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        let offset = 0;
        for (;;) {
          const headEnd = pending.indexOf('\r\n\r\n', offset);
          if (headEnd < 0) break;
          const head = pending.toString('latin1', offset, headEnd);
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? Number.NaN);
          if (!Number.isInteger(length))
            return socket.destroy(new Error(`no content-length in ${JSON.stringify(head)}`));
          if (pending.length < headEnd + 4 + length) break;
          if (!head.startsWith('HTTP/1.1 200 ')) return socket.destroy(new Error(`answered ${head.split('\r\n')[0]}`));
          answered++;
          outstanding--;
          offset = headEnd + 4 + length;
        }
        pending = pending.subarray(offset);
        if (outstanding === 0) sendBatch();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve());
    });
  await Promise.all(Array.from({ length: CONNECTIONS }, connection));
  return answered;
}

for (const [label, settings] of [
  ['default settings', {}],
  ['CACHE_TYPE=simple', { CACHE_TYPE: 'simple' }],
] as const) {
  describe(`reads of unknown services (${label})`, { timeout: TIME_LIMIT_MS + 40_000 }, () => {
    test(`${NAMES.toLocaleString('en')} distinct unknown names leave resident memory within ${GROWTH_MAX_MB} MB`, async (t) => {
      const server = await startDiscovery({ BACKEND_STORAGE: 'InMemory', ...settings });
      try {
        const pid = server.child.pid as number;
        const deadline = Date.now() + TIME_LIMIT_MS;
        const startedMb = residentMb(pid);
        // The warm-up sets the heap's working size (young generation, code, buffers) before the baseline.
        assert.equal(
          await readNames(server.url, 'warm', WARM_UP_NAMES, deadline),
          WARM_UP_NAMES,
          'warm-up finished in time',
        );
        const baselineMb = residentMb(pid);
        const started = Date.now();
        const answered = await readNames(server.url, 'stranger', NAMES, deadline);
        const seconds = (Date.now() - started) / 1000;
        assert.equal(answered, NAMES, `only ${answered} names read within the time limit`);
        const endMb = residentMb(pid);
        t.diagnostic(
          `rss: ${startedMb.toFixed(0)} MB at start, ${baselineMb.toFixed(0)} MB after ${WARM_UP_NAMES} names, ` +
            `${endMb.toFixed(0)} MB after ${NAMES} more (+${(endMb - baselineMb).toFixed(1)} MB) in ${seconds.toFixed(1)} s`,
        );
        assert.ok(endMb - baselineMb < GROWTH_MAX_MB, `resident memory grew by ${(endMb - baselineMb).toFixed(1)} MB`);

        // An unknown name still gets the answer it always got.
        const response = await fetch(`${server.url}/v1/registration/stranger-17`);
        assert.equal(response.status, 200);
        assert.match(response.headers.get('etag') ?? '', /^W\/"/);
        assert.deepEqual(await response.json(), { env: 'development', hosts: [], service: 'stranger-17' });
      } finally {
        await server.stop();
      }
    });
  });
}
