import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  ScanCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { StorageUnavailableError } from '../../errors.js';
import {
  mergeHeartbeat,
  parseCheckIn,
  withStatuses,
  type Heartbeat,
  type Host,
  type HostTags,
  type InstanceStatus,
  type NotUpStatus,
} from '../../hosts/model.js';
import type { ChangeLog } from '../../hosts/change-log.js';
import { PROBE_KEY, type HeartbeatResult, type HostStore, type ServiceHosts } from '../../hosts/host-store.js';
import { CHANGE_LOG_PARTITION, DynamoDbChangeLog } from './dynamodb-change-log.js';

/** Name of the global secondary index (hash `service_repo_name`, range `ip_address`) that serves `listByRepo`. */
export const REPO_INDEX_NAME = 'service_repo_name-index';

/**
 * Each tag is its own top-level attribute `tag:<key>` holding the value's JSON text. A heartbeat
 * can then merge tags with `SET` alone (no read first), and a weight set meanwhile is another
 * attribute the heartbeat never names. JSON text round-trips every JSON value exactly (nulls,
 * nested objects, numbers beyond DynamoDB's range) where native attribute types would not.
 */
export const TAG_ATTRIBUTE_PREFIX = 'tag:';

/**
 * Attributes holding the host's own status word and the operator's override (plain strings,
 * absent when not set): new attributes on the original's items, so the key schema and the
 * items of UP hosts stay exactly as they were.
 */
export const REPORTED_STATUS_ATTRIBUTE = 'reported_status';
export const STATUS_OVERRIDE_ATTRIBUTE = 'status_override';

/** Attribute holding the epoch second after which DynamoDB's TTL may delete the item. */
export const EXPIRES_AT_ATTRIBUTE = 'expires_at';

/**
 * Added to `last_check_in + HOST_TTL` for the TTL attribute: the domain judges expiry on read
 * with each replica's own clock, so the table must never drop an item a replica with a slightly
 * late clock still considers live. An hour dwarfs any sane clock skew; DynamoDB deletes expired
 * items lazily (typically within days) anyway, so the margin costs nothing.
 */
const EXPIRY_MARGIN_SECONDS = 3600;

export interface DynamoDbHostStoreOptions {
  /** The client to use; the store owns it from now on and destroys it on close. */
  readonly client: DynamoDBClient;
  readonly tableName: string;
  /** HOST_TTL: with the margin above, sets each item's TTL attribute. */
  readonly hostTtlSeconds: number;
  /** Bound in milliseconds on one store call, SDK retries included; past it the call throws StorageUnavailableError. */
  readonly requestTimeoutMs: number;
  /** Run once by `close` after the client is destroyed (stops an embedded server). */
  readonly onClose?: () => Promise<void>;
}

type Item = Record<string, unknown>;

/**
 * The registry in one DynamoDB table keyed by `service` (hash) and `ip_address` (range), with the
 * global secondary index `service_repo_name-index` for repo queries. An item holds `port` (N),
 * `revision`, `last_check_in`, `service_repo_name` (absent when the host has none, so it is
 * absent from the index too: DynamoDB rejects empty index keys), `expires_at` (N, TTL), one
 * `tag:<key>` attribute per tag, and `reported_status` and `status_override` when set.
 *
 * Calls per operation: heartbeat 1 UpdateItem; get 1 GetItem; listByService 1 Query per MB of
 * results; listByRepo 1 index Query per MB; delete and deleteIfCheckInIs 1 DeleteItem; updateTags
 * 1 UpdateItem; listServices 1 Scan per MB (not on any request path of the v1 API).
 * Reads of the table are strongly consistent, so a host registered through one replica is
 * listed by every other at once; the index is eventually consistent, as DynamoDB's always are.
 */
export class DynamoDbHostStore implements HostStore {
  private readonly client: DynamoDBClient;
  private readonly documents: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly hostTtlSeconds: number;
  private readonly requestTimeoutMs: number;
  private readonly onClose: (() => Promise<void>) | undefined;
  private closing: Promise<void> | undefined;
  /** Replicas on this table tell each other of changes through one partition of it (dynamodb-change-log.ts). */
  readonly changeLog: ChangeLog;

  constructor(options: DynamoDbHostStoreOptions) {
    this.client = options.client;
    // Tags are written as JSON text, so nothing we send holds undefined or a class instance.
    this.documents = DynamoDBDocumentClient.from(options.client);
    this.tableName = options.tableName;
    this.hostTtlSeconds = options.hostTtlSeconds;
    this.requestTimeoutMs = options.requestTimeoutMs;
    this.onClose = options.onClose;
    this.changeLog = new DynamoDbChangeLog(this.documents, this.tableName, (operation, call) =>
      this.send(operation, call),
    );
  }

  /**
   * One UpdateItem, no read: the fields are replaced, each incoming tag is `SET` as its own
   * attribute (tags absent from the heartbeat are untouched, which is the merge), and ALL_OLD
   * returns the record as it was just before this atomic write, from which the merged record
   * follows exactly.
   */
  async heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    const names: Record<string, string> = {
      '#port': 'port',
      '#revision': 'revision',
      '#check': 'last_check_in',
      '#expires': EXPIRES_AT_ATTRIBUTE,
      '#repo': 'service_repo_name',
      '#reported': REPORTED_STATUS_ATTRIBUTE,
    };
    const values: Record<string, unknown> = {
      ':port': heartbeat.port,
      ':revision': heartbeat.revision,
      ':check': heartbeat.last_check_in,
      ':expires': this.expiresAt(heartbeat.last_check_in),
    };
    const sets = ['#port = :port', '#revision = :revision', '#check = :check', '#expires = :expires'];
    const removes: string[] = [];
    if (heartbeat.service_repo_name === '') {
      removes.push('#repo');
    } else {
      values[':repo'] = heartbeat.service_repo_name;
      sets.push('#repo = :repo');
    }
    // The host's word is replaced: a heartbeat without one (UP) removes the stored one.
    if (heartbeat.reported_status === undefined) {
      removes.push('#reported');
    } else {
      values[':reported'] = heartbeat.reported_status;
      sets.push('#reported = :reported');
    }
    const remove = removes.length === 0 ? '' : ` REMOVE ${removes.join(', ')}`;
    sets.push(...tagAssignments(heartbeat.tags, names, values));
    const output = await this.send('UpdateItem', (abortSignal) =>
      this.documents.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { service: heartbeat.service, ip_address: heartbeat.ip_address },
          UpdateExpression: `SET ${sets.join(', ')}${remove}`,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: 'ALL_OLD',
        }),
        { abortSignal },
      ),
    );
    const previous = output.Attributes ? hostFromItem(output.Attributes) : undefined;
    return { previous, current: mergeHeartbeat(previous, heartbeat) };
  }

  async get(service: string, ipAddress: string): Promise<Host | undefined> {
    const output = await this.send('GetItem', (abortSignal) =>
      this.documents.send(
        new GetCommand({ TableName: this.tableName, Key: { service, ip_address: ipAddress }, ConsistentRead: true }),
        { abortSignal },
      ),
    );
    return output.Item ? hostFromItem(output.Item) : undefined;
  }

  /**
   * One eventually consistent GetItem of a key no host has (half a read unit): it proves the
   * endpoint answers, the credentials work and the table exists, and needs no permission
   * beyond what serving already does (DescribeTable would).
   */
  async ping(): Promise<void> {
    await this.send('GetItem', (abortSignal) =>
      this.documents.send(
        new GetCommand({
          TableName: this.tableName,
          Key: { service: PROBE_KEY.service, ip_address: PROBE_KEY.ipAddress },
        }),
        { abortSignal },
      ),
    );
  }

  /** One Query (more only past 1 MB of records); no change token, since other replicas write the same table. */
  async listByService(service: string): Promise<ServiceHosts> {
    const hosts = await this.query({
      TableName: this.tableName,
      KeyConditionExpression: '#service = :service',
      ExpressionAttributeNames: { '#service': 'service' },
      ExpressionAttributeValues: { ':service': service },
      ConsistentRead: true,
    });
    return { hosts };
  }

  /** One Query of the repo index (more only past 1 MB); never a Scan. */
  async listByRepo(repo: string): Promise<readonly Host[]> {
    if (repo === '') return [];
    return this.query({
      TableName: this.tableName,
      IndexName: REPO_INDEX_NAME,
      KeyConditionExpression: '#repo = :repo',
      ExpressionAttributeNames: { '#repo': 'service_repo_name' },
      ExpressionAttributeValues: { ':repo': repo },
    });
  }

  /**
   * A Scan reading only the key attribute: DynamoDB keeps no list of hash keys, and keeping one
   * would cost every heartbeat a second write. Used for service listings, never per heartbeat.
   */
  async listServices(): Promise<readonly string[]> {
    const services = new Set<string>();
    let startKey: Item | undefined;
    do {
      const exclusiveStartKey = startKey;
      const output = await this.send('Scan', (abortSignal) =>
        this.documents.send(
          new ScanCommand({
            TableName: this.tableName,
            ProjectionExpression: '#service',
            ExpressionAttributeNames: { '#service': 'service' },
            ExclusiveStartKey: exclusiveStartKey,
          }),
          { abortSignal },
        ),
      );
      for (const item of output.Items ?? []) if (typeof item.service === 'string') services.add(item.service);
      startKey = output.LastEvaluatedKey;
    } while (startKey);
    services.delete(CHANGE_LOG_PARTITION);
    return [...services];
  }

  async delete(service: string, ipAddress: string): Promise<Host | undefined> {
    const output = await this.send('DeleteItem', (abortSignal) =>
      this.documents.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { service, ip_address: ipAddress },
          ReturnValues: 'ALL_OLD',
        }),
        { abortSignal },
      ),
    );
    return output.Attributes ? hostFromItem(output.Attributes) : undefined;
  }

  /** One conditional DeleteItem: DynamoDB itself refuses when a heartbeat moved `last_check_in` meanwhile. */
  async deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    try {
      await this.send('DeleteItem', (abortSignal) =>
        this.documents.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: { service, ip_address: ipAddress },
            ConditionExpression: '#check = :check',
            ExpressionAttributeNames: { '#check': 'last_check_in' },
            ExpressionAttributeValues: { ':check': lastCheckIn },
          }),
          { abortSignal },
        ),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /** One conditional UpdateItem naming only tag attributes, so a concurrent heartbeat's fields survive. */
  async updateTags(
    service: string,
    ipAddress: string,
    tags: Readonly<Record<string, unknown>>,
  ): Promise<Host | undefined> {
    const names: Record<string, string> = { '#service': 'service' };
    const values: Record<string, unknown> = {};
    const sets = tagAssignments(tags, names, values);
    if (sets.length === 0) return this.get(service, ipAddress);
    try {
      const output = await this.send('UpdateItem', (abortSignal) =>
        this.documents.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { service, ip_address: ipAddress },
            UpdateExpression: `SET ${sets.join(', ')}`,
            // Without the condition an update of a missing key would create a record of tags alone.
            ConditionExpression: 'attribute_exists(#service)',
            ExpressionAttributeNames: names,
            ExpressionAttributeValues: values,
            ReturnValues: 'ALL_NEW',
          }),
          { abortSignal },
        ),
      );
      return output.Attributes ? hostFromItem(output.Attributes) : undefined;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  /** One conditional UpdateItem naming only the override attribute, so a concurrent heartbeat's fields survive. */
  async setStatusOverride(
    service: string,
    ipAddress: string,
    status: InstanceStatus | undefined,
  ): Promise<Host | undefined> {
    const values: Record<string, unknown> | undefined = status === undefined ? undefined : { ':override': status };
    try {
      const output = await this.send('UpdateItem', (abortSignal) =>
        this.documents.send(
          new UpdateCommand({
            TableName: this.tableName,
            Key: { service, ip_address: ipAddress },
            UpdateExpression: status === undefined ? 'REMOVE #override' : 'SET #override = :override',
            // Without the condition an update of a missing key would create a record of the override alone.
            ConditionExpression: 'attribute_exists(#service)',
            ExpressionAttributeNames: { '#service': 'service', '#override': STATUS_OVERRIDE_ATTRIBUTE },
            ExpressionAttributeValues: values,
            ReturnValues: 'ALL_NEW',
          }),
          { abortSignal },
        ),
      );
      return output.Attributes ? hostFromItem(output.Attributes) : undefined;
    } catch (error) {
      if (isConditionFailure(error)) return undefined;
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closing ??= (async () => {
      this.client.destroy();
      await this.onClose?.();
    })();
    return this.closing;
  }

  private async query(input: QueryCommandInput): Promise<Host[]> {
    const hosts: Host[] = [];
    let startKey: Item | undefined;
    do {
      const exclusiveStartKey = startKey;
      const output = await this.send('Query', (abortSignal) =>
        this.documents.send(new QueryCommand({ ...input, ExclusiveStartKey: exclusiveStartKey }), { abortSignal }),
      );
      for (const item of output.Items ?? []) hosts.push(hostFromItem(item));
      startKey = output.LastEvaluatedKey;
    } while (startKey);
    return hosts;
  }

  /**
   * Runs one SDK call bounded by `requestTimeoutMs` (its retries included) and turns every
   * failure of reaching DynamoDB into StorageUnavailableError. A failed condition is passed
   * through for the caller to interpret.
   */
  private async send<T>(operation: string, call: (abortSignal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.closing) throw new StorageUnavailableError('The DynamoDB store is closed.');
    const deadline = AbortSignal.timeout(this.requestTimeoutMs);
    try {
      return await call(deadline);
    } catch (error) {
      throw this.translate(operation, error, deadline.aborted);
    }
  }

  private translate(operation: string, error: unknown, pastDeadline: boolean): unknown {
    if (isConditionFailure(error)) return error;
    const name = error instanceof Error ? error.name : 'Error';
    if (name === 'ResourceNotFoundException') {
      return new StorageUnavailableError(
        `DynamoDB table '${this.tableName}' does not exist: create it, or start with DYNAMODB_CREATE_TABLES_IN_APP=true.`,
        { cause: error },
      );
    }
    if (name === 'ValidationException') {
      // Every request field is validated far inside DynamoDB's limits before it gets here, so this
      // is a table that does not match our schema or a bug: a 500, not a reason for clients to retry.
      return new Error(`DynamoDB rejected ${operation} on table '${this.tableName}': ${(error as Error).message}`, {
        cause: error,
      });
    }
    const code = (error as { code?: unknown }).code;
    let reason = name;
    if (pastDeadline) reason = `no answer within ${this.requestTimeoutMs} ms`;
    else if (name === 'TimeoutError')
      reason = 'timed out'; // one attempt's connect or answer took too long
    else if (typeof code === 'string' && code !== '') reason = code; // ECONNREFUSED says more than its class name
    // The client sees the operation and the kind of failure; addresses and details go to the log via `cause`.
    return new StorageUnavailableError(`Storage unavailable (DynamoDB ${operation}: ${reason}); retry later.`, {
      cause: error,
    });
  }

  private expiresAt(lastCheckIn: string): number {
    const checkIn = parseCheckIn(lastCheckIn);
    const base = Number.isNaN(checkIn) ? Date.now() : checkIn;
    // Whole seconds: HOST_TTL may be fractional, and TTL reads a plain epoch-seconds number.
    return Math.ceil(base / 1000 + this.hostTtlSeconds) + EXPIRY_MARGIN_SECONDS;
  }
}

/** `SET` clauses for each tag as its own attribute, with names and values added to the maps. */
function tagAssignments(
  tags: Readonly<HostTags>,
  names: Record<string, string>,
  values: Record<string, unknown>,
): string[] {
  const sets: string[] = [];
  let index = 0;
  for (const [key, value] of Object.entries(tags)) {
    const json = JSON.stringify(value);
    if (json === undefined) continue; // undefined has no JSON form and reads back as absent anyway
    names[`#t${index}`] = TAG_ATTRIBUTE_PREFIX + key;
    values[`:t${index}`] = json;
    sets.push(`#t${index} = :t${index}`);
    index++;
  }
  return sets;
}

/** A record from an item; tolerant of missing fields so a hand-edited item still reads. */
export function hostFromItem(item: Item): Host {
  const tags: [string, unknown][] = [];
  for (const [attribute, value] of Object.entries(item)) {
    if (!attribute.startsWith(TAG_ATTRIBUTE_PREFIX)) continue;
    tags.push([attribute.slice(TAG_ATTRIBUTE_PREFIX.length), typeof value === 'string' ? parseTagValue(value) : value]);
  }
  const reported = item[REPORTED_STATUS_ATTRIBUTE];
  const override = item[STATUS_OVERRIDE_ATTRIBUTE];
  // Passed on as found (hostProblem refuses a value that is not a status); absent on older items.
  return withStatuses(
    {
      service: String(item.service ?? ''),
      ip_address: String(item.ip_address ?? ''),
      port: Number(item.port ?? 0),
      revision: String(item.revision ?? ''),
      service_repo_name: typeof item.service_repo_name === 'string' ? item.service_repo_name : '',
      last_check_in: String(item.last_check_in ?? ''),
      // fromEntries defines own properties, so a tag named `__proto__` stays plain data.
      tags: Object.fromEntries(tags),
    },
    reported === undefined ? undefined : (String(reported) as NotUpStatus),
    override === undefined ? undefined : (String(override) as InstanceStatus),
  );
}

function parseTagValue(json: string): unknown {
  try {
    return JSON.parse(json);
  } catch {
    return json; // written by something else as a plain string
  }
}

function isConditionFailure(error: unknown): boolean {
  return error instanceof Error && error.name === 'ConditionalCheckFailedException';
}
