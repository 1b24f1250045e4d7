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
}

/**
 * What one heartbeat says about a host: a whole record, except that its `tags` are merged into
 * the stored ones rather than replacing them.
 */
export type Heartbeat = Host;

/** Formats epoch milliseconds the way the original's `str(datetime.utcnow())` did, always with six fraction digits. */
export function formatCheckIn(epochMs: number): string {
  const wholeMs = Math.floor(epochMs);
  const iso = new Date(wholeMs).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const micros = Math.min(999, Math.round((epochMs - wholeMs) * 1000));
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${String(micros).padStart(3, '0')}`;
}

const CHECK_IN = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/;

/** Epoch milliseconds of a `last_check_in` string (microseconds kept as a fraction); NaN when unparsable. */
export function parseCheckIn(value: string): number {
  const match = CHECK_IN.exec(value);
  if (!match) return Number.NaN;
  const [, y, mo, d, h, mi, s, fraction = ''] = match;
  const micros = Number(fraction.padEnd(6, '0'));
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + micros / 1000;
}

/** The same host with `tags` merged: keys in `incoming` overwrite, keys absent from it are kept. */
export function mergeHeartbeat(previous: Host | undefined, heartbeat: Heartbeat): Host {
  return {
    service: heartbeat.service,
    ip_address: heartbeat.ip_address,
    port: heartbeat.port,
    revision: heartbeat.revision,
    service_repo_name: heartbeat.service_repo_name,
    last_check_in: heartbeat.last_check_in,
    tags: previous ? mergeTags(previous.tags, heartbeat.tags) : copyTags(heartbeat.tags),
  };
}

export function mergeTags(stored: Readonly<HostTags>, incoming: Readonly<HostTags>): HostTags {
  const merged = copyTags(stored);
  for (const [key, value] of Object.entries(incoming)) defineTag(merged, key, value);
  return merged;
}

function copyTags(tags: Readonly<HostTags>): HostTags {
  const copy: HostTags = {};
  for (const [key, value] of Object.entries(tags)) defineTag(copy, key, value);
  return copy;
}

/** Defines rather than assigns, so a key such as `__proto__` stays plain data and never reaches a prototype. */
function defineTag(target: HostTags, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Whether two records differ in anything a proxy routes on (every field but `last_check_in`). */
export function routingChanged(a: Host | undefined, b: Host | undefined): boolean {
  if (a === undefined || b === undefined) return a !== b;
  return (
    a.port !== b.port ||
    a.revision !== b.revision ||
    a.service_repo_name !== b.service_repo_name ||
    !sameJson(a.tags, b.tags)
  );
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortedKeys(a)) === JSON.stringify(sortedKeys(b));
}

/** A copy with object keys sorted at every depth, the order Flask's jsonify wrote. */
export function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      Object.defineProperty(out, key, {
        value: sortedKeys((value as Record<string, unknown>)[key]),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}
