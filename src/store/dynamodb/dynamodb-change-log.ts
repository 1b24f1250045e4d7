import {
  BatchWriteCommand,
  DeleteCommand,
  PutCommand,
  QueryCommand,
  type DynamoDBDocumentClient,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  changeKeyTime,
  type ChangeLog,
  type ChangeLogPage,
  type ChangeRecord,
  type ReplicaAnnouncement,
} from '../../hosts/change-log.js';

/**
 * The partition of the hosts table that holds the change log and the replica roll: a hash key no
 * service can have (a service name never holds `/`), so no host is ever written there, and the
 * table needs no second name, index or permission. Its items are skipped by `listServices`.
 */
export const CHANGE_LOG_PARTITION = 'discovery/change-log';

/** Range keys: `c/<changeKey>` (time first) for changes, `r/<replica>` for announcements ('r' sorts after 'c'). */
const CHANGE_PREFIX = 'c/';
const REPLICA_PREFIX = 'r/';

/**
 * How long a change record is kept for DynamoDB's TTL to collect (the prune removes them sooner):
 * readers only look back seconds, so an hour is a wide margin for a replica that was paused.
 */
export const CHANGE_RETENTION_SECONDS = 3600;

/** Items per BatchWriteItem, DynamoDB's limit. */
const BATCH_WRITE_MAX = 25;

type Send = <T>(operation: string, call: (abortSignal: AbortSignal) => Promise<T>) => Promise<T>;

type Item = Record<string, unknown>;

/**
 * The change log in one partition of the hosts table, read with one strongly consistent Query per
 * poll: the range condition `ip_address >= c/<since>` returns the changes since then and, after
 * them, every announcement, so one call gives a replica both its catch-up and its peers.
 *
 * Calls: append 1 PutItem; read 1 Query per MB; announce 1 PutItem; withdraw 1 DeleteItem; prune
 * 1 Query per MB plus 1 BatchWriteItem per 25 records removed.
 */
export class DynamoDbChangeLog implements ChangeLog {
  constructor(
    private readonly documents: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly send: Send,
  ) {}

  async append(change: ChangeRecord): Promise<void> {
    await this.put({
      ip_address: CHANGE_PREFIX + change.key,
      replica: change.replica,
      services: [...change.services],
      at: change.at,
      expires_at: Math.ceil(change.at / 1000) + CHANGE_RETENTION_SECONDS,
    });
  }

  async read(sinceMs: number): Promise<ChangeLogPage> {
    const items = await this.query({
      TableName: this.tableName,
      KeyConditionExpression: '#service = :service AND #key >= :from',
      ExpressionAttributeNames: { '#service': 'service', '#key': 'ip_address' },
      ExpressionAttributeValues: { ':service': CHANGE_LOG_PARTITION, ':from': CHANGE_PREFIX + changeKeyTime(sinceMs) },
      ConsistentRead: true,
    });
    const changes: ChangeRecord[] = [];
    const replicas: ReplicaAnnouncement[] = [];
    for (const item of items) {
      const key = String(item.ip_address ?? '');
      if (key.startsWith(CHANGE_PREFIX)) {
        const services = Array.isArray(item.services) ? item.services.filter((s) => typeof s === 'string') : [];
        changes.push({
          key: key.slice(CHANGE_PREFIX.length),
          replica: String(item.replica ?? ''),
          services,
          at: Number(item.at ?? 0),
        });
      } else if (key.startsWith(REPLICA_PREFIX)) {
        replicas.push({
          id: key.slice(REPLICA_PREFIX.length),
          url: String(item.url ?? ''),
          aliveUntil: Number(item.alive_until ?? 0),
        });
      }
    }
    return { changes, replicas };
  }

  async announce(replica: ReplicaAnnouncement): Promise<void> {
    await this.put({
      ip_address: REPLICA_PREFIX + replica.id,
      url: replica.url,
      alive_until: replica.aliveUntil,
      expires_at: Math.ceil(replica.aliveUntil / 1000) + CHANGE_RETENTION_SECONDS,
    });
  }

  async withdraw(replicaId: string): Promise<void> {
    await this.send('DeleteItem', (abortSignal) =>
      this.documents.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { service: CHANGE_LOG_PARTITION, ip_address: REPLICA_PREFIX + replicaId },
        }),
        { abortSignal },
      ),
    );
  }

  async prune(beforeMs: number): Promise<number> {
    const old = await this.query({
      TableName: this.tableName,
      KeyConditionExpression: '#service = :service AND #key BETWEEN :from AND :to',
      ExpressionAttributeNames: { '#service': 'service', '#key': 'ip_address' },
      ExpressionAttributeValues: {
        ':service': CHANGE_LOG_PARTITION,
        ':from': CHANGE_PREFIX,
        ':to': CHANGE_PREFIX + changeKeyTime(beforeMs),
      },
      ProjectionExpression: '#key',
    });
    let removed = 0;
    for (let start = 0; start < old.length; start += BATCH_WRITE_MAX) {
      const batch = old.slice(start, start + BATCH_WRITE_MAX);
      const output = await this.send('BatchWriteItem', (abortSignal) =>
        this.documents.send(
          new BatchWriteCommand({
            RequestItems: {
              [this.tableName]: batch.map((item) => ({
                DeleteRequest: { Key: { service: CHANGE_LOG_PARTITION, ip_address: item.ip_address } },
              })),
            },
          }),
          { abortSignal },
        ),
      );
      // Unprocessed deletes (throttling) are left for the next prune: old records cost only storage.
      removed += batch.length - (output.UnprocessedItems?.[this.tableName]?.length ?? 0);
    }
    return removed;
  }

  /** One item of the log's partition, written whole. */
  private async put(item: Item): Promise<void> {
    await this.send('PutItem', (abortSignal) =>
      this.documents.send(
        new PutCommand({ TableName: this.tableName, Item: { service: CHANGE_LOG_PARTITION, ...item } }),
        { abortSignal },
      ),
    );
  }

  private async query(input: QueryCommandInput): Promise<Item[]> {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      const exclusiveStartKey = startKey;
      const output = await this.send('Query', (abortSignal) =>
        this.documents.send(new QueryCommand({ ...input, ExclusiveStartKey: exclusiveStartKey }), { abortSignal }),
      );
      items.push(...(output.Items ?? []));
      startKey = output.LastEvaluatedKey;
    } while (startKey);
    return items;
  }
}
