import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import path from 'node:path';
import type { Log } from '../../logger.js';
import type { HostStore } from '../../hosts/host-store.js';
import { createDynamoDbClient } from './dynamodb-client.js';
import { DynamoDbHostStore, type TableShape } from './dynamodb-host-store.js';
import { lockApplicationDir } from '../directory-lock.js';
import { EmbeddedStoreMissingError, startEmbeddedDynamoDb, type EmbeddedDynamoDb } from './embedded-dynalite.js';
import { ensureHostsTable, learnTableShape } from './hosts-table.js';
import { ConfigError, StorageUnavailableError } from '../../errors.js';
import type { ItemLayout } from './item-layout.js';

/** The DynamoDB settings (`DYNAMODB_*`, `AWS_REGION`, `CONNECTION_POOL_SIZE`), read by config.ts. */
export interface DynamoDbSettings {
  readonly tableHosts: string;
  /**
   * Endpoint of a local DynamoDB-compatible server (static dummy credentials). Empty: the
   * embedded store when `applicationEnv` is `development`, else AWS itself.
   */
  readonly url: string;
  readonly createTablesInApp: boolean;
  readonly connectionPoolSize: number;
  readonly region: string;
  /** Milliseconds one DynamoDB call may take, retries included, before the request fails with 503. */
  readonly requestTimeoutMs: number;
  /**
   * `DYNAMODB_ITEM_LAYOUT`: how items are written, `original` (the original service's pynamodb
   * model, so it can read them) or `discovery` (ours); undefined: learnt from the table at
   * start-up (docs/migrating.md).
   */
  readonly itemLayout: ItemLayout | undefined;
}

/** What opening the DynamoDB backend needs of the validated settings (config.ts's `Config` has all of it). */
export interface DynamoDbStoreSettings {
  readonly applicationDir: string;
  /** `development` with no `DYNAMODB_URL` starts the embedded store. */
  readonly applicationEnv: string;
  readonly hostTtlSeconds: number;
  readonly dynamodb: DynamoDbSettings;
}

/**
 * Opens the DynamoDB backend the settings describe:
 * - `DYNAMODB_URL` set: that DynamoDB-compatible server (dummy credentials);
 * - unset in `development`: an embedded dynalite on a free loopback port, persisted under
 *   `APPLICATION_DIR/data/dynalite`, with the table created;
 * - unset elsewhere: AWS, region and credentials from the standard chain, both resolved now so
 *   that a missing one is a start-up error (ConfigError), not a failure of the first request.
 * The table is created when missing if `DYNAMODB_CREATE_TABLES_IN_APP` is set (always when embedded).
 */
export async function createDynamoDbStore(config: DynamoDbStoreSettings, log: Log): Promise<HostStore> {
  const settings = config.dynamodb;
  let endpoint: string | undefined = settings.url === '' ? undefined : settings.url;
  let embedded: EmbeddedDynamoDb | undefined;
  const dataDirectory = path.join(config.applicationDir, 'data', 'dynalite');
  if (endpoint === undefined && config.applicationEnv === 'development') {
    // LevelDB refuses a second opener only after dynalite has started, with "Database is closed".
    const lock = await lockApplicationDir(config.applicationDir, log);
    try {
      const server = await startEmbeddedDynamoDb({ directory: dataDirectory });
      embedded = {
        ...server,
        close: async () => {
          await server.close();
          await lock.release();
        },
      };
    } catch (error) {
      await lock.release();
      if (error instanceof EmbeddedStoreMissingError) throw new ConfigError(error.message);
      throw new ConfigError(
        `could not start the embedded DynamoDB-compatible store in ${dataDirectory}: ${describe(error)}`,
      );
    }
    endpoint = embedded.endpoint;
  }
  const client = createDynamoDbClient({
    endpoint,
    region: settings.region,
    maxSockets: settings.connectionPoolSize,
    requestTimeoutMs: settings.requestTimeoutMs,
  });
  const learn = () => learnTableShape(client, settings.tableHosts, settings.itemLayout, embedded ? quiet(log) : log);
  let shape: TableShape | (() => Promise<TableShape>);
  try {
    if (endpoint === undefined) await checkAwsSettings(client);
    if (settings.createTablesInApp || embedded) {
      await ensureHostsTable(client, settings.tableHosts, embedded ? quiet(log) : log, settings.itemLayout);
    }
    try {
      shape = await learn();
    } catch (error) {
      // Created or checked above: a failure now is DynamoDB itself, and stops start-up like one there.
      if (error instanceof ConfigError || settings.createTablesInApp || embedded) throw error;
      // A replica may start while DynamoDB is unreachable (it says it is not ready meanwhile):
      // the table is learnt, and checked, with the first call that needs it.
      log.warn(
        { err: error, table: settings.tableHosts },
        `storage unavailable at start-up: DynamoDB table ${settings.tableHosts} is described with the first request instead`,
      );
      shape = () => learnLater(learn, log);
    }
  } catch (error) {
    client.destroy();
    await embedded?.close();
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      `could not prepare DynamoDB table ${settings.tableHosts} at ${endpoint ?? 'AWS'}: ${describe(error)}`,
    );
  }
  if (embedded) {
    log.info(
      { endpoint, directory: dataDirectory, table: settings.tableHosts },
      `embedded DynamoDB-compatible store (dynalite) serving table ${settings.tableHosts} on ${endpoint}, data in ${dataDirectory}; set DYNAMODB_URL to use another server`,
    );
  }
  return new DynamoDbHostStore({
    client,
    tableName: settings.tableHosts,
    hostTtlSeconds: config.hostTtlSeconds,
    requestTimeoutMs: settings.requestTimeoutMs,
    onClose: embedded ? () => embedded.close() : undefined,
    shape,
  });
}

/**
 * The table learnt after start-up: unreachable is a 503 like any storage call's, tried again by
 * the next request; a table that cannot be served (no repo index, the wrong layout) is logged
 * and fails every call until fixed and restarted.
 */
async function learnLater(learn: () => Promise<TableShape>, log: Log): Promise<TableShape> {
  try {
    return await learn();
  } catch (error) {
    if (error instanceof ConfigError) {
      log.error({ err: error }, error.message);
      throw new Error(error.message, { cause: error });
    }
    throw new StorageUnavailableError(
      `Storage unavailable (DynamoDB DescribeTable: ${describe(error)}); retry later.`,
      {
        cause: error,
      },
    );
  }
}

/** Resolves region and credentials once, so that a missing one is one clear line at start-up. */
async function checkAwsSettings(client: DynamoDBClient): Promise<void> {
  try {
    await client.config.region();
  } catch {
    throw new ConfigError(
      'DynamoDB on AWS needs a region: set AWS_REGION (or a region in the AWS config profile), or set DYNAMODB_URL for a local DynamoDB-compatible server',
    );
  }
  try {
    await client.config.credentials();
  } catch (error) {
    throw new ConfigError(
      `DynamoDB on AWS needs credentials from the standard chain (environment, profile, web identity, container or instance role): ${describe(error)}`,
    );
  }
}

/** The embedded store's table set-up is part of its one start-up line, so its own lines go to debug. */
function quiet(log: Log): Log {
  return {
    debug: log.debug.bind(log),
    info: log.debug.bind(log),
    warn: log.warn.bind(log),
    error: log.error.bind(log),
  };
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const message = error.message || (error instanceof AggregateError ? error.errors.map(describe).join('; ') : '');
  return `${error.name}${message ? `: ${message}` : ''}`;
}
