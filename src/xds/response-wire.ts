import type { XdsResource } from './resources.js';

/**
 * The bytes of DiscoveryResponse and DeltaDiscoveryResponse, written by hand. A change to one
 * service is sent to every stream watching it, and each stream's response differs only in its
 * version and nonce, so each resource's wrapper (the `google.protobuf.Any` of state of the world,
 * the `Resource` of delta) is encoded once and shared by every response carrying it; a response
 * is then one buffer of a few short strings and those shared bytes, with no protobufjs object
 * built per stream. Fields are written in field-number order, every string field present even
 * when empty, as protobufjs writes them.
 */

/** Field numbers (envoy/service/discovery/v3/discovery.proto, google/protobuf/any.proto). */
const ANY_TYPE_URL = 1;
const ANY_VALUE = 2;
const RESPONSE_VERSION_INFO = 1;
const RESPONSE_RESOURCES = 2;
const RESPONSE_TYPE_URL = 4;
const RESPONSE_NONCE = 5;
const DELTA_SYSTEM_VERSION_INFO = 1;
const DELTA_RESOURCES = 2;
const DELTA_TYPE_URL = 4;
const DELTA_NONCE = 5;
const DELTA_REMOVED_RESOURCES = 6;
const RESOURCE_VERSION = 1;
const RESOURCE_RESOURCE = 2;
const RESOURCE_NAME = 3;

/** Wire type of a length-delimited field (strings, bytes, messages). */
const LENGTH_DELIMITED = 2;

function varintSize(value: number): number {
  let size = 1;
  while (value > 0x7f) {
    value >>>= 7;
    size++;
  }
  return size;
}

/** Bytes of one length-delimited field holding `length` bytes. */
function fieldSize(field: number, length: number): number {
  return varintSize((field << 3) | LENGTH_DELIMITED) + varintSize(length) + length;
}

/** Writes into one buffer sized in advance. */
class Writer {
  private offset = 0;
  readonly buffer: Buffer;

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafe(size);
  }

  private varint(value: number): void {
    while (value > 0x7f) {
      this.buffer[this.offset++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.buffer[this.offset++] = value;
  }

  bytes(field: number, bytes: Uint8Array): void {
    this.varint((field << 3) | LENGTH_DELIMITED);
    this.varint(bytes.length);
    this.buffer.set(bytes, this.offset);
    this.offset += bytes.length;
  }

  /** `text` must be ASCII-or-UTF-8 of `length` bytes (Buffer.byteLength). */
  string(field: number, text: string, length: number): void {
    this.varint((field << 3) | LENGTH_DELIMITED);
    this.varint(length);
    this.offset += this.buffer.write(text, this.offset, length, 'utf8');
  }

  done(): Buffer {
    if (this.offset !== this.buffer.length) throw new Error(`encoded ${this.offset} of ${this.buffer.length} bytes`);
    return this.buffer;
  }
}

/** A string field, measured once. */
function stringField(field: number, text: string): { text: string; length: number; size: number } {
  const length = Buffer.byteLength(text);
  return { text, length, size: fieldSize(field, length) };
}

const anyMemo = new WeakMap<XdsResource, Buffer>();
const deltaMemo = new WeakMap<XdsResource, Buffer>();

/** `Any { type_url, value }` of `resource`: encoded once per resource, which is immutable. */
function anyBytes(resource: XdsResource): Buffer {
  let bytes = anyMemo.get(resource);
  if (!bytes) {
    const typeUrl = stringField(ANY_TYPE_URL, resource.typeUrl);
    const writer = new Writer(typeUrl.size + fieldSize(ANY_VALUE, resource.body.length));
    writer.string(ANY_TYPE_URL, typeUrl.text, typeUrl.length);
    writer.bytes(ANY_VALUE, resource.body);
    bytes = writer.done();
    anyMemo.set(resource, bytes);
  }
  return bytes;
}

/** `Resource { version, resource: Any, name }` of `resource`, for delta responses: encoded once per resource. */
function deltaResourceBytes(resource: XdsResource): Buffer {
  let bytes = deltaMemo.get(resource);
  if (!bytes) {
    const version = stringField(RESOURCE_VERSION, resource.version);
    const name = stringField(RESOURCE_NAME, resource.name);
    const any = anyBytes(resource);
    const writer = new Writer(version.size + fieldSize(RESOURCE_RESOURCE, any.length) + name.size);
    writer.string(RESOURCE_VERSION, version.text, version.length);
    writer.bytes(RESOURCE_RESOURCE, any);
    writer.string(RESOURCE_NAME, name.text, name.length);
    bytes = writer.done();
    deltaMemo.set(resource, bytes);
  }
  return bytes;
}

/** An `envoy.service.discovery.v3.DiscoveryResponse`. */
export function encodeDiscoveryResponse(response: {
  readonly version_info: string;
  readonly resources: readonly XdsResource[];
  readonly type_url: string;
  readonly nonce: string;
}): Buffer {
  const version = stringField(RESPONSE_VERSION_INFO, response.version_info);
  const typeUrl = stringField(RESPONSE_TYPE_URL, response.type_url);
  const nonce = stringField(RESPONSE_NONCE, response.nonce);
  const resources = response.resources.map(anyBytes);
  let size = version.size + typeUrl.size + nonce.size;
  for (const bytes of resources) size += fieldSize(RESPONSE_RESOURCES, bytes.length);
  const writer = new Writer(size);
  writer.string(RESPONSE_VERSION_INFO, version.text, version.length);
  for (const bytes of resources) writer.bytes(RESPONSE_RESOURCES, bytes);
  writer.string(RESPONSE_TYPE_URL, typeUrl.text, typeUrl.length);
  writer.string(RESPONSE_NONCE, nonce.text, nonce.length);
  return writer.done();
}

/** An `envoy.service.discovery.v3.DeltaDiscoveryResponse`. */
export function encodeDeltaDiscoveryResponse(response: {
  readonly system_version_info: string;
  readonly resources: readonly XdsResource[];
  readonly type_url: string;
  readonly removed_resources: readonly string[];
  readonly nonce: string;
}): Buffer {
  const version = stringField(DELTA_SYSTEM_VERSION_INFO, response.system_version_info);
  const typeUrl = stringField(DELTA_TYPE_URL, response.type_url);
  const nonce = stringField(DELTA_NONCE, response.nonce);
  const resources = response.resources.map(deltaResourceBytes);
  const removed = response.removed_resources.map((name) => stringField(DELTA_REMOVED_RESOURCES, name));
  let size = version.size + typeUrl.size + nonce.size;
  for (const bytes of resources) size += fieldSize(DELTA_RESOURCES, bytes.length);
  for (const name of removed) size += name.size;
  const writer = new Writer(size);
  writer.string(DELTA_SYSTEM_VERSION_INFO, version.text, version.length);
  for (const bytes of resources) writer.bytes(DELTA_RESOURCES, bytes);
  writer.string(DELTA_TYPE_URL, typeUrl.text, typeUrl.length);
  writer.string(DELTA_NONCE, nonce.text, nonce.length);
  for (const name of removed) writer.string(DELTA_REMOVED_RESOURCES, name.text, name.length);
  return writer.done();
}
