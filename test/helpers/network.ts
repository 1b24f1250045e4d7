import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { StorageUnavailableError } from '../../src/errors.js';
import type { Heartbeat } from '../../src/hosts/model.js';
import { MemoryHostStore } from '../../src/store/memory-host-store.js';

/** A loopback port that was free a moment ago: for a server started later, or for nothing listening at all. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/** A real HTTP server that accepts requests and never answers them, to exercise client timeouts. */
export async function startSilentServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(() => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The InMemory store whose heartbeats fail as an unreachable backend would while `down` is set: discovery then answers 503. */
export class FlakyHostStore extends MemoryHostStore {
  down = false;
  override async heartbeat(heartbeat: Heartbeat) {
    if (this.down) throw new StorageUnavailableError('storage is down (test)');
    return super.heartbeat(heartbeat);
  }
}
