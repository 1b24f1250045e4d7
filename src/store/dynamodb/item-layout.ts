/**
 * The two ways a host can be laid out in a DynamoDB item, and the conversions between them and
 * the record the domain serves.
 *
 * - `original`: the original service's pynamodb 3.2.1 model (its `app/models/host.py`): all tags
 *   as one string attribute `tags` holding the JSON text of the tags object, `last_check_in` in
 *   pynamodb's `UTCDateTimeAttribute` format, `service_repo_name` absent when empty, repo index
 *   `service_repo_name_index`. The original reads nothing else and ignores attributes its model
 *   does not declare, so an item we write this way is a host it can serve, and the other way round.
 * - `discovery`: this service's own layout, each tag its own attribute `tag:<key>`, so that a
 *   heartbeat merges tags with one `SET` and no read; repo index `service_repo_name-index`.
 *
 * Reading accepts both, always, on any table.
 */
import { formatCheckIn, type HostTags } from '../../hosts/model.js';

export type ItemLayout = 'original' | 'discovery';

export const ITEM_LAYOUTS: readonly ItemLayout[] = ['original', 'discovery'];

/** The original's repo index: pynamodb names an index after its model attribute when `Meta.index_name` is unset. */
export const ORIGINAL_REPO_INDEX_NAME = 'service_repo_name_index';

/** This service's repo index, on tables it created before it knew the original's name. */
export const DISCOVERY_REPO_INDEX_NAME = 'service_repo_name-index';

/** The original's one attribute holding every tag, as JSON text. */
export const TAGS_ATTRIBUTE = 'tags';

/**
 * A check-in as pynamodb 3.2.1 stores a `UTCDateTimeAttribute`: `strftime('%Y-%m-%dT%H:%M:%S.%f%z')`
 * of a UTC datetime, so always six fraction digits and `+0000`. pynamodb 5 and later parse this
 * format strictly; 3.x falls back to dateutil for anything else.
 */
export function pynamodbCheckIn(checkIn: string): string {
  const normalized = storedCheckInAsServed(checkIn);
  return `${normalized.slice(0, 10)}T${normalized.slice(11)}+0000`;
}

/**
 * Date, time, up to six fraction digits, and an offset: what pynamodb writes (`+0000`), and the
 * forms its dateutil fallback reads that other writers of a table leave (`+00:00`, `Z`, none).
 */
const STORED_CHECK_IN = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * A stored `last_check_in` in the form the v1 API serves (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC),
 * whichever of the accepted forms it was stored in; text in no accepted form is returned as it
 * is, for the domain's record check to refuse. A time without an offset is UTC, as the original
 * took it (`pytz.utc.localize`).
 */
export function storedCheckInAsServed(stored: string): string {
  const match = STORED_CHECK_IN.exec(stored);
  if (!match) return stored;
  const [, date = '', time = '', fraction = '', offset = ''] = match;
  const micros = fraction.padEnd(6, '0');
  const offsetMinutes = offsetInMinutes(offset);
  if (offsetMinutes === 0) return `${date} ${time}.${micros}`;
  // Offsets are whole minutes, so the fraction is untouched and only the seconds move.
  const seconds = Date.parse(`${date}T${time}Z`);
  if (Number.isNaN(seconds)) return stored;
  return `${formatCheckIn(seconds - offsetMinutes * 60_000).slice(0, 19)}.${micros}`;
}

function offsetInMinutes(offset: string): number {
  if (offset === '' || offset === 'Z') return 0;
  const digits = offset.slice(1).replace(':', '');
  const minutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2));
  return offset.startsWith('-') ? -minutes : minutes;
}

/**
 * The spellings a check-in the domain knows as `served` may have in an item: ours, pynamodb's,
 * and the dateutil forms with `+00:00` and `Z`. A conditional delete of an expired host names
 * them all, so it removes the host whichever writer stored it, and still never a fresher one.
 */
export function storedCheckInSpellings(served: string): string[] {
  const iso = `${served.slice(0, 10)}T${served.slice(11)}`;
  return [served, `${iso}+0000`, `${iso}+00:00`, `${iso}Z`];
}

/**
 * `json.dumps(value)` as Python writes it with its defaults (what pynamodb's `JSONAttribute`
 * stores): `, ` and `: ` between items, non-ASCII characters escaped as `\uXXXX`. An item we
 * write then holds the same bytes the original would write for the same tags.
 */
export function pythonJsonDumps(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value) ?? 'null';
    return typeof value === 'string' ? asciiOnly(text) : text;
  }
  if (Array.isArray(value)) return `[${value.map(pythonJsonDumps).join(', ')}]`;
  const members: string[] = [];
  for (const [key, member] of Object.entries(value)) {
    if (member === undefined) continue; // no JSON form, and absent when read back anyway
    members.push(`${asciiOnly(JSON.stringify(key))}: ${pythonJsonDumps(member)}`);
  }
  return `{${members.join(', ')}}`;
}

function asciiOnly(json: string): string {
  // JSON.stringify already escaped quotes, backslashes and control characters, as Python does.
  return json.replace(/[\u0080-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * `json.loads(text, strict=False)`, pynamodb's `JSONAttribute` read: JSON, except that control
 * characters (a raw newline, a tab) may stand unescaped inside strings. Throws on anything else.
 */
export function pythonJsonLoads(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const escaped = escapeControlsInStrings(text);
    if (escaped === text) throw error;
    return JSON.parse(escaped);
  }
}

function escapeControlsInStrings(text: string): string {
  let out = '';
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const char = text[index]!;
    const code = char.charCodeAt(0);
    if (inString && char === '\\') {
      out += char + (text[index + 1] ?? '');
      index++;
      continue;
    }
    if (char === '"') inString = !inString;
    out += inString && code < 0x20 ? `\\u${code.toString(16).padStart(4, '0')}` : char;
  }
  return out;
}

/**
 * The tags of an item in the original's layout, or the text itself when it is not a JSON object
 * (the domain's record check then refuses the record, as the original would fail on it).
 */
export function tagsOfOriginalItem(text: string): HostTags | string {
  try {
    const tags = pythonJsonLoads(text);
    if (tags !== null && typeof tags === 'object' && !Array.isArray(tags)) return tags as HostTags;
  } catch {
    // fall through: not JSON
  }
  return text;
}
