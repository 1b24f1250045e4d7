import ipaddr from 'ipaddr.js';
import { Compile } from 'typebox/compile';
import { parseBoolean } from '../booleans.js';
import { InvalidInputError, NotFoundError } from '../errors.js';
import { canonicalIp } from '../hosts/ip-address.js';
import { jsonDepthExceeds, plainJsonProblem } from '../hosts/json-limits.js';
import {
  INSTANCE_STATUSES,
  isInstanceStatus,
  PORT_MAX,
  PORT_MIN,
  TAG_VALUE_DEPTH_MAX,
  WEIGHT_MAX,
  WEIGHT_MIN,
  type HostTags,
  type InstanceStatus,
  type NotUpStatus,
} from '../hosts/model.js';
import type { StatusQuery } from '../hosts/status-views.js';
import { TAGS_TEXT_MAX, Tags } from './schemas.js';

const tagsValidator = Compile(Tags);

/** An address range as `ipaddr.parseCIDR` reads it (AUTO_IP_ALLOWED_RANGES): the network and its prefix length. */
export type CidrRange = [ipaddr.IPv4 | ipaddr.IPv6, number];

export const WEIGHT_MISSING = "Required parameter 'weight' is missing.";
export const WEIGHT_INVALID = `Invalid load_balancing_weight. Supply an integer between ${WEIGHT_MIN} and ${WEIGHT_MAX}.`;
export const TAGS_NOT_JSON = 'Invalid json supplied in tags';

export function requireIp(text: string, field = 'ip'): string {
  const ip = canonicalIp(text);
  if (ip === undefined) throw new InvalidInputError(`Invalid parameter '${field}': not an IPv4 or IPv6 address.`);
  return ip;
}

/** The IP a delete route names, canonical; a 400 naming the field when it is no IPv4 or IPv6 address (as the original). */
export function parseIpToRemove(text: string): string {
  const ip = canonicalIp(text);
  if (ip === undefined)
    throw new InvalidInputError(`Invalid parameter 'ip_address': '${text}' is not an IPv4 or IPv6 address.`);
  return ip;
}

/** The IP a weight or status route names, canonical; what is no address names no host: a 404, as for an unknown one. */
export function parseIpToUpdate(text: string): string {
  const ip = canonicalIp(text);
  if (ip === undefined) throw new NotFoundError('Host not found');
  return ip;
}

export const PORT_INVALID = `Invalid parameter 'port': must be an integer from ${PORT_MIN} to ${PORT_MAX}, written as digits.`;

/** The whitespace Python's `int()` strips around a number (its `str.isspace()`, less the four separators it refuses). */
const PYTHON_INT_SPACE = '[\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*';

/**
 * What Python's `int(text)` reads as a decimal integer: whitespace (a trailing newline from
 * `--data-urlencode port@file` included), a sign, and digits (any script's, as Python's), single
 * underscores allowed between them.
 */
const PYTHON_INT = new RegExp(`^${PYTHON_INT_SPACE}([+-]?)(\\p{Nd}+(?:_\\p{Nd}+)*)${PYTHON_INT_SPACE}$`, 'u');

/**
 * A decimal digit's value: Unicode encodes each script's digits as a run of ten from zero, and
 * runs that touch (the mathematical digits) each start at a zero, so the value is the distance
 * from the start of its block of consecutive digits, modulo ten.
 */
function digitValue(char: string): number {
  let code = char.codePointAt(0)!;
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const start = code;
  while (/\p{Nd}/u.test(String.fromCodePoint(code - 1))) code--;
  return (start - code) % 10;
}

/**
 * The integer `text` writes as Python's `int()` reads it (the original's rule for ports and
 * weights), or undefined when `int()` would raise. Numbers past 2^53 come back inexact, which
 * no caller minds: they are out of every range checked here.
 */
export function pythonInt(text: string): number | undefined {
  const match = PYTHON_INT.exec(text);
  if (!match) return undefined;
  let value = 0;
  for (const char of match[2]!) if (char !== '_') value = value * 10 + digitValue(char);
  return match[1] === '-' ? -value : value;
}

/**
 * The port from a form string or a JSON number, as the original's `int()` read it: `80`, ` 80`,
 * `80\\n` and `+80` are 80; `Infinity`, `1e3`, `80.0`, `0x50` and anything out of range are a
 * 400, so no number that JSON cannot write (or a proxy cannot dial) is ever stored.
 */
export function parsePort(raw: unknown): number {
  let port: number | undefined;
  if (typeof raw === 'number') port = raw;
  else if (typeof raw === 'string') port = pythonInt(raw);
  if (port === undefined || !Number.isInteger(port) || port < PORT_MIN || port > PORT_MAX)
    throw new InvalidInputError(PORT_INVALID);
  return port;
}

/** `tags` as sent: an object, or a JSON string of one. Checked against the tags schema. */
export function parseTags(raw: unknown): HostTags {
  let tags = raw;
  if (typeof raw === 'string') {
    try {
      tags = JSON.parse(raw);
    } catch {
      throw new InvalidInputError(TAGS_NOT_JSON);
    }
  }
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    throw new InvalidInputError("Invalid parameter 'tags': must be a JSON object.");
  }
  // Before anything else walks them: the tags object is one level, each value at most TAG_VALUE_DEPTH_MAX more.
  const tooDeep = jsonDepthExceeds(tags, TAG_VALUE_DEPTH_MAX + 1);
  if (tooDeep !== undefined) {
    throw new InvalidInputError(
      `Invalid parameter 'tags.${String(tooDeep[0])}': nested deeper than ${TAG_VALUE_DEPTH_MAX} levels.`,
    );
  }
  // A string was bounded by the body schema; an object only by the body limit, which may be megabytes.
  if (typeof raw !== 'string' && JSON.stringify(tags).length > TAGS_TEXT_MAX) {
    throw new InvalidInputError(`Invalid parameter 'tags': more than ${TAGS_TEXT_MAX} characters of JSON.`);
  }
  // Nothing after this (the schema check, merging, hashing, encoding) meets a number JSON cannot write.
  for (const [key, value] of Object.entries(tags)) {
    const problem = plainJsonProblem(value, TAG_VALUE_DEPTH_MAX);
    if (problem !== undefined) throw new InvalidInputError(`Invalid parameter 'tags.${key}': ${problem}.`);
  }
  if (!tagsValidator.Check(tags)) {
    const [first] = tagsValidator.Errors(tags);
    throw new InvalidInputError(`Invalid parameter 'tags': ${describeSchemaError(first)}`);
  }
  for (const key of Object.keys(tags)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      throw new InvalidInputError(`Invalid parameter 'tags': the key '${key}' is not allowed.`);
    }
  }
  return tags as HostTags;
}

function describeSchemaError(error: { instancePath: string; message: string; params?: unknown } | undefined): string {
  if (!error) return 'not valid.';
  const params = error.params as { requiredProperties?: string[] } | undefined;
  if (params?.requiredProperties?.length) return `'${params.requiredProperties.join("', '")}' required.`;
  const field = error.instancePath.replace(/^\//, '').replaceAll('/', '.');
  return field ? `'${field}' ${error.message}.` : `${error.message}.`;
}

/** The load-balancing weight from a form string (read as Python's `int()` does) or a JSON number, with the original's messages. */
export function parseWeight(raw: unknown): number {
  if (raw === undefined || raw === null || raw === '') throw new InvalidInputError(WEIGHT_MISSING);
  const weight = typeof raw === 'number' ? raw : typeof raw === 'string' ? pythonInt(raw) : undefined;
  if (weight === undefined || !Number.isInteger(weight) || weight < WEIGHT_MIN || weight > WEIGHT_MAX)
    throw new InvalidInputError(WEIGHT_INVALID);
  return weight;
}

const STATUS_NAMES = INSTANCE_STATUSES.join(', ');

/**
 * A status as sent (a heartbeat's `status`, an override's body), one of the names exactly:
 * the one rule for every status a request carries. `field` names it in the 400.
 */
export function parseStatus(raw: unknown, field = 'status'): InstanceStatus {
  if (raw === undefined || raw === null || raw === '')
    throw new InvalidInputError(`Required parameter '${field}' is missing: one of ${STATUS_NAMES}.`);
  if (!isInstanceStatus(raw))
    throw new InvalidInputError(`Invalid parameter '${field}': must be one of ${STATUS_NAMES}.`);
  return raw;
}

/**
 * A heartbeat's `status`, the host's own word, as stored: absent (or `UP`) is undefined, so an
 * UP host's record stays exactly what it was before statuses; anything else not a status is a 400.
 */
export function parseReportedStatus(raw: unknown): NotUpStatus | undefined {
  if (raw === undefined) return undefined;
  const status = parseStatus(raw);
  return status === 'UP' ? undefined : status;
}

/** A list read's `?status=`: absent, `all`, or one status name. */
export function parseStatusQuery(raw: string | undefined): StatusQuery {
  if (raw === undefined || raw === 'all') return raw;
  if (isInstanceStatus(raw)) return raw;
  throw new InvalidInputError(`Invalid parameter 'status': must be 'all' or one of ${STATUS_NAMES}.`);
}

/** Where the request came from, as the HTTP front end saw it. */
export interface ClientAddress {
  /** The socket's remote address. */
  readonly socketAddress: string;
  /** Every X-Forwarded-For entry, in header order (nearest proxy last). */
  readonly forwardedFor: readonly string[];
}

/**
 * The client's own address seen through `trustedHops` proxies: each trusted proxy appends the
 * address it received from, so the entry `trustedHops` from the end is the client (0 hops:
 * the socket). With fewer entries than hops, the first one is the best available.
 */
export function resolveClientIp(client: ClientAddress, trustedHops: number): string {
  if (trustedHops === 0 || client.forwardedFor.length === 0) return client.socketAddress;
  const index = Math.max(0, client.forwardedFor.length - trustedHops);
  return client.forwardedFor[index] ?? client.socketAddress;
}

/** The address `auto_ip` registers, or a 400 when it is not inside an allowed range. */
export function autoIp(client: ClientAddress, trustedHops: number, allowed: readonly CidrRange[]): string {
  const seen = resolveClientIp(client, trustedHops).trim();
  const ip = canonicalIp(seen);
  if (ip === undefined)
    throw new InvalidInputError(`Invalid parameter 'auto_ip': client address '${seen}' is not an IP address.`);
  const parsed = ipaddr.parse(ip);
  const inside = allowed.some(([range, bits]) => range.kind() === parsed.kind() && parsed.match(range, bits));
  if (!inside) {
    const ranges = allowed.map(([range, bits]) => `${range.toString()}/${bits}`).join(', ');
    throw new InvalidInputError(
      `Invalid parameter 'auto_ip': client address ${ip} is outside the accepted ranges (${ranges || 'none'}).`,
    );
  }
  return ip;
}

/** A flag sent as a JSON boolean or a form string (`true`, `1`, `yes`…); anything else is a 400. */
export function parseFlagField(field: string, value: boolean | string): boolean {
  if (typeof value === 'boolean') return value;
  if (value.trim() === '') return false;
  const parsed = parseBoolean(value);
  if (parsed === undefined) throw new InvalidInputError(`Invalid parameter '${field}': use true or false.`);
  return parsed;
}
