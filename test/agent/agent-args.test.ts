import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseAgentArgs, parseAgentCommand, UsageError } from '../../src/agent/agent-args.js';

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
      token: undefined,
      check: undefined,
      drainMs: 0,
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
    [[...REQUIRED, '--url', 'ftp://registry'], /--url must be an http or https URL/],
    [[...REQUIRED, '--check-url', 'not a url'], /--check-url is not a URL/],
    [[...REQUIRED, '--check-url', 'file:///etc/passwd'], /--check-url must be an http or https URL/],
    [[...REQUIRED, '--check-interval', '5'], /need --check-url/],
    [
      [...REQUIRED, '--check-url', 'http://127.0.0.1/h', '--check-failures', '0'],
      /--check-failures must be at least 1/,
    ],
    [
      [...REQUIRED, '--check-url', 'http://127.0.0.1/h', '--check-failures', '1.5'],
      /--check-failures must be an integer/,
    ],
    [[...REQUIRED, '--check-url', 'http://127.0.0.1/h', '--check-timeout', '0'], /--check-timeout must be a positive/],
    [
      [...REQUIRED, '--check-url', 'http://127.0.0.1/h', '--check-interval', '1', '--check-timeout', '2'],
      /--check-timeout 2 must not exceed --check-interval 1/,
    ],
    [[...REQUIRED, '--drain-seconds=-1'], /--drain-seconds must be a number of seconds, 0 or more/],
    [[...REQUIRED, '--drain-seconds', 'soon'], /--drain-seconds must be a number/],
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

  test('the health check: defaults 10 s interval, 2 s timeout, 3 failures; flags or variables set them', () => {
    const defaults = parseAgentArgs([...REQUIRED, '--check-url', 'http://127.0.0.1:8000/healthz'], {});
    assert.deepEqual(defaults?.check, {
      url: 'http://127.0.0.1:8000/healthz',
      intervalMs: 10_000,
      timeoutMs: 2_000,
      failuresBeforeDown: 3,
    });
    const fromEnv = parseAgentArgs(REQUIRED, {
      DISCOVERY_CHECK_URL: 'https://app.internal/ready',
      DISCOVERY_CHECK_INTERVAL: '1',
      DISCOVERY_CHECK_TIMEOUT: '0.5',
      DISCOVERY_CHECK_FAILURES: '2',
      DISCOVERY_DRAIN_SECONDS: '7.5',
    });
    assert.deepEqual(fromEnv?.check, {
      url: 'https://app.internal/ready',
      intervalMs: 1_000,
      timeoutMs: 500,
      failuresBeforeDown: 2,
    });
    assert.equal(fromEnv?.drainMs, 7_500);
  });

  test('a token comes from DISCOVERY_TOKEN, or from --token with a warning that it is visible', () => {
    const fromEnv = parseAgentArgs(REQUIRED, { DISCOVERY_TOKEN: 'secret-from-env' });
    assert.equal(fromEnv?.token, 'secret-from-env');
    assert.deepEqual(fromEnv?.warnings, []);
    const fromFlag = parseAgentArgs([...REQUIRED, '--token', 'secret-on-flag'], { DISCOVERY_TOKEN: 'other' });
    assert.equal(fromFlag?.token, 'secret-on-flag');
    assert.match(fromFlag?.warnings[0] ?? '', /process list: prefer DISCOVERY_TOKEN/);
    assert.doesNotMatch(JSON.stringify(fromFlag?.warnings), /secret/);
  });

  test('--version is its own command; a password in a refused URL is masked', () => {
    assert.equal(parseAgentCommand(['--version'], {}), 'version');
    assert.equal(parseAgentCommand(['--help'], {}), 'help');
    assert.throws(
      () => parseAgentArgs([...REQUIRED, '--check-url', 'ftp://user:hunter2@app/h'], {}),
      (error) =>
        error instanceof UsageError && !error.message.includes('hunter2') && error.message.includes('user:***@'),
    );
  });

  test('a port out of range is left to discovery, whose answer names the rule', () => {
    assert.equal(parseAgentArgs([...REQUIRED, '--port', '70000'], {})?.registration.port, 70000);
  });
});
