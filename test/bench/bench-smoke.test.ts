import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseWrk } from '../../bench/lib/wrk.js';

const run = promisify(execFile);
const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/run.js');

test('wrk output is parsed into requests/s and percentiles', () => {
  const parsed = parseWrk(`Running 1s test @ http://127.0.0.1:1/
  1 threads and 50 connections
  Latency Distribution
     50%  512.00us
     75%    1.20ms
     90%    2.00ms
     99%    1.10s
  61234 requests in 1.00s, 1.20GB read
  Non-2xx or 3xx responses: 3
Requests/sec:  61234.56
Transfer/sec:      1.20GB
`);
  assert.equal(parsed.requestsPerSecond, 61234.56);
  assert.equal(parsed.p50Ms, 0.512);
  assert.equal(parsed.p99Ms, 1100);
  assert.equal(parsed.non2xx, 3);
});

test('the benchmark runs end to end (a one-second smoke run, not a measurement)', async () => {
  const { stdout } = await run(
    process.execPath,
    [BENCH, '--quick', '--only', 'get-304,post-inmemory', '--seconds', '1'],
    { timeout: 90_000 },
  );
  assert.match(
    stdout,
    /\| GET answered 304 through If-None-Match, 100 hosts, InMemory \| [\d,]+ \| [\d,]+ \| \d+\.\d\d× \|/,
  );
  assert.match(stdout, /\| POST heartbeats of 10,000 distinct hosts, InMemory \| [\d,]+ \| [\d,]+ \|/);
});

test('the replica benchmark runs end to end and prints both runs (a tiny run, not a measurement)', async () => {
  const replicas = path.resolve(path.dirname(BENCH), 'replicas.js');
  const { stdout } = await run(
    process.execPath,
    [replicas, '--services', '10', '--idle-seconds', '2', '--changes', '3'],
    {
      timeout: 180_000,
    },
  );
  assert.match(stdout, /\| change feed \(default\) \| \d+\.\d\d \/ \d+\.\d\d \|.*\| \d+ ms \| \d+ ms \| \d+ ms \|/);
  assert.match(stdout, /\| CHANGE_FEED=false \(poll every 1 s\) \| \d+\.\d\d \/ \d+\.\d\d \|/);
});
