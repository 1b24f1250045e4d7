import { parseArgs } from 'node:util';
import { parseBoolean } from '../booleans.js';
import { DEFAULT_TIMEOUT_MS, type HostTags, type Registration } from '../client/discovery-client.js';
import { UsageError, type InformationalCommand } from '../command-line.js';

/** Default seconds between checks of --check-url: a failing app is out of service within about failures x interval (30 s). */
const DEFAULT_CHECK_INTERVAL_SECONDS = 10;
/** Default seconds one check may take: an app that cannot answer its health check in 2 s is not healthy. */
const DEFAULT_CHECK_TIMEOUT_SECONDS = 2;
/** Default consecutive failed checks before the host heartbeats OUT_OF_SERVICE: one slow answer or restart blip is not an outage. */
const DEFAULT_CHECK_FAILURES = 3;

/** Default seconds between heartbeats: 20 per default HOST_TTL (600 s), so hosts outlive a discovery outage of several minutes. */
const DEFAULT_INTERVAL_SECONDS = 30;

export const USAGE = `Usage: discovery-agent --url URL --service NAME (--ip ADDRESS | --auto-ip) --port PORT --revision REV
                       [--repo NAME] [--tag KEY=VALUE ...] [--tags JSON]
                       [--interval SECONDS] [--host-ttl SECONDS] [--timeout SECONDS]
                       [--check-url URL [--check-interval SECONDS] [--check-timeout SECONDS]
                        [--check-failures N]] [--drain-seconds SECONDS] [--token TOKEN]
       discovery-agent --version | --help

Registers this host with discovery, heartbeats every --interval seconds (default ${DEFAULT_INTERVAL_SECONDS}),
retries with backoff while discovery is unreachable or failing, and deregisters on SIGTERM/SIGINT.
Every flag may be given as an environment variable instead: DISCOVERY_URL, DISCOVERY_SERVICE,
DISCOVERY_IP, DISCOVERY_AUTO_IP, DISCOVERY_PORT, DISCOVERY_REVISION, DISCOVERY_REPO, DISCOVERY_TAGS,
DISCOVERY_INTERVAL, DISCOVERY_HOST_TTL, DISCOVERY_TIMEOUT, DISCOVERY_CHECK_URL,
DISCOVERY_CHECK_INTERVAL, DISCOVERY_CHECK_TIMEOUT, DISCOVERY_CHECK_FAILURES,
DISCOVERY_DRAIN_SECONDS, DISCOVERY_TOKEN (flags win).

  --tag KEY=VALUE   one tag, repeatable; az, region and instance_id are required by discovery.
                    canary takes true/false, load_balancing_weight an integer (sent on every
                    heartbeat, so it overrides a weight set through /v1/loadbalancing).
  --tags JSON       tags as one JSON object; --tag entries are applied on top.
  --host-ttl        discovery's HOST_TTL, if known: an --interval not below it is refused.
  --timeout         seconds one request may take (default ${DEFAULT_TIMEOUT_MS / 1000}).
  --check-url       an http(s) URL of the app's health check, fetched every --check-interval
                    seconds (default ${DEFAULT_CHECK_INTERVAL_SECONDS}), each within --check-timeout seconds (default ${DEFAULT_CHECK_TIMEOUT_SECONDS});
                    a 2xx or 3xx answer passes. After --check-failures failures in a row
                    (default ${DEFAULT_CHECK_FAILURES}) the host heartbeats status=OUT_OF_SERVICE at once; the first
                    passing check brings it back to UP. The first heartbeat waits for the first check.
  --drain-seconds   on SIGTERM/SIGINT, heartbeat status=DRAINING (proxies send no new requests),
                    wait this long (still heartbeating), then deregister (default 0: at once).
  --token           a bearer token for a registry that requires credentials. Prefer the
                    DISCOVERY_TOKEN variable: a flag is visible to every user in the process list.
                    Never printed. Deregistering needs a token of the admin role.
  --version         print the agent's version.

Logs are JSON lines on stderr. Exit codes: 0 after a signal, 1 when discovery refuses the
registration (a 4xx: fix the input), 2 for a bad command line.`;

// Shared with the server's command line (src/command-line.ts); re-exported for the agent's callers.
export { UsageError };

/** The app's health check, as the agent runs it. */
export interface HealthCheckSettings {
  readonly url: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Consecutive failures before the host heartbeats OUT_OF_SERVICE. */
  readonly failuresBeforeDown: number;
}

export interface AgentSettings {
  readonly url: string;
  /** Bearer token for the registry, when it requires one. Never logged. */
  readonly token: string | undefined;
  readonly check: HealthCheckSettings | undefined;
  /** Milliseconds of DRAINING between a stop signal and deregistering; 0: deregister at once. */
  readonly drainMs: number;
  readonly service: string;
  readonly registration: Registration;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Things worth saying that do not stop the agent. */
  readonly warnings: readonly string[];
}

/** What a command line asks for: settings to run with, the usage text, or the version. */
export type AgentCommand = AgentSettings | InformationalCommand;

/**
 * Flags over `DISCOVERY_*` environment variables. Checks only what is needed to build a request
 * (numbers are numbers, JSON is JSON, required values are there); the rules on values (port
 * range, IP syntax, required tags) are discovery's, so its answer is the one source of truth.
 * Returns undefined for `--help` (see `parseAgentCommand` for `--version`).
 */
export function parseAgentArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentSettings | undefined {
  const command = parseAgentCommand(argv, env);
  return typeof command === 'string' ? undefined : command;
}

/** `parseAgentArgs`, telling `--help` and `--version` apart. */
export function parseAgentCommand(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentCommand {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        service: { type: 'string' },
        ip: { type: 'string' },
        'auto-ip': { type: 'boolean' },
        port: { type: 'string' },
        revision: { type: 'string' },
        repo: { type: 'string' },
        tag: { type: 'string', multiple: true },
        tags: { type: 'string' },
        interval: { type: 'string' },
        'host-ttl': { type: 'string' },
        timeout: { type: 'string' },
        'check-url': { type: 'string' },
        'check-interval': { type: 'string' },
        'check-timeout': { type: 'string' },
        'check-failures': { type: 'string' },
        'drain-seconds': { type: 'string' },
        token: { type: 'string' },
        version: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (parsed.help) return 'help';
  if (parsed.version) return 'version';

  const pick = (flag: string | undefined, name: string): string | undefined => {
    const value = flag ?? env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const required = (flag: string | undefined, name: string, option: string): string => {
    const value = pick(flag, name);
    if (value === undefined) throw new UsageError(`${option} (or ${name}) is required`);
    return value;
  };

  const url = httpUrl(required(parsed.url, 'DISCOVERY_URL', '--url'), '--url');
  const service = required(parsed.service, 'DISCOVERY_SERVICE', '--service');
  const ip = pick(parsed.ip, 'DISCOVERY_IP');
  const autoIpText = pick(parsed['auto-ip'] === undefined ? undefined : String(parsed['auto-ip']), 'DISCOVERY_AUTO_IP');
  const autoIp = autoIpText === undefined ? false : parseBoolean(autoIpText);
  if (autoIp === undefined) throw new UsageError(`DISCOVERY_AUTO_IP must be true or false: ${autoIpText}`);
  if (ip === undefined && !autoIp) throw new UsageError('--ip (or DISCOVERY_IP) or --auto-ip is required');
  const port = integer(required(parsed.port, 'DISCOVERY_PORT', '--port'), '--port');
  const revision = required(parsed.revision, 'DISCOVERY_REVISION', '--revision');
  const repo = pick(parsed.repo, 'DISCOVERY_REPO');
  const tags = parseTags(pick(parsed.tags, 'DISCOVERY_TAGS'), parsed.tag ?? []);

  const intervalSeconds = seconds(
    pick(parsed.interval, 'DISCOVERY_INTERVAL') ?? String(DEFAULT_INTERVAL_SECONDS),
    '--interval',
  );
  const timeoutSeconds = seconds(
    pick(parsed.timeout, 'DISCOVERY_TIMEOUT') ?? String(DEFAULT_TIMEOUT_MS / 1000),
    '--timeout',
  );
  const hostTtlText = pick(parsed['host-ttl'], 'DISCOVERY_HOST_TTL');
  const warnings: string[] = [];
  if (hostTtlText !== undefined) {
    const hostTtl = seconds(hostTtlText, '--host-ttl');
    if (intervalSeconds >= hostTtl)
      throw new UsageError(
        `--interval ${intervalSeconds} must be below --host-ttl ${hostTtl}, or the host expires between heartbeats`,
      );
    if (intervalSeconds > hostTtl / 2)
      warnings.push(
        `--interval ${intervalSeconds} is more than half of --host-ttl ${hostTtl}: one failed heartbeat may expire the host`,
      );
  }
  if (timeoutSeconds >= intervalSeconds)
    warnings.push(
      `--timeout ${timeoutSeconds} is not below --interval ${intervalSeconds}: a slow discovery delays heartbeats`,
    );

  const checkUrlText = pick(parsed['check-url'], 'DISCOVERY_CHECK_URL');
  const checkOptionGiven = [parsed['check-interval'], parsed['check-timeout'], parsed['check-failures']].some(
    (value) => value !== undefined,
  );
  if (checkUrlText === undefined && checkOptionGiven)
    throw new UsageError('--check-interval, --check-timeout and --check-failures need --check-url');
  let check: HealthCheckSettings | undefined;
  if (checkUrlText !== undefined) {
    const checkIntervalSeconds = seconds(
      pick(parsed['check-interval'], 'DISCOVERY_CHECK_INTERVAL') ?? String(DEFAULT_CHECK_INTERVAL_SECONDS),
      '--check-interval',
    );
    const checkTimeoutSeconds = seconds(
      pick(parsed['check-timeout'], 'DISCOVERY_CHECK_TIMEOUT') ?? String(DEFAULT_CHECK_TIMEOUT_SECONDS),
      '--check-timeout',
    );
    const failures = integer(
      pick(parsed['check-failures'], 'DISCOVERY_CHECK_FAILURES') ?? String(DEFAULT_CHECK_FAILURES),
      '--check-failures',
    );
    if (failures < 1) throw new UsageError(`--check-failures must be at least 1: ${failures}`);
    if (checkTimeoutSeconds > checkIntervalSeconds)
      throw new UsageError(
        `--check-timeout ${checkTimeoutSeconds} must not exceed --check-interval ${checkIntervalSeconds}`,
      );
    check = {
      url: httpUrl(checkUrlText, '--check-url'),
      intervalMs: checkIntervalSeconds * 1000,
      timeoutMs: checkTimeoutSeconds * 1000,
      failuresBeforeDown: failures,
    };
  }
  const drainText = pick(parsed['drain-seconds'], 'DISCOVERY_DRAIN_SECONDS');
  const drainSeconds = drainText === undefined ? 0 : nonNegativeSeconds(drainText, '--drain-seconds');
  const token = pick(parsed.token, 'DISCOVERY_TOKEN');
  if (parsed.token !== undefined)
    warnings.push('--token is visible to every user of this machine in the process list: prefer DISCOVERY_TOKEN');

  const registration: Registration = {
    ...(ip !== undefined ? { ip } : {}),
    ...(autoIp ? { autoIp: true } : {}),
    port,
    revision,
    ...(repo !== undefined ? { serviceRepoName: repo } : {}),
    tags,
  };
  return {
    url,
    token,
    check,
    drainMs: drainSeconds * 1000,
    service,
    registration,
    intervalMs: intervalSeconds * 1000,
    timeoutMs: timeoutSeconds * 1000,
    warnings,
  };
}

/** An http(s) URL, or a UsageError naming `option` (with any password in it masked). */
function httpUrl(text: string, option: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${option} is not a URL: ${redactUrl(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new UsageError(`${option} must be an http or https URL: ${redactUrl(text)}`);
  return text;
}

/** `text` with the password of a `user:password@` part masked, for messages and logs. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:]*):[^/@]*@/i, '$1:***@');
}

function nonNegativeSeconds(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || text.trim() === '')
    throw new UsageError(`${option} must be a number of seconds, 0 or more: ${text}`);
  return value;
}

function integer(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isInteger(value)) throw new UsageError(`${option} must be an integer: ${text}`);
  return value;
}

function seconds(text: string, option: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0)
    throw new UsageError(`${option} must be a positive number of seconds: ${text}`);
  return value;
}

/** `--tags` JSON first, then each `--tag KEY=VALUE`; the two typed tags are converted so discovery accepts them. */
function parseTags(json: string | undefined, pairs: readonly string[]): HostTags {
  let tags: Record<string, unknown> = {};
  if (json !== undefined) {
    let value: unknown;
    try {
      value = JSON.parse(json);
    } catch {
      throw new UsageError(`--tags is not valid JSON: ${json}`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new UsageError('--tags must be a JSON object');
    tags = { ...(value as Record<string, unknown>) };
  }
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--tag must be KEY=VALUE: ${pair}`);
    const key = pair.slice(0, at);
    const text = pair.slice(at + 1);
    if (key === 'canary') {
      const flag = parseBoolean(text);
      if (flag === undefined) throw new UsageError(`--tag canary must be true or false: ${text}`);
      tags[key] = flag;
    } else if (key === 'load_balancing_weight') {
      tags[key] = integer(text, '--tag load_balancing_weight');
    } else {
      tags[key] = text;
    }
  }
  // The required tags are discovery's rule; a missing one comes back as its 400 naming the tag.
  return tags as HostTags;
}
