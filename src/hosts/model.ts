import { isIP } from 'node:net';
import { plainJsonProblem } from './json-limits.js';

/**
 * Tags of a host. `az`, `region` and `instance_id` are required on every registration;
 * `canary` and `load_balancing_weight` are optional; any other key is kept as given.
 */
export type HostTags = Record<string, unknown>;

/** One host of one service, exactly as the v1 API returns it. Keyed by (`service`, `ip_address`). */
export interface Host {
  readonly service: string;
  readonly ip_address: string;
  readonly port: number;
  readonly revision: string;
  /** `""` when never set. */
  readonly service_repo_name: string;
  /** UTC `YYYY-MM-DD HH:MM:SS.ffffff`, as the original printed `datetime.utcnow()`. */
  readonly last_check_in: string;
  readonly tags: Readonly<HostTags>;
  /**
   * The host's own word on its status, from its last heartbeat; absent when it said `UP` or
   * nothing (and on every record an older writer stored). Never part of a v1 answer by default.
   */
  readonly reported_status?: NotUpStatus;
  /**
   * An operator's override of the status (PUT …/status), absent when none is set. It survives
   * heartbeats, like a weight, and wins over `reported_status`.
   */
  readonly status_override?: InstanceStatus;
}

/**
 * What an instance tells proxies: `UP` takes traffic, `DRAINING` finishes what it has (xDS serves
 * it as `health_status: DRAINING`, so no new requests go to it), `OUT_OF_SERVICE` is not served.
 */
export const INSTANCE_STATUSES = ['UP', 'DRAINING', 'OUT_OF_SERVICE'] as const;
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];
/** A status a record stores as the host's word: `UP` is stored as no word at all. */
export type NotUpStatus = Exclude<InstanceStatus, 'UP'>;

export function isInstanceStatus(value: unknown): value is InstanceStatus {
  return value === 'UP' || value === 'DRAINING' || value === 'OUT_OF_SERVICE';
}

/** The status that counts: the operator's override, else the host's own word, else `UP`. */
export function effectiveStatus(host: Host): InstanceStatus {
  return host.status_override ?? host.reported_status ?? 'UP';
}

/** The ports a host may listen on: TCP's, without 0 (which means "any" to a listener, never an address). */
export const PORT_MIN = 1;
export const PORT_MAX = 65535;

/** Bounds of `tags.load_balancing_weight`, as the original accepted it. */
export const WEIGHT_MIN = 1;
export const WEIGHT_MAX = 100;

/** How deep one tag's value may nest (a scalar is 0, `[]` is 1): deep enough for any label, shallow enough to walk cheaply. */
export const TAG_VALUE_DEPTH_MAX = 8;

/** Deepest nesting of a host's tags: the tags object itself, then its values' own levels. */
const TAGS_DEPTH_MAX = 1 + TAG_VALUE_DEPTH_MAX;

const CHECK_IN_TEXT_MAX = 32;

/**
 * Why `record` is not a host this registry can serve, or undefined when it is one: every field
 * of its type, a port in range, an IP in the canonical form writes store, a readable
 * `last_check_in`, and tags that are plain JSON (finite numbers, no cycles, bounded depth).
 * Stores are trusted to keep what they were given, not to be right: a plugin, an older writer
 * of a shared table or a damaged file can hand back anything, and this is what keeps such a
 * record from reaching a reader. Checked without recursion, so no record can overflow the stack.
 * (The request rules are stricter, in validation.ts; this is what any stored record must meet.)
 */
export function hostProblem(record: unknown): string | undefined {
  if (record === null || typeof record !== 'object') return 'not an object';
  const host = record as Record<string, unknown>;
  for (const field of ['service', 'ip_address', 'revision', 'service_repo_name', 'last_check_in'] as const) {
    if (typeof host[field] !== 'string') return `'${field}' is not a string`;
  }
  if (host.service === '') return "'service' is empty";
  if (host.revision === '') return "'revision' is empty";
  const port = host.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < PORT_MIN || port > PORT_MAX) {
    return `'port' is not an integer from ${PORT_MIN} to ${PORT_MAX}`;
  }
  const ip = host.ip_address as string;
  if (isIP(ip) === 0 || ip.includes('%')) return "'ip_address' is not an IP address";
  const checkIn = host.last_check_in as string;
  if (checkIn.length > CHECK_IN_TEXT_MAX || Number.isNaN(parseCheckIn(checkIn)))
    return "'last_check_in' is not a UTC timestamp";
  if (host.reported_status !== undefined && (host.reported_status === 'UP' || !isInstanceStatus(host.reported_status)))
    return "'reported_status' is not DRAINING or OUT_OF_SERVICE";
  if (host.status_override !== undefined && !isInstanceStatus(host.status_override))
    return `'status_override' is not one of ${INSTANCE_STATUSES.join(', ')}`;
  const tags = host.tags;
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) return "'tags' is not an object";
  const problem = plainJsonProblem(tags, TAGS_DEPTH_MAX);
  return problem === undefined ? undefined : `'tags' ${problem}`;
}

/**
 * What one heartbeat says about a host: a whole record, except that its `tags` are merged into
 * the stored ones rather than replacing them, and that it never sets the operator's override
 * (which it keeps). Its `reported_status` replaces the stored one: absent means `UP`.
 */
export type Heartbeat = Omit<Host, 'status_override'>;

/**
 * A heartbeat as a front end hands it to the domain: parsed and checked (address resolved,
 * port and tags read), everything but the time, which the domain's clock stamps.
 */
export type HeartbeatInput = Omit<Heartbeat, 'last_check_in'>;

/**
 * Who asked for a command, as the front end knows it, for the audit trail of writes: the
 * request's id, the address it came from, and the role its credential proves (worked out only
 * when a line is written).
 */
export interface Requester {
  readonly requestId: string;
  readonly address: string;
  role(): string;
}

/** `YYYY-MM-DD HH:MM:SS` of the last second formatted: a heartbeat storm formats the same second thousands of times. */
let formattedSecond = Number.NaN;
let formattedSecondText = '';

/** Formats epoch milliseconds the way the original's `str(datetime.utcnow())` did, always with six fraction digits. */
export function formatCheckIn(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const second = Math.floor(wholeMs / 1000);
  if (second !== formattedSecond) {
    const iso = new Date(second * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
    formattedSecondText = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
    formattedSecond = second;
  }
  const millis = wholeMs - second * 1000;
  const micros = Math.min(999, Math.round((epochMs - wholeMs) * 1000));
  return `${formattedSecondText}.${String(millis).padStart(3, '0')}${String(micros).padStart(3, '0')}`;
}

const CHECK_IN = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;
/** Epoch milliseconds of recently seen `YYYY-MM-DD HH:MM:SS` prefixes: a fleet's check-ins share few seconds. */
const secondsSeen = new Map<string, number>();
const SECONDS_SEEN_MAX = 4096;

/** Epoch milliseconds of a `last_check_in` string (microseconds kept as a fraction); NaN when unparsable. */
export function parseCheckIn(value: string): number {
  // The form this service writes, `YYYY-MM-DD HH:MM:SS.ffffff`, from the memo; any other through the pattern.
  if (value.length === 26 && value.charCodeAt(10) === 32 && value.charCodeAt(19) === 46) {
    const second = secondsSeen.get(value.slice(0, 19));
    const micros = sixDigits(value, 20);
    if (second !== undefined && micros >= 0) return second + micros / 1000;
  }
  const match = CHECK_IN.exec(value);
  if (!match) return Number.NaN;
  const [, y, mo, d, h, mi, s, fraction = ''] = match;
  const second = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (value.charCodeAt(10) === 32) {
    if (secondsSeen.size >= SECONDS_SEEN_MAX) secondsSeen.clear();
    secondsSeen.set(value.slice(0, 19), second);
  }
  return second + Number(fraction.padEnd(6, '0')) / 1000;
}

/** The number written by the six decimal digits at `start`, or -1 when they are not all digits. */
function sixDigits(text: string, start: number): number {
  let value = 0;
  for (let index = start; index < start + 6; index++) {
    const digit = text.charCodeAt(index) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/**
 * The same host with `tags` merged (keys in `incoming` overwrite, keys absent from it are kept),
 * the host's word on its status replaced and the operator's override kept.
 */
export function mergeHeartbeat(previous: Host | undefined, heartbeat: Heartbeat): Host {
  return withStatuses(
    {
      service: heartbeat.service,
      ip_address: heartbeat.ip_address,
      port: heartbeat.port,
      revision: heartbeat.revision,
      service_repo_name: heartbeat.service_repo_name,
      last_check_in: heartbeat.last_check_in,
      tags: previous ? mergeTags(previous.tags, heartbeat.tags) : copyTags(heartbeat.tags),
    },
    heartbeat.reported_status,
    previous?.status_override,
  );
}

/**
 * `host` with the two optional status fields set as given; an absent one is left out of the
 * object altogether, so a record of an `UP` host has exactly the fields it had before statuses.
 */
export function withStatuses(
  host: Host,
  reported: NotUpStatus | undefined,
  override: InstanceStatus | undefined,
): Host {
  // Built field by field, in one literal per case, so every record of a shape shares V8's
  // compact layout: rest-and-spread copies made each record a larger object (the 100,000-host
  // scale benchmark went from 289 to 307 MB resident).
  const fields = {
    service: host.service,
    ip_address: host.ip_address,
    port: host.port,
    revision: host.revision,
    service_repo_name: host.service_repo_name,
    last_check_in: host.last_check_in,
    tags: host.tags,
  };
  if (reported === undefined && override === undefined) return fields;
  if (override === undefined) return { ...fields, reported_status: reported };
  if (reported === undefined) return { ...fields, status_override: override };
  return { ...fields, reported_status: reported, status_override: override };
}

export function mergeTags(stored: Readonly<HostTags>, incoming: Readonly<HostTags>): HostTags {
  const merged = copyTags(stored);
  for (const [key, value] of Object.entries(incoming)) setOwn(merged, key, value);
  return merged;
}

function copyTags(tags: Readonly<HostTags>): HostTags {
  const copy: HostTags = {};
  for (const [key, value] of Object.entries(tags)) setOwn(copy, key, value);
  return copy;
}

/** Assigns, except that `__proto__` is defined, so it stays plain data and never reaches a prototype. */
function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__')
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** Whether two records differ in anything a proxy routes on (every field but `last_check_in`). */
export function routingChanged(a: Host | undefined, b: Host | undefined): boolean {
  if (a === undefined || b === undefined) return a !== b;
  return (
    a.port !== b.port ||
    a.revision !== b.revision ||
    a.service_repo_name !== b.service_repo_name ||
    effectiveStatus(a) !== effectiveStatus(b) ||
    !sameJson(a.tags, b.tags)
  );
}

/**
 * How deep two values are compared before they are taken as different: far past what a
 * heartbeat may send, and a bound on the stack for records from elsewhere (another writer of a
 * shared table) that nest deeper; "different" only costs an xDS push.
 */
const SAME_JSON_DEPTH_MAX = 64;

/** Equal as JSON values, whatever the order of object keys. */
function sameJson(a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return true;
  if (depth > SAME_JSON_DEPTH_MAX) return false;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, index) => sameJson(item, b[index], depth + 1));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every(
    (key) =>
      Object.hasOwn(b, key) &&
      sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], depth + 1),
  );
}

/** A copy with object keys sorted at every depth, the order Flask's jsonify wrote. */
export function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) setOwn(out, key, sortedKeys((value as Record<string, unknown>)[key]));
    return out;
  }
  return value;
}
