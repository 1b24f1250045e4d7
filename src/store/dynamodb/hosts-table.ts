import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  type DynamoDBClient,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../../config.js';
import type { Log } from '../../logger.js';
import { EXPIRES_AT_ATTRIBUTE, REPO_INDEX_NAME } from './dynamodb-host-store.js';

/**
 * Creating a table with an index takes AWS a few seconds to a few minutes; past this, start-up
 * fails with a clear line rather than waiting forever.
 */
const TABLE_ACTIVE_WAIT_SECONDS = 300;

/**
 * Makes sure the hosts table exists with its repo index and TTL, creating what is missing.
 * Idempotent, and safe when several replicas start at once (a table another one is creating
 * is waited for). Returns once the table is ACTIVE.
 */
export async function ensureHostsTable(client: DynamoDBClient, tableName: string, log: Log): Promise<void> {
  let table = await describe(client, tableName);
  if (!table) {
    try {
      await client.send(new CreateTableCommand(hostsTableDefinition(tableName)));
      log.info({ table: tableName }, `created DynamoDB table ${tableName}`);
    } catch (error) {
      // Another replica created it between our describe and create: wait for it like for ours.
      if (!(error instanceof Error && error.name === 'ResourceInUseException')) throw error;
    }
  }
  if (table?.TableStatus !== 'ACTIVE') {
    await waitUntilTableExists(
      { client, minDelay: 1, maxDelay: 5, maxWaitTime: TABLE_ACTIVE_WAIT_SECONDS },
      { TableName: tableName },
    );
    table = await describe(client, tableName);
  }
  if (!table?.GlobalSecondaryIndexes?.some((index) => index.IndexName === REPO_INDEX_NAME)) {
    throw new ConfigError(
      `DynamoDB table ${tableName} has no global secondary index ${REPO_INDEX_NAME} (hash service_repo_name, range ip_address): add it, or use a new table name in DYNAMODB_TABLE_HOSTS`,
    );
  }
  await enableTimeToLive(client, tableName, log);
}

/** The hosts table: on-demand capacity, so nobody has to size it, and the repo index projecting every attribute. */
export function hostsTableDefinition(tableName: string): ConstructorParameters<typeof CreateTableCommand>[0] {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: 'service', AttributeType: 'S' },
      { AttributeName: 'ip_address', AttributeType: 'S' },
      { AttributeName: 'service_repo_name', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'service', KeyType: 'HASH' },
      { AttributeName: 'ip_address', KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: REPO_INDEX_NAME,
        KeySchema: [
          { AttributeName: 'service_repo_name', KeyType: 'HASH' },
          { AttributeName: 'ip_address', KeyType: 'RANGE' },
        ],
        // ALL: a repo listing is served by the index alone, with no read of the table per host.
        Projection: { ProjectionType: 'ALL' },
      },
    ],
  };
}

async function describe(client: DynamoDBClient, tableName: string): Promise<TableDescription | undefined> {
  try {
    return (await client.send(new DescribeTableCommand({ TableName: tableName }))).Table;
  } catch (error) {
    if (error instanceof Error && error.name === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

/**
 * Lets DynamoDB delete hosts dead for long even if nobody reads their service. Reads filter
 * expired hosts anyway, so a server without TTL support (dynalite) only costs a log line.
 */
async function enableTimeToLive(client: DynamoDBClient, tableName: string, log: Log): Promise<void> {
  const current = await client.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
  const status = current.TimeToLiveDescription?.TimeToLiveStatus;
  if (status === 'ENABLED' || status === 'ENABLING') return;
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { Enabled: true, AttributeName: EXPIRES_AT_ATTRIBUTE },
      }),
    );
    log.info(
      { table: tableName, attribute: EXPIRES_AT_ATTRIBUTE },
      `enabled DynamoDB TTL on ${tableName}.${EXPIRES_AT_ATTRIBUTE}`,
    );
  } catch (error) {
    if (!(error instanceof Error && error.name === 'UnknownOperationException')) throw error;
    log.info({ table: tableName }, 'this DynamoDB-compatible server has no TTL; expired hosts are removed when read');
  }
}
