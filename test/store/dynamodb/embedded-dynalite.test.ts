import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { runDiscoveryToExit, startDiscovery, type DiscoveryProcess } from '../../helpers/discovery-process.js';
import { registerOrThrow } from '../../helpers/registry.js';
import { tempDir } from '../../helpers/temp-dir.js';

const DEFAULTS = { APPLICATION_ENV: 'development' }; // BACKEND_STORAGE defaults to DynamoDB, DYNAMODB_URL to empty

async function hostsOf(discovery: DiscoveryProcess, service: string): Promise<string[]> {
  const response = await fetch(`${discovery.url}/v1/registration/${service}`);
  assert.equal(response.status, 200);
  const body = (await response.json()) as { hosts: { ip_address: string }[] };
  return body.hosts.map((host) => host.ip_address);
}

describe('embedded DynamoDB-compatible store (development defaults)', () => {
  test('two processes with their own APPLICATION_DIR each start one, side by side, and keep their data across restarts', async () => {
    const dirA = await tempDir();
    const dirB = await tempDir();
    const started: DiscoveryProcess[] = [];
    try {
      const [a, b] = await Promise.all([
        startDiscovery({ ...DEFAULTS, APPLICATION_DIR: dirA.path }),
        startDiscovery({ ...DEFAULTS, APPLICATION_DIR: dirB.path }),
      ]);
      started.push(a, b);
      for (const discovery of [a, b]) {
        const embeddedLines = discovery.stdout.filter((line) => /embedded/i.test(line));
        assert.equal(embeddedLines.length, 1, discovery.stdout.join('\n'));
        assert.match(embeddedLines[0] ?? '', /dynalite.*http:\/\/127\.0\.0\.1:\d+/);
      }
      await access(path.join(dirA.path, 'data', 'dynalite'));
      await registerOrThrow(a.url, 'users', { ip: '10.0.0.1' });
      await registerOrThrow(b.url, 'users', { ip: '10.0.0.2' });
      assert.deepEqual(await hostsOf(a, 'users'), ['10.0.0.1']);
      assert.deepEqual(await hostsOf(b, 'users'), ['10.0.0.2']);

      assert.equal(await a.stop(), 0);
      const again = await startDiscovery({ ...DEFAULTS, APPLICATION_DIR: dirA.path });
      started.push(again);
      assert.deepEqual(await hostsOf(again, 'users'), ['10.0.0.1']);
    } finally {
      for (const discovery of started) await discovery.stop();
      await dirA.remove();
      await dirB.remove();
    }
  });

  /** Starts in production with no AWS settings but `settings`, and expects exit 1 with one `discovery:` line matching `expected`. */
  async function expectOneStartUpLine(settings: Record<string, string>, expected: RegExp): Promise<void> {
    const home = await tempDir();
    try {
      const result = await runDiscoveryToExit({
        APPLICATION_ENV: 'production',
        HOME: home.path,
        AWS_CONFIG_FILE: path.join(home.path, 'no-config'),
        AWS_SHARED_CREDENTIALS_FILE: path.join(home.path, 'no-credentials'),
        ...settings,
      });
      assert.equal(result.code, 1);
      const ours = result.stderr.filter((line) => line.startsWith('discovery:'));
      assert.equal(ours.length, 1, result.stderr.join('\n'));
      assert.match(ours[0] ?? '', expected);
      assert.ok(!result.stderr.some((line) => /^\s+at /.test(line)), 'no stack trace');
    } finally {
      await home.remove();
    }
  }

  test('production without DYNAMODB_URL and without a region stops start-up with one clear line', async () => {
    await expectOneStartUpLine({}, /region.*AWS_REGION/);
  });

  test('production with a region but no credentials stops start-up with one clear line', async () => {
    await expectOneStartUpLine({ AWS_REGION: 'eu-west-1' }, /credentials/);
  });
});
