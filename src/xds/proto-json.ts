import protobuf from 'protobufjs';
import { formatJsonPath, jsonDepthExceeds } from '../hosts/json-limits.js';
import { xdsProtos } from './protos.js';

/**
 * The proto3 JSON mapping (what Envoy's REST xDS and `JsonStringToMessage` speak), driven by the
 * loaded protos: lowerCamelCase names, enums by name, 64-bit integers as strings, bytes as
 * base64, `Any` with `@type`, and the well-known types in their special forms (wrappers as bare
 * values, `Duration` as `"1.5s"`, `Struct` as a JSON object). protobufjs's own `toObject` is not
 * this mapping (it writes wrappers as `{"value": …}`), which a real Envoy would reject.
 */

/** A JSON value that does not fit the message it is read as. */
export class ProtoJsonError extends Error {
  override readonly name = 'ProtoJsonError';
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Plain = Record<string, unknown>;

const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (kind) => `.google.protobuf.${kind}Value`,
  ),
);
/** Well-known types whose JSON form is not an object of fields, so inside `Any` they sit under `value`. */
const SPECIAL_FORM = new Set([
  ...WRAPPERS,
  '.google.protobuf.Duration',
  '.google.protobuf.Timestamp',
  '.google.protobuf.Struct',
  '.google.protobuf.Value',
  '.google.protobuf.ListValue',
  '.google.protobuf.FieldMask',
]);
const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const INT32_TYPES = new Set(['int32', 'uint32', 'sint32', 'fixed32', 'sfixed32']);

/** protoc's default `json_name`: underscores dropped, the letter after each one upper-cased. */
export function lowerCamel(name: string): string {
  return name.replace(/_([a-zA-Z0-9])/g, (_match, letter: string) => letter.toUpperCase());
}

function jsonName(field: protobuf.Field): string {
  const explicit = field.options?.json_name as string | undefined;
  return explicit ?? lowerCamel(field.name);
}

/** The field of a well-known type by its proto name; protobufjs spells some bundled ones in camelCase. */
function wktField(type: protobuf.Type, protoName: string): string {
  if (type.fields[protoName]) return protoName;
  return lowerCamel(protoName);
}

// ---------------------------------------------------------------- message -> JSON

/** A decoded message as proto3 JSON. */
export function messageToJson(type: protobuf.Type, message: object): Json {
  const value = message as Plain;
  switch (type.fullName) {
    case '.google.protobuf.Any':
      return anyToJson(value);
    case '.google.protobuf.Duration':
      return durationToJson(value.seconds, Number(value.nanos ?? 0));
    case '.google.protobuf.Timestamp': {
      const millis = Number(String(value.seconds ?? 0)) * 1000 + Math.floor(Number(value.nanos ?? 0) / 1e6);
      return new Date(millis).toISOString();
    }
    case '.google.protobuf.Struct':
      return structToJson(value);
    case '.google.protobuf.Value':
      return valueToJson(type, value);
    case '.google.protobuf.ListValue':
      return ((value.values ?? []) as Plain[]).map((item) => valueToJson(type.lookupType('Value'), item));
    case '.google.protobuf.FieldMask':
      return ((value.paths ?? []) as string[]).map(lowerCamel).join(',');
  }
  if (WRAPPERS.has(type.fullName)) {
    const field = type.fields.value;
    return field && Object.hasOwn(value, 'value')
      ? scalarToJson(field, value.value)
      : defaultScalarJson(type.fields.value);
  }
  const out: { [key: string]: Json } = {};
  for (const field of type.fieldsArray) {
    if (!Object.hasOwn(value, field.name)) continue;
    const raw = value[field.name];
    if (raw === undefined || raw === null) continue;
    if (field.map) {
      const entries = Object.entries(raw as Plain);
      if (entries.length === 0) continue;
      out[jsonName(field)] = Object.fromEntries(entries.map(([key, item]) => [key, fieldValueToJson(field, item)]));
    } else if (field.repeated) {
      const items = raw as unknown[];
      if (items.length === 0) continue;
      out[jsonName(field)] = items.map((item) => fieldValueToJson(field, item));
    } else {
      if (!field.partOf && isDefaultScalar(field, raw)) continue;
      out[jsonName(field)] = fieldValueToJson(field, raw);
    }
  }
  return out;
}

function fieldValueToJson(field: protobuf.Field, value: unknown): Json {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    const name = resolved.valuesById[Number(value)];
    return name ?? Number(value);
  }
  if (resolved instanceof protobuf.Type) return messageToJson(resolved, value as object);
  return scalarToJson(field, value);
}

function scalarToJson(field: protobuf.Field, value: unknown): Json {
  if (LONG_TYPES.has(field.type)) return String(value);
  if (field.type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64');
  if ((field.type === 'double' || field.type === 'float') && typeof value === 'number' && !Number.isFinite(value)) {
    return Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
  }
  return value as Json;
}

function defaultScalarJson(field: protobuf.Field | undefined): Json {
  if (!field) return null;
  if (field.type === 'bool') return false;
  if (field.type === 'string' || field.type === 'bytes') return '';
  return LONG_TYPES.has(field.type) ? '0' : 0;
}

function isDefaultScalar(field: protobuf.Field, value: unknown): boolean {
  if (field.resolvedType instanceof protobuf.Type) return false;
  if (field.resolvedType instanceof protobuf.Enum) return Number(value) === 0;
  if (field.type === 'bytes') return (value as Uint8Array).length === 0;
  if (LONG_TYPES.has(field.type)) return String(value) === '0';
  return value === 0 || value === '' || value === false;
}

function anyToJson(value: Plain): Json {
  const typeUrl = String(value.type_url ?? '');
  const inner = xdsProtos().typeOf(typeUrl);
  if (!inner) throw new ProtoJsonError(`cannot write an Any of unknown type ${typeUrl}`);
  const decoded = inner.decode((value.value as Uint8Array | undefined) ?? new Uint8Array());
  const json = messageToJson(inner, decoded);
  if (SPECIAL_FORM.has(inner.fullName)) return { '@type': typeUrl, value: json };
  return { '@type': typeUrl, ...(json as { [key: string]: Json }) };
}

function durationToJson(secondsRaw: unknown, nanos: number): string {
  const seconds = BigInt(String(secondsRaw ?? 0));
  const negative = seconds < 0n || nanos < 0;
  const whole = (seconds < 0n ? -seconds : seconds).toString();
  const fraction = Math.abs(nanos);
  if (fraction === 0) return `${negative ? '-' : ''}${whole}s`;
  const digits = String(fraction)
    .padStart(9, '0')
    .replace(/(?:000)+$/, '');
  return `${negative ? '-' : ''}${whole}.${digits}s`;
}

function structToJson(value: Plain): Json {
  const valueType = xdsProtos().root.lookupType('google.protobuf.Value');
  const fields = (value.fields ?? {}) as Record<string, Plain>;
  return Object.fromEntries(Object.entries(fields).map(([key, item]) => [key, valueToJson(valueType, item)]));
}

function valueToJson(valueType: protobuf.Type, value: Plain): Json {
  const pick = (name: string) => value[wktField(valueType, name)];
  if (pick('struct_value') !== undefined && pick('struct_value') !== null)
    return structToJson(pick('struct_value') as Plain);
  if (pick('list_value') !== undefined && pick('list_value') !== null) {
    return (((pick('list_value') as Plain).values as Plain[] | undefined) ?? []).map((item) =>
      valueToJson(valueType, item),
    );
  }
  if (Object.hasOwn(value, wktField(valueType, 'bool_value'))) return Boolean(pick('bool_value'));
  if (Object.hasOwn(value, wktField(valueType, 'string_value'))) return String(pick('string_value'));
  if (Object.hasOwn(value, wktField(valueType, 'number_value'))) return Number(pick('number_value'));
  return null;
}

// ---------------------------------------------------------------- JSON -> plain object

/**
 * How deep JSON read as a message may nest (every object and array counts). The reader below
 * recurses once per level, and protobufjs refuses messages nested past 100 levels
 * (`util.recursionLimit`, protoc's default) where a JSON level of a `Struct` is two messages
 * (Struct, Value); 32 stays clear of both. Envoy's node metadata nests a handful of levels.
 */
export const PROTO_JSON_DEPTH_MAX = 32;
/** How many keys of a too-deep path an error names: enough to find the field, not the whole chain. */
const PATH_SHOWN = 4;

/**
 * Reads proto3 JSON as message `type`, strictly: unknown fields, wrong JSON types and two
 * members of one oneof are errors. Accepts both the JSON name and the proto name of each field,
 * as the mapping requires. Returns a plain object that protobufjs's `type.fromObject` takes.
 * JSON nested deeper than PROTO_JSON_DEPTH_MAX is refused before anything recursive sees it.
 */
export function messageFromJson(type: protobuf.Type, json: unknown, where = type.name): Plain {
  const tooDeep = jsonDepthExceeds(json, PROTO_JSON_DEPTH_MAX);
  if (tooDeep !== undefined) {
    const field = formatJsonPath('', tooDeep.slice(0, PATH_SHOWN)) + (tooDeep.length > PATH_SHOWN ? '…' : '');
    throw new ProtoJsonError(`${where}: '${field}' nested deeper than ${PROTO_JSON_DEPTH_MAX} levels`);
  }
  return readMessage(type, json, where);
}

function readMessage(type: protobuf.Type, json: unknown, where: string): Plain {
  switch (type.fullName) {
    case '.google.protobuf.Any':
      return anyFromJson(json, where);
    case '.google.protobuf.Duration':
      return durationFromJson(json, where);
    case '.google.protobuf.Timestamp': {
      const millis = typeof json === 'string' ? Date.parse(json) : Number.NaN;
      if (Number.isNaN(millis)) throw new ProtoJsonError(`${where}: expected an RFC 3339 timestamp`);
      return { seconds: String(Math.floor(millis / 1000)), nanos: (millis % 1000) * 1e6 };
    }
    case '.google.protobuf.Struct':
      return structFromJson(type, json, where);
    case '.google.protobuf.Value':
      return valueFromJson(type, json, where);
    case '.google.protobuf.ListValue':
      if (!Array.isArray(json)) throw new ProtoJsonError(`${where}: expected an array`);
      return { values: json.map((item, index) => valueFromJson(type.lookupType('Value'), item, `${where}[${index}]`)) };
    case '.google.protobuf.FieldMask':
      if (typeof json !== 'string') throw new ProtoJsonError(`${where}: expected a string`);
      return {
        paths: json === '' ? [] : json.split(',').map((path) => path.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)),
      };
  }
  if (WRAPPERS.has(type.fullName)) {
    const field = type.fields.value;
    if (!field) throw new ProtoJsonError(`${where}: malformed wrapper type`);
    return { value: scalarFromJson(field, json, where) };
  }
  if (!isObject(json)) throw new ProtoJsonError(`${where}: expected an object`);
  const out: Plain = {};
  const oneofsSeen = new Map<string, string>();
  for (const [key, item] of Object.entries(json)) {
    const field = type.fieldsArray.find((candidate) => candidate.name === key || jsonName(candidate) === key);
    if (!field) throw new ProtoJsonError(`${where}: unknown field '${key}'`);
    const path = `${where}.${key}`;
    if (item === null && field.resolvedType?.fullName !== '.google.protobuf.Value') continue;
    if (field.partOf) {
      const other = oneofsSeen.get(field.partOf.name);
      if (other !== undefined) throw new ProtoJsonError(`${where}: '${other}' and '${key}' are members of one oneof`);
      oneofsSeen.set(field.partOf.name, key);
    }
    if (field.map) {
      if (!isObject(item)) throw new ProtoJsonError(`${path}: expected an object`);
      out[field.name] = Object.fromEntries(
        Object.entries(item).map(([mapKey, mapValue]) => [
          mapKey,
          fieldValueFromJson(field, mapValue, `${path}.${mapKey}`),
        ]),
      );
    } else if (field.repeated) {
      if (!Array.isArray(item)) throw new ProtoJsonError(`${path}: expected an array`);
      out[field.name] = item.map((element, index) => fieldValueFromJson(field, element, `${path}[${index}]`));
    } else {
      out[field.name] = fieldValueFromJson(field, item, path);
    }
  }
  return out;
}

function fieldValueFromJson(field: protobuf.Field, json: unknown, where: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    if (typeof json === 'string' && Object.hasOwn(resolved.values, json)) return json;
    if (typeof json === 'number' && Number.isInteger(json)) return json;
    throw new ProtoJsonError(`${where}: not a value of enum ${resolved.name}`);
  }
  if (resolved instanceof protobuf.Type) return readMessage(resolved, json, where);
  return scalarFromJson(field, json, where);
}

function scalarFromJson(field: protobuf.Field, json: unknown, where: string): unknown {
  const type = field.type;
  if (type === 'string') {
    if (typeof json !== 'string') throw new ProtoJsonError(`${where}: expected a string`);
    return json;
  }
  if (type === 'bool') {
    if (typeof json !== 'boolean') throw new ProtoJsonError(`${where}: expected true or false`);
    return json;
  }
  if (type === 'bytes') {
    if (typeof json !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(json))
      throw new ProtoJsonError(`${where}: expected base64`);
    return Buffer.from(json, 'base64');
  }
  if (type === 'double' || type === 'float') {
    if (typeof json === 'number') return json;
    if (json === 'NaN' || json === 'Infinity' || json === '-Infinity') return Number(json);
    if (typeof json === 'string' && json.trim() !== '' && Number.isFinite(Number(json))) return Number(json);
    throw new ProtoJsonError(`${where}: expected a number`);
  }
  const numeric =
    typeof json === 'number' ? json : typeof json === 'string' && /^-?\d+$/.test(json) ? Number(json) : Number.NaN;
  if (!Number.isInteger(numeric)) throw new ProtoJsonError(`${where}: expected an integer`);
  if (LONG_TYPES.has(type)) return typeof json === 'string' ? json : String(json);
  if (INT32_TYPES.has(type)) {
    const unsigned = type === 'uint32' || type === 'fixed32';
    const [min, max] = unsigned ? [0, 0xffffffff] : [-0x80000000, 0x7fffffff];
    if (numeric < min || numeric > max) throw new ProtoJsonError(`${where}: out of range for ${type}`);
  }
  return numeric;
}

function anyFromJson(json: unknown, where: string): Plain {
  if (!isObject(json)) throw new ProtoJsonError(`${where}: expected an object with '@type'`);
  const { '@type': typeUrl, ...rest } = json;
  if (typeof typeUrl !== 'string') throw new ProtoJsonError(`${where}: missing '@type'`);
  const inner = xdsProtos().typeOf(typeUrl);
  if (!inner) throw new ProtoJsonError(`${where}: unknown type ${typeUrl}`);
  const plain = SPECIAL_FORM.has(inner.fullName)
    ? readMessage(inner, rest.value, where)
    : readMessage(inner, rest, where);
  try {
    return { type_url: typeUrl, value: inner.encode(inner.fromObject(plain)).finish() };
  } catch (error) {
    // protobufjs refuses what it cannot encode (nesting past its recursion limit, say): the client's JSON, not a server fault.
    throw new ProtoJsonError(
      `${where}: cannot encode as ${inner.name}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

function durationFromJson(json: unknown, where: string): Plain {
  const match = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (!match) throw new ProtoJsonError(`${where}: expected a duration such as "1.5s"`);
  const [, sign = '', whole = '0', fraction = ''] = match;
  const nanos = Number(fraction.padEnd(9, '0'));
  return { seconds: `${sign}${whole}`, nanos: sign === '-' ? -nanos : nanos };
}

function structFromJson(type: protobuf.Type, json: unknown, where: string): Plain {
  if (!isObject(json)) throw new ProtoJsonError(`${where}: expected an object`);
  const valueType = type.lookupType('Value');
  return {
    fields: Object.fromEntries(
      Object.entries(json).map(([key, item]) => [key, valueFromJson(valueType, item, `${where}.${key}`)]),
    ),
  };
}

function valueFromJson(valueType: protobuf.Type, json: unknown, where: string): Plain {
  const name = (protoName: string) => wktField(valueType, protoName);
  if (json === null) return { [name('null_value')]: 0 };
  if (typeof json === 'boolean') return { [name('bool_value')]: json };
  if (typeof json === 'number') return { [name('number_value')]: json };
  if (typeof json === 'string') return { [name('string_value')]: json };
  if (Array.isArray(json))
    return {
      [name('list_value')]: { values: json.map((item, index) => valueFromJson(valueType, item, `${where}[${index}]`)) },
    };
  if (isObject(json))
    return {
      [name('struct_value')]: structFromJson(xdsProtos().root.lookupType('google.protobuf.Struct'), json, where),
    };
  throw new ProtoJsonError(`${where}: not a JSON value`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
