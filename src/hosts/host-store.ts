import type { ChangeLog } from './change-log.js';
import type { Heartbeat, Host, InstanceStatus } from './model.js';

/** What a heartbeat did: the record before (absent for a new host) and after the merge. */
export interface HeartbeatResult {
  readonly previous: Host | undefined;
  readonly current: Host;
}

/** Hosts of one service as storage holds them, expired ones included. */
export interface ServiceHosts {
  readonly hosts: readonly Host[];
  /**
   * Optional: a value that changes whenever any record of the service changes. A store that
   * gives one lets the domain reuse what it built from the same records; one that cannot
   * (a shared remote table) leaves it undefined.
   */
  readonly changeToken?: number;
}

/**
 * The one storage interface every backend implements (InMemory, InFile, DynamoDB, plugins).
 * Stores keep records and apply writes atomically; every rule (validation, expiry, caching,
 * change events) lives in the domain layer above. Failures are thrown, never swallowed:
 * a store that cannot be reached throws `StorageUnavailableError`.
 */
export interface HostStore {
  /**
   * Creates the record or updates it: `port`, `revision`, `service_repo_name` and `last_check_in`
   * are replaced and `tags` are merged (incoming keys overwrite, absent keys are kept), as one
   * atomic write, so a weight set meanwhile survives. `reported_status` is replaced (absent: the
   * stored one is removed) and `status_override` is kept. Idempotent for the same input.
   */
  heartbeat(heartbeat: Heartbeat): Promise<HeartbeatResult>;

  get(service: string, ipAddress: string): Promise<Host | undefined>;

  /** Every stored record of `service`, expired ones included, in no particular order. */
  listByService(service: string): Promise<ServiceHosts>;

  /**
   * Optional, synchronous: the `changeToken` that `listByService` would give now. Stores that
   * hold every record in this process offer it, so a read that nothing has changed since costs
   * no storage call at all; a shared remote table cannot know and leaves it out.
   */
  currentChangeToken?(service: string): number | undefined;

  /** Every stored record whose `service_repo_name` is `repo` (never `""`), across services. */
  listByRepo(repo: string): Promise<readonly Host[]>;

  /** Names of the services that have at least one stored record. */
  listServices(): Promise<readonly string[]>;

  /** Removes the record; returns what was removed, or undefined when there was no such record. */
  delete(service: string, ipAddress: string): Promise<Host | undefined>;

  /**
   * Removes the record only if its `last_check_in` is still `lastCheckIn`: the expiry path, which
   * must never remove a host whose fresh heartbeat landed after it was judged expired.
   * True when it removed the record.
   */
  deleteIfCheckInIs(service: string, ipAddress: string, lastCheckIn: string): Promise<boolean>;

  /**
   * Sets the named tags on an existing record without touching any other field (a heartbeat
   * landing meanwhile keeps its `last_check_in`). Returns the updated record, or undefined when
   * there is no such record (nothing is created).
   */
  updateTags(service: string, ipAddress: string, tags: Readonly<Record<string, unknown>>): Promise<Host | undefined>;

  /**
   * Sets the operator's `status_override` on an existing record (undefined removes it) without
   * touching any other field, like `updateTags`. Returns the updated record, or undefined when
   * there is no such record (nothing is created).
   */
  setStatusOverride(service: string, ipAddress: string, status: InstanceStatus | undefined): Promise<Host | undefined>;

  /**
   * Optional: resolves when storage answers, throws (StorageUnavailableError) when it does not;
   * the cheapest call the backend has, bounded like every other. Readiness (`GET /readyz`) calls
   * it at most every few seconds. A store without it (a plugin) is probed with a `get` of a
   * record that never exists (PROBE_KEY).
   */
  ping?(): Promise<void>;

  /**
   * Optional: a store that several replica processes share offers the log they tell each other
   * of routing changes through (ChangeFeed). Its records are kept apart from hosts: never
   * listed as a service, never counted as a host.
   */
  readonly changeLog?: ChangeLog;

  /** Releases connections and flushes pending writes. Idempotent. */
  close(): Promise<void>;
}

/** The methods a plugin module's store must have; checked when it is loaded. */
export const HOST_STORE_METHODS = [
  'heartbeat',
  'get',
  'listByService',
  'listByRepo',
  'listServices',
  'delete',
  'deleteIfCheckInIs',
  'updateTags',
  'setStatusOverride',
  'close',
] as const satisfies readonly (keyof HostStore)[];

/** The record a store without `ping` is asked for: a name no registration can have (a service name never holds `/`). */
export const PROBE_KEY = { service: 'discovery/readiness-probe', ipAddress: '0.0.0.0' } as const;

/** Probes `store`: its own `ping`, or a `get` of PROBE_KEY. */
export async function pingStore(store: HostStore): Promise<void> {
  if (store.ping) return store.ping();
  await store.get(PROBE_KEY.service, PROBE_KEY.ipAddress);
}
