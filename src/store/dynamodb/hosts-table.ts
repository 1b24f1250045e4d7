import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  ScanCommand,
  UpdateTimeToLiveCommand,
  type ScanCommandOutput,
  waitUntilTableExists,
  type DynamoDBClient,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { ConfigError } from '../../errors.js';
import type { Log } from '../../logger.js';
import { CHANGE_LOG_PARTITION } from './dynamodb-change-log.js';
import { EXPIRES_AT_ATTRIBUTE, TAG_ATTRIBUTE_PREFIX, type TableShape } from './dynamodb-host-store.js';
import { DISCOVERY_REPO_INDEX_NAME, ORIGINAL_REPO_INDEX_NAME, TAGS_ATTRIBUTE, type ItemLayout } from './item-layout.js';

/**
 * Creating a table with an index takes AWS a few seconds to a few minutes; past this, start-up
 * fails with a clear line rather than waiting forever.
 */
const TABLE_ACTIVE_WAIT_SECONDS = 300;

/**
 * Makes sure the hosts table exists with a repo index and TTL, creating the table when it is
 * missing, with the repo index `layout` names (the original's name for its layout, so the
 * original can serve the table too). An existing table is never given a second index: one with
 * neither the original's index nor ours stops start-up. Idempotent, and safe when several
 * replicas start at once (a table another one is creating is waited for). Returns once the
 * table is ACTIVE.
 */
export async function ensureHostsTable(
  client: DynamoDBClient,
  tableName: string,
  log: Log,
  layout: ItemLayout = 'discovery',
): Promise<void> {
  let table = await describe(client, tableName);
  if (!table) {
    try {
      await client.send(new CreateTableCommand(hostsTableDefinition(tableName, repoIndexNameOf(layout))));
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
  if (table) repoIndexOf(table, tableName);
  await enableTimeToLive(client, tableName, log);
}

function repoIndexNameOf(layout: ItemLayout): string {
  return layout === 'original' ? ORIGINAL_REPO_INDEX_NAME : DISCOVERY_REPO_INDEX_NAME;
}

/**
 * The index repo queries use: the original's `service_repo_name_index` or ours, whichever the
 * table has; with both, the original's (both hold the same entries, and the original's is the
 * one that stays while the original may still serve the table). Neither: one line naming what to add.
 */
function repoIndexOf(table: TableDescription, tableName: string): string {
  const names = new Set((table.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName));
  if (names.has(ORIGINAL_REPO_INDEX_NAME)) return ORIGINAL_REPO_INDEX_NAME;
  if (names.has(DISCOVERY_REPO_INDEX_NAME)) return DISCOVERY_REPO_INDEX_NAME;
  throw new ConfigError(
    `DynamoDB table ${tableName} has no repo index: add a global secondary index ${ORIGINAL_REPO_INDEX_NAME} (hash service_repo_name S, range ip_address S, projection ALL), or use a new table name in DYNAMODB_TABLE_HOSTS`,
  );
}

/** Items start-up reads to tell which layout a table holds: one Scan page of a few KB. */
const SAMPLED_ITEMS = 64;
const SAMPLED_PAGES_MAX = 4;

/**
 * Learns the table's repo index (DescribeTable) and the layout to write: `configured`
 * (DYNAMODB_ITEM_LAYOUT) or, unset, what the table already is: the original's when it has the
 * original's index or holds items in the original's layout (a sample of a few items), else ours.
 * Refuses, with one line, our layout on a table holding items of the original's: the original
 * may still read that table, and would neither see tags and weights written as our attributes
 * nor keep them (its heartbeat puts the whole item back without them). The other way round is
 * the way back and loses nothing (a write in the original's layout folds our tag attributes
 * into `tags`), so it is allowed, with a line saying so.
 */
export async function learnTableShape(
  client: DynamoDBClient,
  tableName: string,
  configured: ItemLayout | undefined,
  log: Log,
): Promise<TableShape> {
  let table: TableDescription | undefined;
  try {
    table = await describe(client, tableName);
  } catch (error) {
    if (error instanceof Error && error.name === 'AccessDeniedException') {
      throw new ConfigError(
        `DynamoDB refused DescribeTable on table ${tableName}: grant dynamodb:DescribeTable on it, which start-up uses to learn the table's repo index`,
      );
    }
    throw error;
  }
  if (!table) {
    throw new ConfigError(
      `DynamoDB table ${tableName} does not exist: create it, or start with DYNAMODB_CREATE_TABLES_IN_APP=true`,
    );
  }
  const repoIndexName = repoIndexOf(table, tableName);
  const sample = await sampleLayouts(client, tableName);
  const layout =
    configured ?? (repoIndexName === ORIGINAL_REPO_INDEX_NAME || sample.original ? 'original' : 'discovery');
  if (layout === 'discovery' && sample.original) {
    throw new ConfigError(
      `DYNAMODB_ITEM_LAYOUT=discovery, but DynamoDB table ${tableName} holds hosts in the original's layout ` +
        `(service '${sample.original.service}' has a host '${sample.original.ip}' with a JSON 'tags' attribute), ` +
        `which the original service may still read: set DYNAMODB_ITEM_LAYOUT=original (or leave it unset), ` +
        `or use a new table name in DYNAMODB_TABLE_HOSTS (docs/migrating.md)`,
    );
  }
  if (layout === 'original' && sample.discovery && !sample.original) {
    log.info(
      { table: tableName, layout },
      `DynamoDB table ${tableName} holds hosts in discovery's layout; each is rewritten in the original's layout with its next heartbeat`,
    );
  }
  log.info(
    { table: tableName, layout, repoIndex: repoIndexName },
    `DynamoDB table ${tableName}: items written in the ${layout} layout${configured ? '' : ' (learnt from the table)'}, repo queries on index ${repoIndexName}`,
  );
  return { layout, repoIndexName };
}

interface SampledHost {
  readonly service: string;
  readonly ip: string;
}

/** The first host found in each layout among a few items (the change feed's partition left out). */
async function sampleLayouts(
  client: DynamoDBClient,
  tableName: string,
): Promise<{ original?: SampledHost; discovery?: SampledHost }> {
  const found: { original?: SampledHost; discovery?: SampledHost } = {};
  let startKey: ScanCommandOutput['LastEvaluatedKey'];
  // A few pages at most: the limit counts the change feed's items the filter then drops.
  for (let page = 0; page < SAMPLED_PAGES_MAX; page++) {
    const output = await client.send(
      new ScanCommand({
        TableName: tableName,
        Limit: SAMPLED_ITEMS,
        FilterExpression: '#service <> :feed',
        ExpressionAttributeNames: { '#service': 'service' },
        ExpressionAttributeValues: { ':feed': { S: CHANGE_LOG_PARTITION } },
        ExclusiveStartKey: startKey,
      }),
    );
    for (const item of output.Items ?? []) {
      const host = { service: item.service?.S ?? '', ip: item.ip_address?.S ?? '' };
      if (item[TAGS_ATTRIBUTE]?.S !== undefined) found.original ??= host;
      else if (Object.keys(item).some((attribute) => attribute.startsWith(TAG_ATTRIBUTE_PREFIX)))
        found.discovery ??= host;
    }
    startKey = output.LastEvaluatedKey;
    if (found.original || found.discovery || !startKey) break;
  }
  return found;
}

/**
 * The hosts table: on-demand capacity, so nobody has to size it, and the repo index (named as
 * given) projecting every attribute.
 */
export function hostsTableDefinition(
  tableName: string,
  repoIndexName: string = DISCOVERY_REPO_INDEX_NAME,
): ConstructorParameters<typeof CreateTableCommand>[0] {
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
        IndexName: repoIndexName,
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
