import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAgentArgs, UsageError } from '../../src/agent/agent-args.js';

const REQUIRED = [
  '--url',
  'http://127.0.0.1:8080',
  '--service',
  'users',
  '--ip',
  '10.0.3.17',
  '--port',
  '9211',
  '--revision',
  'abc',
];

describe('discovery-agent command line', () => {
  test('flags build the registration; defaults: 30 s interval, 5 s timeout', () => {
    const settings = parseAgentArgs(
      [...REQUIRED, '--repo', 'users-repo', '--tag', 'az=a', '--tag', 'region=r', '--tag', 'instance_id=i-1'],
      {},
    );
    assert.deepEqual(settings, {
      url: 'http://127.0.0.1:8080',
      service: 'users',
      registration: {
        ip: '10.0.3.17',
        port: 9211,
        revision: 'abc',
        serviceRepoName: 'users-repo',
        tags: { az: 'a', region: 'r', instance_id: 'i-1' },
      },
      intervalMs: 30_000,
      timeoutMs: 5_000,
      warnings: [],
    });
  });

  test('environment variables stand in for flags, and flags win', () => {
    const settings = parseAgentArgs(['--port', '81'], {
      DISCOVERY_URL: 'http://127.0.0.1:9',
      DISCOVERY_SERVICE: 'users',
      DISCOVERY_AUTO_IP: 'true',
      DISCOVERY_PORT: '80',
      DISCOVERY_REVISION: 'r',
      DISCOVERY_TAGS: '{"az":"a","region":"r","instance_id":"i"}',
      DISCOVERY_INTERVAL: '2.5',
    });
    assert.equal(settings?.registration.port, 81);
    assert.equal(settings?.registration.autoIp, true);
    assert.equal(settings?.registration.ip, undefined);
    assert.equal(settings?.intervalMs, 2_500);
  });

  test('--tag entries go over --tags, and the typed tags are typed', () => {
    const settings = parseAgentArgs(
      [
        ...REQUIRED,
        '--tags',
        '{"az":"a","region":"r","instance_id":"i","team":"x"}',
        '--tag',
        'az=b',
        '--tag',
        'canary=true',
        '--tag',
        'load_balancing_weight=20',
        '--tag',
        'note=a=b',
      ],
      {},
    );
    assert.deepEqual(settings?.registration.tags, {
      az: 'b',
      region: 'r',
      instance_id: 'i',
      team: 'x',
      canary: true,
      load_balancing_weight: 20,
      note: 'a=b',
    });
  });

  test('--help gives no settings', () => {
    assert.equal(parseAgentArgs(['--help'], {}), undefined);
  });

  for (const [args, message] of [
    [REQUIRED.slice(2), /--url/],
    [[...REQUIRED.slice(0, 4), ...REQUIRED.slice(6)], /--ip .* or --auto-ip/],
    [[...REQUIRED, '--port', 'eighty'], /--port must be an integer/],
    [[...REQUIRED, '--tags', '{nope'], /--tags is not valid JSON/],
    [[...REQUIRED, '--tags', '[1]'], /--tags must be a JSON object/],
    [[...REQUIRED, '--tag', 'az'], /--tag must be KEY=VALUE/],
    [[...REQUIRED, '--tag', 'canary=maybe'], /canary must be true or false/],
    [[...REQUIRED, '--interval', '0'], /--interval must be a positive number/],
    [[...REQUIRED, '--interval', '600', '--host-ttl', '600'], /--interval 600 must be below --host-ttl 600/],
    [[...REQUIRED, '--bogus'], /Unknown option '--bogus'/],
    [[...REQUIRED, '--url', 'nowhere'], /--url is not a URL/],
  ] as const) {
    test(`refuses ${args.slice(-2).join(' ')}`, () => {
      assert.throws(
        () => parseAgentArgs(args, {}),
        (error) => error instanceof UsageError && message.test(error.message),
      );
    });
  }

  test('warns when one failed heartbeat could expire the host, or the timeout is not below the interval', () => {
    const settings = parseAgentArgs([...REQUIRED, '--interval', '400', '--host-ttl', '600', '--timeout', '500'], {});
    assert.equal(settings?.warnings.length, 2);
    assert.match(settings!.warnings[0]!, /more than half of --host-ttl/);
    assert.match(settings!.warnings[1]!, /--timeout 500 is not below --interval 400/);
  });

  test('a port out of range is left to discovery, whose answer names the rule', () => {
    assert.equal(parseAgentArgs([...REQUIRED, '--port', '70000'], {})?.registration.port, 70000);
  });
});
