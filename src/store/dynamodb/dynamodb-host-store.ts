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
  mergeTags,
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
import { RecentMap } from '../../hosts/recent-map.js';
import { CHANGE_LOG_PARTITION, DynamoDbChangeLog } from './dynamodb-change-log.js';
import {
  DISCOVERY_REPO_INDEX_NAME,
  pynamodbCheckIn,
  pythonJsonDumps,
  storedCheckInAsServed,
  storedCheckInSpellings,
  tagsOfOriginalItem,
  TAGS_ATTRIBUTE,
  type ItemLayout,
} from './item-layout.js';

/** Name of this service's own repo index (hash `service_repo_name`, range `ip_address`), on tables it creates in its layout. */
export const REPO_INDEX_NAME = DISCOVERY_REPO_INDEX_NAME;

/** What a table is: the layout items are written in and the index repo queries read (learnt from DescribeTable). */
export interface TableShape {
  readonly layout: ItemLayout;
  readonly repoIndexName: string;
}

/**
 * How many hosts' stored `tags` text this process remembers (original layout): past this, the
 * least recently used are forgotten and their next write reads the item first. Bounds memory
 * whatever the fleet's size; a few hundred bytes each.
 */
const REMEMBERED_TAGS = 50_000;

/**
 * Attempts of one conditional write of a host's tags (original layout) when other writers keep
 * changing them in between; each retry reads the item afresh. Of writers contending at once,
 * one wins each round, so a burst of N writes to one host needs at most N attempts for the last
 * of them: 20 covers any burst a host's heartbeats and an operator's weights make. Past it the
 * write answers 503, and the client's retry writes it.
 */
const TAG_WRITE_ATTEMPTS = 20;

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
  /**
   * The table's layout and repo index, or how to learn them (called until it succeeds, before the
   * first call that needs them); absent: this service's own layout and index.
   */
  readonly shape?: TableShape | (() => Promise<TableShape>);
}

/**
 * What an item of the original's layout held when this process last read or wrote it: the exact
 * `tags` text (absent: the item had no `tags` attribute), the tags a write merges into, and the
 * `tag:<key>` attributes of our own layout it also held, which a write in the original's layout
 * folds into `tags` and removes.
 */
interface KnownTags {
  readonly text: string | undefined;
  readonly tags: Readonly<HostTags>;
  readonly tagAttributes: readonly string[];
}

type Item = Record<string, unknown>;

/**
 * The registry in one DynamoDB table keyed by `service` (hash) and `ip_address` (range), with a
 * global secondary index for repo queries (`service_repo_name_index` on the original's tables,
 * `service_repo_name-index` on ours). An item holds `port` (N), `revision`, `last_check_in`,
 * `service_repo_name` (absent when the host has none, so it is absent from the index too:
 * DynamoDB rejects empty index keys), `expires_at` (N, TTL), the tags, and `reported_status` and
 * `status_override` when set. The tags and the check-in follow the table's item layout
 * (item-layout.ts): one JSON attribute `tags` and pynamodb's check-in format in the original's,
 * one `tag:<key>` attribute per tag in ours. Items of either layout are read on any table.
 *
 * Calls per operation: get 1 GetItem; listByService 1 Query per MB of results; listByRepo 1
 * index Query per MB; delete and deleteIfCheckInIs 1 DeleteItem; setStatusOverride 1 UpdateItem;
 * listServices 1 Scan per MB (not on any request path of the v1 API). Heartbeat and updateTags:
 * 1 UpdateItem in our layout; in the original's, 1 conditional UpdateItem when this process
 * knows the item's current `tags` (it wrote or read the item last), else 1 GetItem first, and
 * 1 GetItem and 1 more UpdateItem each time another writer changed the tags in between.
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
  private shape: TableShape | undefined;
  private readonly learnShape: (() => Promise<TableShape>) | undefined;
  private learning: Promise<TableShape> | undefined;
  /** Original layout: the `tags` each host's item held when this process last wrote or read it. */
  private readonly knownTags = new RecentMap<string, KnownTags>(REMEMBERED_TAGS);
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
    if (typeof options.shape === 'function') this.learnShape = options.shape;
    else this.shape = options.shape ?? { layout: 'discovery', repoIndexName: REPO_INDEX_NAME };
    this.changeLog = new DynamoDbChangeLog(this.documents, this.tableName, (operation, call) =>
      this.send(operation, call),
    );
  }

  /** The table's layout and repo index, learnt once (retried on the next call while learning fails). */
  async tableShape(): Promise<TableShape> {
    if (this.shape) return this.shape;
    this.learning ??= this.learnShape!().then(
      (shape) => (this.shape = shape),
      (error: unknown) => {
        this.learning = undefined;
        throw error;
      },
    );
    return this.learning;
  }

  async heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    const { layout } = await this.tableShape();
    return layout === 'original' ? this.heartbeatOriginal(heartbeat) : this.heartbeatDiscovery(heartbeat);
  }

  /**
   * Our layout: one UpdateItem, no read. The fields are replaced, each incoming tag is `SET` as
   * its own attribute (tags absent from the heartbeat are untouched, which is the merge), and
   * ALL_OLD returns the record as it was just before this atomic write, from which the merged
   * record follows exactly.
   */
  private async heartbeatDiscovery(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    const update = this.heartbeatFields(heartbeat, heartbeat.last_check_in);
    update.sets.push(...tagAssignments(heartbeat.tags, update.names, update.values));
    const output = await this.send('UpdateItem', (abortSignal) =>
      this.documents.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { service: heartbeat.service, ip_address: heartbeat.ip_address },
          UpdateExpression: updateExpression(update.sets, update.removes),
          ExpressionAttributeNames: update.names,
          ExpressionAttributeValues: update.values,
          ReturnValues: 'ALL_OLD',
        }),
        { abortSignal },
      ),
    );
    const previous = output.Attributes ? hostFromItem(output.Attributes) : undefined;
    return { previous, current: mergeHeartbeat(previous, heartbeat) };
  }

  /**
   * The original's layout: the merged tags are written whole, as the original's own heartbeat
   * does (`host['tags'].update(tags)`), but with a condition on the `tags` text the merge started
   * from, so a tag or weight another writer stored meanwhile is never overwritten: the condition
   * fails, the item is read afresh and the merge redone. When this process knows the item's
   * `tags` (it wrote or read the item last) that is one UpdateItem and no read; otherwise one
   * GetItem first: never more than the original's own read and write.
   */
  private async heartbeatOriginal(heartbeat: Heartbeat): Promise<HeartbeatResult> {
    const output = await this.writeTags(
      heartbeat.service,
      heartbeat.ip_address,
      'create',
      (known) => mergeTags(known?.tags ?? {}, heartbeat.tags),
      (merged) => {
        const update = this.heartbeatFields(heartbeat, pynamodbCheckIn(heartbeat.last_check_in));
        update.names['#tags'] = TAGS_ATTRIBUTE;
        update.values[':tags'] = pythonJsonDumps(merged);
        update.sets.push('#tags = :tags');
        return update;
      },
      'ALL_OLD',
    );
    const previous = output ? hostFromItem(output) : undefined;
    return { previous, current: mergeHeartbeat(previous, heartbeat) };
  }

  /** The `SET` and `REMOVE` clauses of a heartbeat's fields other than tags, `last_check_in` as given. */
  private heartbeatFields(heartbeat: Heartbeat, storedCheckIn: string): UpdateParts {
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
      ':check': storedCheckIn,
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
    return { names, values, sets, removes };
  }

  /**
   * One write of an item's whole `tags` in the original's layout, conditioned on the tags it
   * merged from: what this process knows of the item, else what a GetItem finds. On a failed
   * condition (another writer, or a delete, came in between) the item is read and the write
   * redone. `missing`: `create` writes a new item when there is none (a heartbeat), `skip`
   * returns undefined (a weight for a host that is gone). `fields` sets `:tags` to the merged
   * tags' text. Returns the item the write's `returnValues` names (undefined when there was no
   * item before an ALL_OLD write).
   */
  private async writeTags(
    service: string,
    ipAddress: string,
    missing: 'create' | 'skip',
    merge: (known: KnownTags | undefined) => HostTags,
    fields: (merged: HostTags) => UpdateParts,
    returnValues: 'ALL_OLD' | 'ALL_NEW',
  ): Promise<Item | undefined> {
    const key = knownKey(service, ipAddress);
    let known = this.knownTags.get(key);
    let exists = known !== undefined;
    for (let attempt = 1; ; attempt++) {
      if (!known) {
        const item = await this.getItem(service, ipAddress);
        if (!item && missing === 'skip') return undefined;
        exists = item !== undefined;
        known = item ? this.remember(item) : undefined;
      }
      const merged = merge(known);
      const update = fields(merged);
      const conditions: string[] = [];
      update.names['#service'] = 'service';
      if (!exists) {
        conditions.push('attribute_not_exists(#service)');
      } else {
        update.names['#tags'] = TAGS_ATTRIBUTE;
        conditions.push('attribute_exists(#service)');
        if (known?.text === undefined) conditions.push('attribute_not_exists(#tags)');
        else {
          update.values[':knownTags'] = known.text;
          conditions.push('#tags = :knownTags');
        }
        // Tags of our own layout on the item were merged in above; the item keeps one copy.
        known?.tagAttributes.forEach((attribute, index) => {
          update.names[`#old${index}`] = attribute;
          update.removes.push(`#old${index}`);
        });
      }
      try {
        const output = await this.send('UpdateItem', (abortSignal) =>
          this.documents.send(
            new UpdateCommand({
              TableName: this.tableName,
              Key: { service, ip_address: ipAddress },
              UpdateExpression: updateExpression(update.sets, update.removes),
              ConditionExpression: conditions.join(' AND '),
              ExpressionAttributeNames: update.names,
              ExpressionAttributeValues: update.values,
              ReturnValues: returnValues,
            }),
            { abortSignal },
          ),
        );
        // What the item's tags are now, for the next write to start from without a read.
        this.knownTags.set(key, { text: String(update.values[':tags']), tags: merged, tagAttributes: [] });
        return output.Attributes;
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        this.knownTags.delete(key);
        known = undefined;
        if (attempt >= TAG_WRITE_ATTEMPTS) {
          throw new StorageUnavailableError(
            `Storage unavailable (DynamoDB UpdateItem: host ${ipAddress} of ${service} changed by another writer ${attempt} times in a row); retry later.`,
          );
        }
      }
    }
  }

  /** Notes what an item's tags are now (original layout), for the next write of them to start from. */
  private remember(item: Item): KnownTags {
    const known = knownTagsOf(item);
    if (typeof item.service === 'string' && typeof item.ip_address === 'string') {
      this.knownTags.set(knownKey(item.service, item.ip_address), known);
    }
    return known;
  }

  private async getItem(service: string, ipAddress: string): Promise<Item | undefined> {
    const output = await this.send('GetItem', (abortSignal) =>
      this.documents.send(
        new GetCommand({ TableName: this.tableName, Key: { service, ip_address: ipAddress }, ConsistentRead: true }),
        { abortSignal },
      ),
    );
    return output.Item;
  }

  async get(service: string, ipAddress: string): Promise<Host | undefined> {
    const item = await this.getItem(service, ipAddress);
    if (!item) return undefined;
    await this.noteRead(item);
    return hostFromItem(item);
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
    const { repoIndexName } = await this.tableShape();
    return this.query({
      TableName: this.tableName,
      IndexName: repoIndexName,
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
    this.knownTags.delete(knownKey(service, ipAddress));
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

  /**
   * One conditional DeleteItem: DynamoDB itself refuses when a heartbeat moved `last_check_in`
   * meanwhile. The check-in is named in each spelling a writer of the table stores it in
   * (ours, pynamodb's), since the domain only knows it in the served form.
   */
  async deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean> {
    const spellings = storedCheckInSpellings(lastCheckIn);
    const values = Object.fromEntries(spellings.map((spelling, index) => [`:check${index}`, spelling]));
    try {
      await this.send('DeleteItem', (abortSignal) =>
        this.documents.send(
          new DeleteCommand({
            TableName: this.tableName,
            Key: { service, ip_address: ipAddress },
            ConditionExpression: `#check IN (${Object.keys(values).join(', ')})`,
            ExpressionAttributeNames: { '#check': 'last_check_in' },
            ExpressionAttributeValues: values,
          }),
          { abortSignal },
        ),
      );
      this.knownTags.delete(knownKey(service, ipAddress));
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  /**
   * Our layout: one conditional UpdateItem naming only tag attributes, so a concurrent heartbeat's
   * fields survive. The original's: the merged `tags` written whole, conditioned on the tags it
   * merged from (writeTags), as the original's weight routes set `tags['load_balancing_weight']`.
   */
  async updateTags(
    service: string,
    ipAddress: string,
    tags: Readonly<Record<string, unknown>>,
  ): Promise<Host | undefined> {
    const { layout } = await this.tableShape();
    if (Object.keys(tags).length === 0) return this.get(service, ipAddress);
    if (layout === 'original') {
      const item = await this.writeTags(
        service,
        ipAddress,
        'skip',
        (known) => mergeTags(known?.tags ?? {}, tags),
        (merged) => ({
          names: { '#tags': TAGS_ATTRIBUTE },
          values: { ':tags': pythonJsonDumps(merged) },
          sets: ['#tags = :tags'],
          removes: [],
        }),
        'ALL_NEW',
      );
      return item && hostFromItem(item);
    }
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

  /**
   * One conditional UpdateItem naming only the override attribute, so a concurrent heartbeat's
   * fields survive; in either layout, since the original's model ignores the attribute.
   */
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
      for (const item of output.Items ?? []) {
        await this.noteRead(item);
        hosts.push(hostFromItem(item));
      }
      startKey = output.LastEvaluatedKey;
    } while (startKey);
    return hosts;
  }

  /**
   * In the original's layout, what a read found is what the next write of that host's tags
   * starts from: a weight set right after a GET, or a heartbeat after this replica listed the
   * service, then costs one conditional write and no read.
   */
  private async noteRead(item: Item): Promise<void> {
    if ((await this.tableShape()).layout === 'original') this.remember(item);
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

/**
 * A record from an item of either layout; tolerant of missing fields so a hand-edited item still
 * reads. Tags: the original's `tags` JSON attribute, then each `tag:<key>` attribute of ours over
 * it. Where an item holds both, ours win key by key: only a writer in our layout sets them, and
 * every write in the original's layout drops them (the original's `save` puts the whole item;
 * ours folds them into `tags` and removes them), so when both are there ours are the newer.
 * `last_check_in` is served in the v1 form whichever form it was stored in.
 */
export function hostFromItem(item: Item): Host {
  const tags: [string, unknown][] = [];
  let tagsText: string | undefined;
  if (typeof item[TAGS_ATTRIBUTE] === 'string') {
    const original = tagsOfOriginalItem(item[TAGS_ATTRIBUTE]);
    if (typeof original === 'string') tagsText = original;
    else tags.push(...Object.entries(original));
  }
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
      last_check_in: storedCheckInAsServed(String(item.last_check_in ?? '')),
      // Tags that are not a JSON object go on as the text, for the record check to refuse the record.
      // fromEntries defines own properties, so a tag named `__proto__` stays plain data.
      tags: tagsText === undefined ? Object.fromEntries(tags) : (tagsText as unknown as HostTags),
    },
    reported === undefined ? undefined : (String(reported) as NotUpStatus),
    override === undefined ? undefined : (String(override) as InstanceStatus),
  );
}

/** What a write of the item's tags in the original's layout starts from. */
function knownTagsOf(item: Item): KnownTags {
  const text = typeof item[TAGS_ATTRIBUTE] === 'string' ? item[TAGS_ATTRIBUTE] : undefined;
  const read = hostFromItem(item).tags;
  return {
    text,
    // Unreadable tags text is replaced by what the write merges, rather than kept failing.
    tags: typeof read === 'object' ? read : {},
    tagAttributes: Object.keys(item).filter((attribute) => attribute.startsWith(TAG_ATTRIBUTE_PREFIX)),
  };
}

function knownKey(service: string, ipAddress: string): string {
  return `${service}\u0000${ipAddress}`;
}

/** The pieces of an UpdateItem being built: placeholders and clauses. */
interface UpdateParts {
  readonly names: Record<string, string>;
  readonly values: Record<string, unknown>;
  readonly sets: string[];
  readonly removes: string[];
}

function updateExpression(sets: readonly string[], removes: readonly string[]): string {
  const set = `SET ${sets.join(', ')}`;
  return removes.length === 0 ? set : `${set} REMOVE ${removes.join(', ')}`;
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
