import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A DynamoDB-compatible server (dynalite) running in this process on loopback. */
export interface EmbeddedDynamoDb {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  readonly port: number;
  /** Stops accepting connections, drops open ones and closes the database. Idempotent. */
  close(): Promise<void>;
}

export interface EmbeddedDynamoDbOptions {
  /** LevelDB folder, created when missing; in memory when undefined. */
  readonly directory?: string;
  /** 0 (the default) picks a free port, so several processes can each run their own. */
  readonly port?: number;
}

/** dynalite is missing: an install without optional packages (`npm install --omit=optional`). */
export class EmbeddedStoreMissingError extends Error {
  constructor() {
    super(
      'the embedded DynamoDB-compatible store needs the optional package dynalite, which is not installed (an install with --omit=optional); install it, set DYNAMODB_URL to a DynamoDB-compatible server, set APPLICATION_ENV=production to use AWS, or choose another BACKEND_STORAGE',
    );
    this.name = 'EmbeddedStoreMissingError';
  }
}

/**
 * dynalite is loaded only here, when the embedded store is used: production runs against DynamoDB
 * itself, and the package lists dynalite (with its LevelDB) as optional.
 */
async function loadDynalite(): Promise<typeof import('dynalite').default> {
  try {
    return (await import('dynalite')).default;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' && /'dynalite'/.test(String((error as Error).message)))
      throw new EmbeddedStoreMissingError();
    throw error;
  }
}

/**
 * Starts dynalite on 127.0.0.1 only: it checks no credentials, so it must never be reachable
 * from another machine. Tables become ACTIVE at once (no simulated creation delay).
 */
export async function startEmbeddedDynamoDb(options: EmbeddedDynamoDbOptions = {}): Promise<EmbeddedDynamoDb> {
  const dynalite = await loadDynalite();
  if (options.directory !== undefined) await mkdir(options.directory, { recursive: true });
  const server = dynalite({
    ...(options.directory !== undefined ? { path: options.directory } : {}),
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: () => (closing ??= closeServer(server)),
  };
}

async function closeServer(server: Server): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    // close() waits for every open connection to end; clients keep theirs alive, so end them now.
    server.closeAllConnections();
  });
}
