import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { startDiscovery } from '../helpers/discovery-process.js';
import { listHosts, register } from '../helpers/registry.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUILT_MAIN = new URL('../../src/main.js', import.meta.url);

/** Whether something accepts connections on 127.0.0.1:port right now. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

test('`npm start` runs the build as it is (no rebuild) and SIGTERM sent to npm stops the server', async () => {
  const before = await stat(BUILT_MAIN);
  // The README's command, as a child of its own: the signal goes to npm's process, not to node's.
  const server = await startDiscovery(
    { BACKEND_STORAGE: 'InMemory', XDS_ENABLED: 'false', HOME: process.env.HOME ?? '' },
    { command: ['npm', 'start'], cwd: ROOT, startTimeoutMs: 120_000 },
  );
  const port = Number(new URL(server.url).port);
  try {
    assert.equal((await register(server.url, 'users')).status, 200);
    assert.equal((await listHosts(server.url, 'users')).hosts.length, 1);
  } finally {
    assert.equal(await server.stop('SIGTERM'), 0, server.output());
  }
  // npm has exited: the server it started must be gone with it, its port free.
  assert.equal(await listening(port), false, `something still listens on ${port} after npm start exited`);
  assert.match(server.output(), /"signal":"SIGTERM".*shutting down/);
  // Sources unchanged since the build the tests run from: nothing was rebuilt.
  assert.equal((await stat(BUILT_MAIN)).mtimeMs, before.mtimeMs);
});
