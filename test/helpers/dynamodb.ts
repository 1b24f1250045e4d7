import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { randomUUID } from 'node:crypto';
import { after, before } from 'node:test';
import { createDynamoDbClient } from '../../src/store/dynamodb/dynamodb-client.js';
import { DynamoDbHostStore } from '../../src/store/dynamodb/dynamodb-host-store.js';
import { startEmbeddedDynamoDb, type EmbeddedDynamoDb } from '../../src/store/dynamodb/embedded-dynalite.js';
import { ensureHostsTable } from '../../src/store/dynamodb/hosts-table.js';
import { ORIGINAL_REPO_INDEX_NAME } from '../../src/store/dynamodb/item-layout.js';
import { createTableAsOriginal } from './original-service.js';
import type { Log } from '../../src/logger.js';

/** A logger that drops everything, for tests that do not look at log lines. */
export const silentLog: Log = { debug() {}, info() {}, warn() {}, error() {} };

/** A real dynalite server on a free 127.0.0.1 port, in memory unless a folder is given. */
export function startDynalite(directory?: string, port?: number): Promise<EmbeddedDynamoDb> {
  return startEmbeddedDynamoDb({ directory, port });
}

/** A client for a test server: small timeout so fault tests stay short. */
export function testClient(endpoint: string, requestTimeoutMs = 3000): DynamoDBClient {
  return createDynamoDbClient({ endpoint, maxSockets: 50, requestTimeoutMs });
}

/** A table name no other test uses. */
export function freshTableName(): string {
  return `hosts-${randomUUID()}`;
}

export interface OpenedStore {
  readonly store: DynamoDbHostStore;
  readonly client: DynamoDBClient;
  readonly tableName: string;
  dispose(): Promise<void>;
}

/**
 * A store over a new table on `endpoint`. `prepare` runs on its client before use (add
 * middleware). Dispose closes the store and deletes the table through a separate client.
 */
export async function openStore(
  endpoint: string,
  options: {
    tableName?: string;
    requestTimeoutMs?: number;
    hostTtlSeconds?: number;
    prepare?(client: DynamoDBClient): void;
    /** `original`: a table created as the original's pynamodb model creates it, written in its layout. */
    layout?: 'original' | 'discovery';
  } = {},
): Promise<OpenedStore> {
  const tableName = options.tableName ?? freshTableName();
  const requestTimeoutMs = options.requestTimeoutMs ?? 3000;
  const client = testClient(endpoint, requestTimeoutMs);
  if (options.layout === 'original') {
    // A table already there (a reopen) is kept as it is.
    await createTableAsOriginal(client, tableName).catch((error: unknown) => {
      if (!(error instanceof Error && error.name === 'ResourceInUseException')) throw error;
    });
  } else {
    await ensureHostsTable(client, tableName, silentLog);
  }
  options.prepare?.(client);
  const store = new DynamoDbHostStore({
    client,
    tableName,
    hostTtlSeconds: options.hostTtlSeconds ?? 600,
    requestTimeoutMs,
    shape: options.layout === 'original' ? { layout: 'original', repoIndexName: ORIGINAL_REPO_INDEX_NAME } : undefined,
  });
  return {
    store,
    client,
    tableName,
    async dispose() {
      await store.close();
      const admin = testClient(endpoint);
      try {
        await admin.send(new DeleteTableCommand({ TableName: tableName }));
      } catch {
        // the server may already be gone (fault tests stop it)
      } finally {
        admin.destroy();
      }
    },
  };
}

/**
 * For a suite (or a file, called at its top level): a dynalite of its own started before its
 * tests and one store over a fresh table, both gone after them. Returns the store's getter.
 */
export function dynaliteStoreForSuite(): () => OpenedStore {
  let dynamo: EmbeddedDynamoDb | undefined;
  let opened: OpenedStore | undefined;
  before(async () => {
    dynamo = await startDynalite();
    opened = await openStore(dynamo.endpoint);
  });
  after(async () => {
    await opened?.dispose();
    await dynamo?.close();
  });
  return () => {
    if (!opened) throw new Error('the suite store is opened in a before hook: use it inside a test');
    return opened;
  };
}
