#!/usr/bin/env node
import { DiscoveryClient, DiscoveryError } from '../client/discovery-client.js';
import { readCommandLine } from '../command-line.js';
import { HeartbeatAgent, httpHealthCheck, type AgentLogEntry } from './agent.js';
import { parseAgentCommand, redactUrl, USAGE } from './agent-args.js';

/** Added to the worst case of a stop (in-flight heartbeat + delete, each bounded by the timeout) before the process gives up waiting. */
const SHUTDOWN_SLACK_MS = 2_000;

/** Exit codes: 0 stopped by a signal; 1 discovery refused the registration (4xx) or the agent failed (2, a bad command line: src/command-line.ts). */
const EXIT_REFUSED = 1;

function writeLog(entry: AgentLogEntry | Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify(entry)}\n`);
}

async function main(): Promise<void> {
  const settings = readCommandLine(
    {
      name: 'discovery-agent',
      usage: USAGE,
      parse: (argv) => parseAgentCommand(argv, process.env),
      onError: 'hint',
    },
    process.argv.slice(2),
  );
  for (const warning of settings.warnings)
    writeLog({ time: new Date().toISOString(), level: 'warn', msg: warning, service: settings.service });

  const client = new DiscoveryClient({ baseUrl: settings.url, timeoutMs: settings.timeoutMs, token: settings.token });
  const { check } = settings;
  const agent = new HeartbeatAgent({
    client,
    service: settings.service,
    registration: settings.registration,
    intervalMs: settings.intervalMs,
    log: writeLog,
    drainMs: settings.drainMs,
    ...(check
      ? {
          check: httpHealthCheck(
            check.url,
            check.intervalMs,
            check.timeoutMs,
            check.failuresBeforeDown,
            redactUrl(check.url),
          ),
        }
      : {}),
  });
  const stop = new AbortController();
  // Worst case of a stop: the in-flight heartbeat, the drain (its last heartbeat may start at its
  // end), then the delete, each request bounded by the timeout.
  const shutdownLimitMs = settings.drainMs + (check?.timeoutMs ?? 0) + 3 * settings.timeoutMs + SHUTDOWN_SLACK_MS;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      writeLog({
        time: new Date().toISOString(),
        level: 'warn',
        msg: `second ${signal}; exiting without waiting`,
        service: settings.service,
      });
      process.exit(EXIT_REFUSED);
    }
    writeLog({
      time: new Date().toISOString(),
      level: 'info',
      msg:
        settings.drainMs > 0 ? `${signal} received; draining, then deregistering` : `${signal} received; deregistering`,
      service: settings.service,
    });
    setTimeout(() => {
      writeLog({
        time: new Date().toISOString(),
        level: 'error',
        msg: `stop took longer than ${shutdownLimitMs} ms; exiting`,
        service: settings.service,
      });
      process.exit(EXIT_REFUSED);
    }, shutdownLimitMs).unref();
    stop.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    await agent.run(stop.signal);
  } catch (error) {
    // Already logged by the agent as one JSON line naming discovery's reason.
    if (error instanceof DiscoveryError) process.exit(EXIT_REFUSED);
    throw error;
  }
  // Exit now rather than when idle keep-alive sockets close.
  process.exit(0);
}

main().catch((error: unknown) => {
  writeLog({
    time: new Date().toISOString(),
    level: 'error',
    msg: `agent failed: ${error instanceof Error ? error.message : String(error)}`,
  });
  process.exit(EXIT_REFUSED);
});
