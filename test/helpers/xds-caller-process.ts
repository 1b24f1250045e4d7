import { fork } from 'node:child_process';
import { once } from 'node:events';

/** A gRPC xDS client running in its own process (see `startXdsCaller`). */
export interface XdsCaller {
  /** Makes `count` WHO calls in a row; resolves with who answered each (`error` for a failed call). */
  call(count: number, timeoutMs?: number): Promise<string[]>;
  /** Everything the child wrote to stderr, for failure messages. */
  stderr(): string;
  /** Ends the child; SIGKILLs it after a few seconds. */
  close(): Promise<void>;
}

/** How long close waits for the child to leave before SIGKILL. */
const CLOSE_GRACE_MS = 3000;

/**
 * Runs @grpc/grpc-js-xds dialling `target` with `bootstrap` in a child process. A child, because
 * grpc-js-xds's priority balancer keeps a priority it left (after a failover) for 15 minutes on
 * a timer that holds the process open: a test process whose client failed over could not exit
 * until then. Killing the child ends it at once.
 */
export async function startXdsCaller(bootstrap: object, target: string): Promise<XdsCaller> {
  const child = fork(new URL('./xds-caller-child.js', import.meta.url), [], {
    env: { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap), XDS_CALLER_TARGET: target },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  const pending = new Map<number, (names: string[]) => void>();
  child.on('message', (message: { id: number; names: string[] }) => {
    pending.get(message.id)?.(message.names);
    pending.delete(message.id);
  });
  await once(child, 'spawn');
  let nextId = 1;
  return {
    call(count, timeoutMs = 30_000) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`xDS caller did not answer ${count} calls within ${timeoutMs} ms:\n${stderr}`));
        }, timeoutMs);
        pending.set(id, (names) => {
          clearTimeout(timer);
          resolve(names);
        });
        child.send({ id, count });
      });
    },
    stderr: () => stderr,
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), CLOSE_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
  };
}
