import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { startDiscovery, type DiscoveryProcess } from '../helpers/discovery-process.js';
import { listHosts, register } from '../helpers/registry.js';
import { tempDir } from '../helpers/temp-dir.js';

const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);
const major = Number(process.versions.node.split('.')[0]);

/** Stops the server and waits until both pipes are drained, so that nothing it wrote is missed. */
async function stopAndDrain(server: DiscoveryProcess): Promise<number | null> {
  const closed = server.child.exitCode === null ? once(server.child, 'close') : Promise.resolve();
  const code = await server.stop('SIGTERM');
  await closed;
  return code;
}

test("package.json's engines names the Node.js major the server checks for", async () => {
  const { engines } = JSON.parse(await readFile(PACKAGE_JSON, 'utf8')) as { engines: { node: string } };
  const { SUPPORTED_NODE_MAJOR } = await import('../../src/node-support.js');
  assert.equal(engines.node, `>=${SUPPORTED_NODE_MAJOR}`);
});

test(`a started server writes nothing to stderr on this Node.js (${process.version}), the AWS SDK included`, async () => {
  const dir = await tempDir();
  // The default backend: DynamoDB, embedded in development. Building its AWS SDK client is what
  // prints the SDK's Node.js support warning.
  const server = await startDiscovery({ APPLICATION_DIR: dir.path });
  try {
    assert.equal((await register(server.url, 'users')).status, 200);
    assert.equal((await listHosts(server.url, 'users')).hosts.length, 1);
  } finally {
    assert.equal(await stopAndDrain(server), 0);
    await dir.remove();
  }
  assert.deepEqual(server.stderr, []);
  const unsupported = server.stdout.filter((line) => /not supported/.test(line));
  if (major >= 22) {
    assert.deepEqual(unsupported, []);
  } else {
    // One line, through the logger, then the server runs as usual.
    assert.equal(unsupported.length, 1, server.stdout.join('\n'));
    const line = JSON.parse(unsupported[0]!) as { level: number; msg: string; node: string };
    assert.equal(line.level, 40);
    assert.equal(line.node, process.version);
    assert.match(line.msg, new RegExp(`Node\\.js ${process.version.replace(/\./g, '\\.')} is not supported.*22`));
  }
});
