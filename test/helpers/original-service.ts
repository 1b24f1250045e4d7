/**
 * The original service (lyft/discovery, archived) at the item level, for tests of a table both
 * services serve. pynamodb cannot be installed here, so this plays its part from its source:
 *
 * - lyft/discovery `app/models/host.py`: `Host(Model)` with hash `service`, range `ip_address`,
 *   `service_repo_name = UnicodeAttribute(null=True)`, `port = NumberAttribute()`,
 *   `last_check_in = UTCDateTimeAttribute()`, `revision = UnicodeAttribute()`,
 *   `tags = JSONAttribute()`, and `service_repo_name_index = ServiceRepoNameIndex()` (a
 *   GlobalSecondaryIndex, AllProjection, 30/30 capacity units, hash `service_repo_name`, range
 *   `ip_address`); `app/models/__init__.py`: `Host.create_table(read_capacity_units=5,
 *   write_capacity_units=10)`.
 * - pynamodb 3.2.1 (commit 96eb4cf8544fca1223f2dc89698fcc2c64d4d001), the version its
 *   requirements.txt pins: `models.py` `MetaModel.__init__` sets `attr_obj.Meta.index_name =
 *   attr_name` when an index's Meta has none (so the index is `service_repo_name_index`);
 *   `constants.py` `DATETIME_FORMAT = '%Y-%m-%dT%H:%M:%S.%f%z'`; `attributes.py`
 *   `UTCDateTimeAttribute.serialize` is `value.astimezone(tzutc()).strftime(DATETIME_FORMAT)`
 *   (so `+0000`), `JSONAttribute.serialize` is `json.dumps(value)` and `.deserialize`
 *   `json.loads(value, strict=False)`, `UnicodeAttribute.serialize` returns None for an empty
 *   string and `Model._serialize` leaves None attributes out, `NumberAttribute` is
 *   `json.dumps`/`json.loads` of an N; `Model.save` is one PutItem of the model's attributes
 *   (the whole item: attributes the model does not declare are gone after it), and
 *   `Model._deserialize` reads only the model's attributes, each of its declared type.
 * - lyft/discovery `app/services/host.py`: `_create_or_update_host` reads the host and saves it
 *   with `host['tags'].update(tags)`; `set_tag` reads, sets `host['tags'][tag_name]`, saves;
 *   `app/services/query.py` `DynamoQueryBackend.delete` queries the key, then deletes.
 */
import {
  CreateTableCommand,
  DeleteItemCommand,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type AttributeValue,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { pythonJsonDumps } from '../../src/store/dynamodb/item-layout.js';

export const ORIGINAL_INDEX = 'service_repo_name_index';

type RawItem = Record<string, AttributeValue>;

/** The table as `Host.create_table(read_capacity_units=5, write_capacity_units=10)` creates it. */
export async function createTableAsOriginal(client: DynamoDBClient, tableName: string): Promise<void> {
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: [
        { AttributeName: 'service', AttributeType: 'S' },
        { AttributeName: 'ip_address', AttributeType: 'S' },
        { AttributeName: 'service_repo_name', AttributeType: 'S' },
      ],
      KeySchema: [
        { AttributeName: 'service', KeyType: 'HASH' },
        { AttributeName: 'ip_address', KeyType: 'RANGE' },
      ],
      ProvisionedThroughput: { ReadCapacityUnits: 5, WriteCapacityUnits: 10 },
      GlobalSecondaryIndexes: [
        {
          IndexName: ORIGINAL_INDEX,
          KeySchema: [
            { AttributeName: 'service_repo_name', KeyType: 'HASH' },
            { AttributeName: 'ip_address', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
          ProvisionedThroughput: { ReadCapacityUnits: 30, WriteCapacityUnits: 30 },
        },
      ],
    }),
  );
}

/**
 * `strftime('%Y-%m-%dT%H:%M:%S.%f%z')` of a UTC datetime, written here independently of the
 * code under test: `2026-12-07T14:57:45.274456+0000`.
 */
export function pynamodbDateTime(epochMs: number, micros = 0): string {
  const iso = new Date(Math.floor(epochMs)).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, 23)}${String(micros).padStart(3, '0')}+0000`;
}

/** An item as pynamodb 3.2.1 writes it: `tags` is the exact text json.dumps wrote. */
export interface OriginalItem {
  readonly service: string;
  readonly ip_address: string;
  readonly service_repo_name?: string;
  readonly port: number;
  readonly revision: string;
  readonly last_check_in: string;
  readonly tags: string;
}

/** `Host(...).save()`: one PutItem of the model's attributes, an empty repo name left out. */
export async function putAsOriginal(client: DynamoDBClient, tableName: string, item: OriginalItem): Promise<void> {
  const raw: RawItem = {
    service: { S: item.service },
    ip_address: { S: item.ip_address },
    port: { N: JSON.stringify(item.port) },
    last_check_in: { S: item.last_check_in },
    revision: { S: item.revision },
    tags: { S: item.tags },
  };
  if (item.service_repo_name) raw.service_repo_name = { S: item.service_repo_name };
  await client.send(new PutItemCommand({ TableName: tableName, Item: raw }));
}

/** A host as the original's model holds it after `_deserialize`, and `_pynamo_host_to_dict` hands on. */
export interface OriginalHost {
  readonly service: string;
  readonly ip_address: string;
  readonly service_repo_name: string | null;
  readonly port: number | null;
  readonly revision: string | null;
  /** Epoch milliseconds (microseconds as the fraction) of the strictly parsed check-in. */
  readonly last_check_in: number;
  readonly tags: Record<string, unknown> | null;
}

const STRICT_DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})([+-])(\d{2})(\d{2})$/;

/**
 * Reads an item as the original's model does, strictly: `last_check_in` must match
 * `%Y-%m-%dT%H:%M:%S.%f%z` exactly as pynamodb 5+ requires (six fraction digits, `+HHMM`), or
 * this throws; `tags` is `json.loads` of the S attribute (null when absent: the original's
 * heartbeat then fails on `host['tags'].update`); `port` is `json.loads` of the N attribute;
 * attributes the model does not declare are ignored; an attribute of another type reads as None.
 */
export function readAsOriginal(item: RawItem): OriginalHost {
  const text = (name: string) => item[name]?.S ?? null;
  const checkIn = text('last_check_in');
  const match = checkIn === null ? null : STRICT_DATETIME.exec(checkIn);
  if (!match) throw new Error(`time data ${JSON.stringify(checkIn)} does not match format '%Y-%m-%dT%H:%M:%S.%f%z'`);
  const [, y, mo, d, h, mi, s, micros, sign, oh, om] = match;
  const offsetMs = (Number(oh) * 60 + Number(om)) * 60_000 * (sign === '-' ? -1 : 1);
  const epoch = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) - offsetMs;
  const tagsText = text('tags');
  const tags = tagsText === null ? null : (JSON.parse(tagsText) as unknown);
  if (tags !== null && (typeof tags !== 'object' || Array.isArray(tags))) throw new Error('tags is not a dict');
  const port = item.port?.N;
  return {
    service: text('service') ?? '',
    ip_address: text('ip_address') ?? '',
    service_repo_name: text('service_repo_name'),
    port: port === undefined ? null : (JSON.parse(port) as number),
    revision: text('revision'),
    last_check_in: epoch + Number(micros) / 1000,
    tags: tags as Record<string, unknown> | null,
  };
}

async function getRaw(client: DynamoDBClient, tableName: string, service: string, ip: string) {
  return (
    await client.send(
      new GetItemCommand({ TableName: tableName, Key: { service: { S: service }, ip_address: { S: ip } } }),
    )
  ).Item;
}

/** `Host.get(service, ip)` through the original's model, or undefined when there is no item. */
export async function originalGet(
  client: DynamoDBClient,
  tableName: string,
  service: string,
  ip: string,
): Promise<OriginalHost | undefined> {
  const item = await getRaw(client, tableName, service, ip);
  return item && readAsOriginal(item);
}

/** `Host.query(service)` through the original's model. */
export async function originalList(
  client: DynamoDBClient,
  tableName: string,
  service: string,
): Promise<OriginalHost[]> {
  const output = await client.send(
    new QueryCommand({
      TableName: tableName,
      KeyConditionExpression: 'service = :s',
      ExpressionAttributeValues: { ':s': { S: service } },
    }),
  );
  return (output.Items ?? []).map(readAsOriginal);
}

/** `Host.service_repo_name_index.query(repo)` through the original's model. */
export async function originalListByRepo(
  client: DynamoDBClient,
  tableName: string,
  repo: string,
): Promise<OriginalHost[]> {
  const output = await client.send(
    new QueryCommand({
      TableName: tableName,
      IndexName: ORIGINAL_INDEX,
      KeyConditionExpression: 'service_repo_name = :r',
      ExpressionAttributeValues: { ':r': { S: repo } },
    }),
  );
  return (output.Items ?? []).map(readAsOriginal);
}

/** `Host(**host).save()` of a host dict: the whole item put back, model attributes only. */
async function saveAsOriginal(client: DynamoDBClient, tableName: string, host: OriginalHost): Promise<void> {
  if (host.tags === null) throw new Error("'NoneType' object has no attribute 'update'");
  await putAsOriginal(client, tableName, {
    service: host.service,
    ip_address: host.ip_address,
    service_repo_name: host.service_repo_name ?? undefined,
    port: host.port ?? 0,
    revision: host.revision ?? '',
    last_check_in: pynamodbDateTime(host.last_check_in, Math.min(999, Math.round((host.last_check_in % 1) * 1000))),
    tags: pythonJsonDumps(host.tags),
  });
}

/** The original's heartbeat (`_create_or_update_host`): read, replace the fields, `tags.update`, save. */
export async function originalHeartbeat(
  client: DynamoDBClient,
  tableName: string,
  heartbeat: {
    service: string;
    ip_address: string;
    service_repo_name?: string;
    port: number;
    revision: string;
    tags: Record<string, unknown>;
  },
  now = Date.now(),
): Promise<void> {
  const stored = await originalGet(client, tableName, heartbeat.service, heartbeat.ip_address);
  if (stored && stored.tags === null) throw new Error("'NoneType' object has no attribute 'update'");
  await saveAsOriginal(client, tableName, {
    service: heartbeat.service,
    ip_address: heartbeat.ip_address,
    service_repo_name: heartbeat.service_repo_name ?? null,
    port: heartbeat.port,
    revision: heartbeat.revision,
    last_check_in: now,
    tags: stored ? { ...stored.tags, ...heartbeat.tags } : heartbeat.tags,
  });
}

/** The original's `set_tag(service, ip, 'load_balancing_weight', weight)`: false when the host is not there. */
export async function originalSetWeight(
  client: DynamoDBClient,
  tableName: string,
  service: string,
  ip: string,
  weight: number,
): Promise<boolean> {
  const stored = await originalGet(client, tableName, service, ip);
  if (!stored) return false;
  await saveAsOriginal(client, tableName, { ...stored, tags: { ...stored.tags, load_balancing_weight: weight } });
  return true;
}

/** The original's delete: query the key, delete the item found. */
export async function originalDelete(
  client: DynamoDBClient,
  tableName: string,
  service: string,
  ip: string,
): Promise<boolean> {
  if (!(await getRaw(client, tableName, service, ip))) return false;
  await client.send(
    new DeleteItemCommand({ TableName: tableName, Key: { service: { S: service }, ip_address: { S: ip } } }),
  );
  return true;
}

/** The raw item, for byte-level assertions. */
export function rawItem(client: DynamoDBClient, tableName: string, service: string, ip: string) {
  return getRaw(client, tableName, service, ip);
}
