import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BENCH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bench/xds-fanout.js');

test('the fan-out benchmark runs end to end and prints both figures (a tiny run, not a measurement)', async () => {
  const { stdout } = await run(
    process.execPath,
    [
      BENCH,
      '--streams',
      '50',
      '--services',
      '10',
      '--changes',
      '3',
      '--streams-per-channel',
      '20',
      '--timeout-ms',
      '60000',
    ],
    { timeout: 90_000 },
  );
  assert.match(
    stdout,
    /^50 EDS streams \(1 client process\), each watching 10 of 10 services; each change reaches 50 streams\./m,
  );
  assert.match(
    stdout,
    /^\| POST sent -> last watching stream has the endpoint \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \| 3 \|$/m,
  );
  assert.match(stdout, /^fanout p99: [\d.]+ ms$/m);
  assert.match(stdout, /^server RSS per stream: -?[\d.]+ KB /m);
  assert.match(stdout, /^bare grpc-js server RSS per stream: -?[\d.]+ KB /m);
  assert.match(
    stdout,
    /^\| bare grpc-js server: message written -> last of 50 streams has it \| [\d.]+ ms \| [\d.]+ ms \| [\d.]+ ms \| 3 \|$/m,
  );
});
