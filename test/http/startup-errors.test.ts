import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { runDiscoveryToExit, startDiscovery } from '../helpers/discovery-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/** A real listener on a loopback port, so the port is taken for as long as it runs. */
async function takePort(): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The pid of a process that has exited: nothing runs under it now (until the kernel reuses it). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await once(child, 'exit');
  return child.pid!;
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** One line on stderr, naming what it must, and nothing that looks like a stack trace or a "listening". */
function assertOneLine(
  result: { code: number | null; stdout: string[]; stderr: string[] },
  ...mustName: (string | RegExp)[]
): string {
  assert.equal(result.code, 1, result.stderr.join('\n'));
  assert.equal(result.stderr.length, 1, `one line on stderr, got:\n${result.stderr.join('\n')}`);
  const line = result.stderr[0]!;
  assert.match(line, /^discovery: /);
  for (const name of mustName) {
    if (typeof name === 'string') assert.ok(line.includes(name), `"${line}" names ${name}`);
    else assert.match(line, name);
  }
  const everything = [...result.stdout, ...result.stderr].join('\n');
  assert.doesNotMatch(everything, /listening/i, 'nothing says "listening"');
  assert.doesNotMatch(everything, /^\s+at /m, 'no stack trace');
  return line;
}

describe('start-up errors say what to do', () => {
  test('a taken PORT stops start-up with one line naming PORT and the fix; nothing says "listening"', async () => {
    const taken = await takePort();
    try {
      const result = await runDiscoveryToExit({ BACKEND_STORAGE: 'InMemory', PORT: String(taken.port) });
      assertOneLine(result, `PORT=${taken.port}`, 'already in use', 'set PORT to a free port');
    } finally {
      await taken.close();
    }
  });

  test('a taken XDS_PORT stops start-up with one line naming XDS_PORT; nothing says "listening" and the HTTP port is let go', async () => {
    const taken = await takePort();
    try {
      const result = await runDiscoveryToExit({ BACKEND_STORAGE: 'InMemory', XDS_PORT: String(taken.port) });
      const line = assertOneLine(result, `XDS_PORT=${taken.port}`, 'already in use', 'XDS_ENABLED=false');
      assert.doesNotMatch(line, /No address added/, "grpc-js's own wording is not the message");
    } finally {
      await taken.close();
    }
  });

  test('a LISTEN_ADDRESS that is not this machine names LISTEN_ADDRESS', async () => {
    // 192.0.2.0/24 is TEST-NET-1: documentation only, never assigned to an interface.
    const result = await runDiscoveryToExit({ BACKEND_STORAGE: 'InMemory', LISTEN_ADDRESS: '192.0.2.123' });
    assertOneLine(result, 'LISTEN_ADDRESS=192.0.2.123', 'not an address of this machine');
  });

  for (const backend of ['InFile', 'DynamoDB'] as const) {
    const what = backend === 'DynamoDB' ? 'the embedded DynamoDB-compatible store' : 'InFile';
    test(`${what}: a second process on the same APPLICATION_DIR is refused with one line naming it and the first process`, async () => {
      const dir = await tempDir();
      const env = { BACKEND_STORAGE: backend, APPLICATION_DIR: dir.path };
      const first = await startDiscovery(env);
      try {
        const second = await runDiscoveryToExit(env);
        assertOneLine(second, 'APPLICATION_DIR', dir.path, `pid ${first.child.pid}`, 'one process per APPLICATION_DIR');
        assert.doesNotMatch(second.stderr[0]!, /Database is closed/);
        // The first is untouched by the attempt.
        assert.equal((await fetch(`${first.url}/healthcheck`)).status, 200);
      } finally {
        assert.equal(await first.stop('SIGTERM'), 0);
      }
      assert.equal(await exists(path.join(dir.path, 'data', 'discovery.lock')), false, 'a clean stop removes the lock');
      const again = await startDiscovery(env);
      assert.equal(await again.stop('SIGTERM'), 0);
      await dir.remove();
    });
  }

  test('a lock left by a process that died (same host, pid gone) is taken over with a warning', async () => {
    const dir = await tempDir();
    const lockFile = path.join(dir.path, 'data', 'discovery.lock');
    await mkdir(path.dirname(lockFile), { recursive: true });
    const pid = await deadPid();
    await writeFile(lockFile, JSON.stringify({ pid, host: hostname(), since: '2026-01-01T00:00:00Z', token: 'old' }));
    const server = await startDiscovery({ BACKEND_STORAGE: 'InFile', APPLICATION_DIR: dir.path });
    try {
      assert.match(server.output(), new RegExp(`taking over the lock .*pid ${pid} that took it is no longer running`));
      assert.equal(JSON.parse(await readFile(lockFile, 'utf8')).pid, server.child.pid);
    } finally {
      assert.equal(await server.stop('SIGTERM'), 0);
    }
    await dir.remove();
  });

  test('a lock freshly refreshed by a process on another host is refused, saying when it frees itself', async () => {
    const dir = await tempDir();
    const lockFile = path.join(dir.path, 'data', 'discovery.lock');
    await mkdir(path.dirname(lockFile), { recursive: true });
    await writeFile(
      lockFile,
      JSON.stringify({ pid: 7, host: 'replica-b', since: '2026-01-01T00:00:00Z', token: 'theirs' }),
    );
    const result = await runDiscoveryToExit({ BACKEND_STORAGE: 'InFile', APPLICATION_DIR: dir.path });
    assertOneLine(result, 'pid 7 on host replica-b', 'the lock is free 30 s after its last refresh');
    await dir.remove();
  });
});
