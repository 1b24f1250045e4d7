import { parseArgs } from 'node:util';
import { parseBoolean } from '../booleans.js';
import { DEFAULT_TIMEOUT_MS, type HostTags, type Registration } from '../client/discovery-client.js';

/** Default seconds between heartbeats: 20 per default HOST_TTL (600 s), so hosts outlive a discovery outage of several minutes. */
const DEFAULT_INTERVAL_SECONDS = 30;

export const USAGE = `Usage: discovery-agent --url URL --service NAME (--ip ADDRESS | --auto-ip) --port PORT --revision REV
                       [--repo NAME] [--tag KEY=VALUE ...] [--tags JSON]
                       [--interval SECONDS] [--host-ttl SECONDS] [--timeout SECONDS]

Registers this host with discovery, heartbeats every --interval seconds (default ${DEFAULT_INTERVAL_SECONDS}),
retries with backoff while discovery is unreachable or failing, and deregisters on SIGTERM/SIGINT.
Every flag may be given as an environment variable instead: DISCOVERY_URL, DISCOVERY_SERVICE,
DISCOVERY_IP, DISCOVERY_AUTO_IP, DISCOVERY_PORT, DISCOVERY_REVISION, DISCOVERY_REPO, DISCOVERY_TAGS,
DISCOVERY_INTERVAL, DISCOVERY_HOST_TTL, DISCOVERY_TIMEOUT (flags win).

  --tag KEY=VALUE   one tag, repeatable; az, region and instance_id are required by discovery.
                    canary takes true/false, load_balancing_weight an integer (sent on every
                    heartbeat, so it overrides a weight set through /v1/loadbalancing).
  --tags JSON       tags as one JSON object; --tag entries are applied on top.
  --host-ttl        discovery's HOST_TTL, if known: an --interval not below it is refused.
  --timeout         seconds one request may take (default ${DEFAULT_TIMEOUT_MS / 1000}).

Logs are JSON lines on stderr. Exit codes: 0 after a signal, 1 when discovery refuses the
registration (a 4xx: fix the input), 2 for a bad command line.`;

/** A command line that cannot be run; the message is printed with the usage hint. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface AgentSettings {
  readonly url: string;
  readonly service: string;
  readonly registration: Registration;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** Things worth saying that do not stop the agent. */
  readonly warnings: readonly string[];
}

/**
 * Flags over `DISCOVERY_*` environment variables. Checks only what is needed to build a request
 * (numbers are numbers, JSON is JSON, required values are there); the rules on values (port
 * range, IP syntax, required tags) are discovery's, so its answer is the one source of truth.
 * Returns undefined for `--help`.
 */
export function parseAgentArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentSettings | undefined {
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
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (parsed.help) return undefined;

  const pick = (flag: string | undefined, name: string): string | undefined => {
    const value = flag ?? env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const required = (flag: string | undefined, name: string, option: string): string => {
    const value = pick(flag, name);
    if (value === undefined) throw new UsageError(`${option} (or ${name}) is required`);
    return value;
  };

  const url = required(parsed.url, 'DISCOVERY_URL', '--url');
  try {
    new URL(url);
  } catch {
    throw new UsageError(`--url is not a URL: ${url}`);
  }
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

  const registration: Registration = {
    ...(ip !== undefined ? { ip } : {}),
    ...(autoIp ? { autoIp: true } : {}),
    port,
    revision,
    ...(repo !== undefined ? { serviceRepoName: repo } : {}),
    tags,
  };
  return { url, service, registration, intervalMs: intervalSeconds * 1000, timeoutMs: timeoutSeconds * 1000, warnings };
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
