import { readFileSync } from 'node:fs';
import path from 'node:path';
import ipaddr from 'ipaddr.js';
import { parseBoolean } from './booleans.js';
import { ConfigError } from './errors.js';
import type { ExpiryProtection } from './hosts/expiry.js';
import type { CacheType } from './hosts/host-service.js';
import type { InstanceKeyMode } from './hosts/instance-keys.js';
import { ROLES, type AuthConfig, type Role } from './http/auth.js';
import type { CidrRange } from './http/validation.js';
import type { LogLevel } from './logger.js';
import type { DynamoDbSettings } from './store/dynamodb/create-dynamodb-store.js';
import type { ItemLayout } from './store/dynamodb/item-layout.js';
import type { TlsFiles } from './tls-files.js';

// What a setting means lives with the code that uses it (the log level with the logger, the
// DynamoDB settings with that store, the roles with the authorizer…): this module only reads
// the environment and checks it. So it may import every room, and only compose.ts and main.ts
// import it (eslint.config.js keeps it so). loadConfig throws ConfigError, hence the re-export.
export { ConfigError };

export interface Config {
  /** Seconds since the last heartbeat after which a host is expired. */
  readonly hostTtlSeconds: number;
  /** Seconds a cached host list may be served without asking storage (CACHE_TYPE=simple). */
  readonly cacheTtlSeconds: number;
  readonly cacheType: CacheType;
  /** INSTANCE_KEY: what makes an instance distinct, its IP (the original's model) or its IP and port. */
  readonly instanceKey: InstanceKeyMode;
  /** `DynamoDB`, `InMemory`, `InFile`, or the name of a plugin under `<applicationDir>/plugins/`. */
  readonly backendStorage: string;
  readonly applicationDir: string;
  readonly applicationEnv: string;
  readonly debug: boolean;
  readonly logLevel: LogLevel;
  /** `ACCESS_LOG=true`: one info line per answered request (method, URL, status, time, request id, client). */
  readonly accessLog: boolean;
  readonly port: number;
  readonly listenAddress: string;
  readonly dynamodb: DynamoDbSettings;
  readonly statsd: { readonly host: string; readonly port: number; readonly prefix: string };
  /** `auto_ip` is honoured only for client addresses inside these ranges. */
  readonly autoIpAllowedRanges: readonly CidrRange[];
  /** How many proxies in front of discovery append to X-Forwarded-For; 0 trusts only the socket address. */
  readonly trustedProxyHops: number;
  /** Largest request body accepted, in bytes. */
  readonly bodyLimitBytes: number;
  readonly auth: AuthConfig;
  /** Keep a service's hosts when too many of them stop heartbeating at once (EXPIRY_PROTECTION_*). */
  readonly expiryProtection: ExpiryProtection;
  readonly xds: XdsConfig;
  /** TLS on the HTTP port (`TLS_CERT_FILE`, `TLS_KEY_FILE`); undefined: plain HTTP. */
  readonly httpTls: TlsFiles | undefined;
  /**
   * Seconds a host list this replica last read may still be served, marked stale, while storage
   * is unreachable; 0 answers 503 instead.
   */
  readonly staleReadMaxSeconds: number;
  /**
   * HEARTBEAT_WRITE_INTERVAL: seconds within which a heartbeat that changes nothing is not
   * written again (0: every heartbeat is written, the original's behaviour).
   */
  readonly heartbeatWriteIntervalSeconds: number;
  /** How replicas sharing a DynamoDB table learn of each other's changes (docs/replicas.md). */
  readonly changeFeed: ChangeFeedConfig;
  /**
   * Seconds between the start of a shutdown (SIGTERM) and closing the listeners, during which
   * `/readyz` answers 503 and every other request is still served, so load balancers stop
   * sending before connections are refused (`SHUTDOWN_DRAIN_SECONDS`).
   */
  readonly drainSeconds: number;
}

/** The change feed between replicas on one DynamoDB table (docs/replicas.md). */
export interface ChangeFeedConfig {
  /** `CHANGE_FEED` (default true): follow the feed; false re-reads watched services every `XDS_POLL_INTERVAL_MS`, as before it. */
  readonly enabled: boolean;
  /** `CHANGE_FEED_INTERVAL_MS`: milliseconds between reads of the change log, the catch-up for lost hints. */
  readonly intervalMs: number;
  /** `PEER_URL`: this replica's HTTP base URL as its peers reach it; '' derives it from the listening address. */
  readonly peerUrl: string;
  /** `PEER_TOKEN`: the bearer token sent with hints to peers (one of their AUTH_REGISTER_TOKENS). */
  readonly peerToken: string | undefined;
}

/** The Envoy xDS v3 control plane (docs/xds.md). */
export interface XdsConfig {
  /** Whether the xDS gRPC server runs at all (`XDS_ENABLED`); the REST route is always there. */
  readonly enabled: boolean;
  /** gRPC port (`XDS_PORT`, default 18000, the port Envoy's examples use for a control plane); 0 picks a free one. */
  readonly port: number;
  /** Address the gRPC server binds (`XDS_LISTEN_ADDRESS`, default `LISTEN_ADDRESS`). */
  readonly listenAddress: string;
  /** Milliseconds between re-reads of the services xDS clients watch, to see other replicas' writes (`XDS_POLL_INTERVAL_MS`). */
  readonly pollIntervalMs: number;
  /** Milliseconds between re-reads of the service list while a client subscribes to all of them (`XDS_WILDCARD_POLL_INTERVAL_MS`). */
  readonly wildcardPollIntervalMs: number;
  /** Endpoints by the proxy's locality: own zone, then own region, then the rest (`XDS_LOCALITY_PRIORITY`, default false). */
  readonly localityPriority: boolean;
  /** TLS on the xDS port (`XDS_TLS_CERT_FILE`, `XDS_TLS_KEY_FILE`; with `XDS_TLS_CA_FILE`, mutual TLS); undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
}

const CREDENTIAL_MIN_LENGTH = 8;

type Env = Readonly<Record<string, string | undefined>>;

const BACKENDS_BUILT_IN = ['DynamoDB', 'InMemory', 'InFile'];
const PLUGIN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function fail(name: string, value: string, accepted: string): never {
  throw new ConfigError(`invalid setting ${name}=${JSON.stringify(value)}: expected ${accepted}`);
}

function text(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

function number(
  env: Env,
  name: string,
  fallback: number,
  opts: { min: number; max?: number; integer?: boolean },
): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  const range = opts.max === undefined ? `>= ${opts.min}` : `${opts.min}..${opts.max}`;
  const accepted = `${opts.integer ? 'an integer' : 'a number'} ${range}`;
  if (!Number.isFinite(value) || value < opts.min || (opts.max !== undefined && value > opts.max))
    fail(name, raw, accepted);
  if (opts.integer && !Number.isInteger(value)) fail(name, raw, accepted);
  return value;
}

/** A yes/no setting: `false`, `0` and `no` are false (the original read any non-empty string as true). */
function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  return parseBoolean(raw) ?? fail(name, raw, 'true/false, 1/0 or yes/no');
}

function oneOf<T extends string>(env: Env, name: string, fallback: T, accepted: Record<string, T>): T {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = accepted[raw.trim().toLowerCase()];
  if (value === undefined) fail(name, raw, `one of ${[...new Set(Object.keys(accepted))].join(', ')}`);
  return value;
}

const LOG_LEVELS: Record<string, LogLevel> = {
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  warn: 'warn',
  error: 'error',
  critical: 'fatal',
};

function backendStorage(env: Env): string {
  const raw = text(env, 'BACKEND_STORAGE', 'DynamoDB').trim();
  const builtIn = BACKENDS_BUILT_IN.find((name) => name.toLowerCase() === raw.toLowerCase());
  if (builtIn) return builtIn;
  if (!PLUGIN_NAME.test(raw)) {
    fail(
      'BACKEND_STORAGE',
      raw,
      `${BACKENDS_BUILT_IN.join(', ')}, or the folder name of a plugin under APPLICATION_DIR/plugins/`,
    );
  }
  return raw;
}

function cidrRanges(env: Env, name: string, fallback: string): CidrRange[] {
  const raw = text(env, name, fallback);
  return raw
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map((part) => {
      try {
        return ipaddr.parseCIDR(part);
      } catch {
        return fail(name, raw, 'a comma-separated list of CIDR ranges such as 192.168.0.0/16,fd00::/8');
      }
    });
}

/** An http(s) URL such as http://127.0.0.1:4567, or '' when unset. */
function endpointUrl(env: Env, name: string): string {
  const raw = text(env, name, '').trim();
  if (raw === '') return '';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(name, raw, 'an http:// or https:// URL such as http://127.0.0.1:4567');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    fail(name, raw, 'an http:// or https:// URL such as http://127.0.0.1:4567');
  return raw;
}

/** Reads and validates every setting once; the only reader of the environment. */
export function loadConfig(env: Env = process.env, cwd: string = process.cwd()): Config {
  const applicationDir = path.resolve(cwd, text(env, 'APPLICATION_DIR', cwd));
  const applicationEnv = text(env, 'APPLICATION_ENV', 'development');
  const production = applicationEnv === 'production';
  const config: Config = {
    hostTtlSeconds: number(env, 'HOST_TTL', 600, { min: 0 }),
    cacheTtlSeconds: number(env, 'CACHE_TTL', 30, { min: 0 }),
    cacheType: oneOf<CacheType>(env, 'CACHE_TYPE', 'null', { simple: 'simple', null: 'null' }),
    instanceKey: oneOf<InstanceKeyMode>(env, 'INSTANCE_KEY', 'ip', { ip: 'ip', ip_port: 'ip_port' }),
    backendStorage: backendStorage(env),
    applicationDir,
    applicationEnv,
    // The original's defaults (every request logged, error details in 500s) are a developer's;
    // APPLICATION_ENV=production starts quiet and discreet unless told otherwise.
    debug: flag(env, 'DEBUG', !production),
    logLevel: oneOf(env, 'LOG_LEVEL', production ? 'info' : 'debug', LOG_LEVELS),
    accessLog: flag(env, 'ACCESS_LOG', false),
    port: number(env, 'PORT', 8080, { min: 0, max: 65535, integer: true }),
    listenAddress: text(env, 'LISTEN_ADDRESS', '0.0.0.0'),
    dynamodb: {
      tableHosts: text(env, 'DYNAMODB_TABLE_HOSTS', 'discovery-hosts'),
      url: endpointUrl(env, 'DYNAMODB_URL'),
      createTablesInApp: flag(env, 'DYNAMODB_CREATE_TABLES_IN_APP', false),
      connectionPoolSize: number(env, 'CONNECTION_POOL_SIZE', 100, { min: 1, max: 10000, integer: true }),
      region: text(env, 'AWS_REGION', text(env, 'AWS_DEFAULT_REGION', '')),
      requestTimeoutMs: number(env, 'DYNAMODB_TIMEOUT_MS', 3000, { min: 100, max: 60000, integer: true }),
      itemLayout:
        oneOf<ItemLayout | ''>(env, 'DYNAMODB_ITEM_LAYOUT', '', { original: 'original', discovery: 'discovery' }) ||
        undefined,
    },
    statsd: {
      host: text(env, 'STATSD_HOST', 'localhost'),
      port: number(env, 'STATSD_PORT', 8125, { min: 1, max: 65535, integer: true }),
      prefix: text(env, 'STATSD_PREFIX', ''),
    },
    autoIpAllowedRanges: cidrRanges(env, 'AUTO_IP_ALLOWED_RANGES', '192.168.0.0/16'),
    trustedProxyHops: number(env, 'TRUSTED_PROXY_HOPS', 1, { min: 0, max: 32, integer: true }),
    bodyLimitBytes: number(env, 'BODY_LIMIT_BYTES', 64 * 1024, { min: 1024, max: 16 * 1024 * 1024, integer: true }),
    auth: authConfig(env),
    expiryProtection: {
      enabled: flag(env, 'EXPIRY_PROTECTION', false),
      threshold: number(env, 'EXPIRY_PROTECTION_THRESHOLD', 0.5, { min: 0, max: 1 }),
      minHosts: number(env, 'EXPIRY_PROTECTION_MIN_HOSTS', 3, { min: 1, integer: true }),
      maxSeconds: number(env, 'EXPIRY_PROTECTION_MAX_SECONDS', 3600, { min: 0 }),
    },
    xds: {
      enabled: flag(env, 'XDS_ENABLED', true),
      port: number(env, 'XDS_PORT', 18000, { min: 0, max: 65535, integer: true }),
      listenAddress: text(env, 'XDS_LISTEN_ADDRESS', text(env, 'LISTEN_ADDRESS', '0.0.0.0')),
      pollIntervalMs: number(env, 'XDS_POLL_INTERVAL_MS', 1000, { min: 100, max: 600_000, integer: true }),
      wildcardPollIntervalMs: number(env, 'XDS_WILDCARD_POLL_INTERVAL_MS', 30_000, {
        min: 1000,
        max: 3_600_000,
        integer: true,
      }),
      localityPriority: flag(env, 'XDS_LOCALITY_PRIORITY', false),
      tls: tlsFiles(env, 'XDS_TLS'),
    },
    httpTls: tlsFiles(env, 'TLS'),
    staleReadMaxSeconds: number(env, 'STALE_READ_MAX_SECONDS', 300, { min: 0, max: 86400, integer: true }),
    drainSeconds: number(env, 'SHUTDOWN_DRAIN_SECONDS', 0, { min: 0, max: 300 }),
    heartbeatWriteIntervalSeconds: number(env, 'HEARTBEAT_WRITE_INTERVAL', 0, { min: 0, max: 3600 }),
    changeFeed: {
      enabled: flag(env, 'CHANGE_FEED', true),
      intervalMs: number(env, 'CHANGE_FEED_INTERVAL_MS', 1500, { min: 100, max: 60_000, integer: true }),
      peerUrl: endpointUrl(env, 'PEER_URL'),
      peerToken: credential(env, 'PEER_TOKEN'),
    },
  };
  if (config.heartbeatWriteIntervalSeconds > 0 && config.heartbeatWriteIntervalSeconds >= config.hostTtlSeconds) {
    throw new ConfigError(
      `invalid setting HEARTBEAT_WRITE_INTERVAL=${config.heartbeatWriteIntervalSeconds}: expected less than HOST_TTL (${config.hostTtlSeconds}), ` +
        'or a stored check-in could trail a live host by more than its time to live',
    );
  }
  return deepFreeze(config);
}

function readSetting(env: Env, name: string): Buffer | undefined {
  const file = env[name];
  if (file === undefined || file === '') return undefined;
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(
      `invalid setting ${name}=${JSON.stringify(file)}: expected a readable file (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    );
  }
}

/** `<prefix>_CERT_FILE` and `<prefix>_KEY_FILE` go together; `<prefix>_CA_FILE` turns on client certificates. */
function tlsFiles(env: Env, prefix: string): TlsFiles | undefined {
  const cert = readSetting(env, `${prefix}_CERT_FILE`);
  const key = readSetting(env, `${prefix}_KEY_FILE`);
  const ca = readSetting(env, `${prefix}_CA_FILE`);
  if (!cert && !key) {
    if (ca)
      throw new ConfigError(
        `invalid setting ${prefix}_CA_FILE: expected ${prefix}_CERT_FILE and ${prefix}_KEY_FILE too`,
      );
    return undefined;
  }
  if (!cert)
    throw new ConfigError(
      `invalid setting ${prefix}_CERT_FILE: expected a certificate file to go with ${prefix}_KEY_FILE`,
    );
  if (!key)
    throw new ConfigError(
      `invalid setting ${prefix}_KEY_FILE: expected a private key file to go with ${prefix}_CERT_FILE`,
    );
  return { cert, key, ca };
}

function credential(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  // The value itself is never echoed: it is a secret.
  if (raw.length < CREDENTIAL_MIN_LENGTH)
    throw new ConfigError(`invalid setting ${name}: expected at least ${CREDENTIAL_MIN_LENGTH} characters`);
  return raw;
}

function authConfig(env: Env): AuthConfig {
  const passwords: Partial<Record<Role, string>> = {};
  const tokens = { read: [] as string[], register: [] as string[], admin: [] as string[] };
  for (const role of ROLES) {
    const upper = role.toUpperCase();
    const password = credential(env, `AUTH_${upper}_PASSWORD`);
    if (password !== undefined) passwords[role] = password;
    const list = env[`AUTH_${upper}_TOKENS`];
    if (list) {
      tokens[role] = list
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token !== '')
        .map((token) => {
          if (token.length < CREDENTIAL_MIN_LENGTH)
            throw new ConfigError(
              `invalid setting AUTH_${upper}_TOKENS: expected comma-separated tokens of at least ${CREDENTIAL_MIN_LENGTH} characters`,
            );
          return token;
        });
    }
  }
  return { passwords, tokens };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
