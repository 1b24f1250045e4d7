#!/usr/bin/env node
// The server process: `node dist/src/main.js`, or the package's `discovery-server` bin.
import { readCommandLine } from './command-line.js';
import { composeRegistry, openWritesWarning, type Registry } from './compose.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { describeListenFailure } from './listen-failure.js';
import { createLogger } from './logger.js';
import { silenceAwsSdkNodeWarning, unsupportedNodeMessage } from './node-support.js';
import { parseServerArgs, SERVER_USAGE } from './server-args.js';

/** How long a graceful shutdown may take, after SHUTDOWN_DRAIN_SECONDS, before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  // Before any setting is read: `--help` and `--version` answer and exit, whatever the environment.
  readCommandLine(
    { name: 'discovery-server', usage: SERVER_USAGE, parse: parseServerArgs, onError: 'usage' },
    process.argv.slice(2),
  );
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`discovery: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  const log = createLogger(config.logLevel);
  const unsupported = unsupportedNodeMessage();
  if (unsupported !== undefined) {
    log.warn({ node: process.version }, unsupported);
    silenceAwsSdkNodeWarning();
  }
  const openWrites = openWritesWarning(config);
  if (openWrites !== undefined) {
    // Loud at any LOG_LEVEL: on stderr as well when the logger would drop a warning.
    log.warn({ fix: ['AUTH_REGISTER_TOKENS', 'AUTH_ADMIN_TOKENS', 'LISTEN_ADDRESS=127.0.0.1'] }, openWrites);
    if (!log.isLevelEnabled('warn')) process.stderr.write(`discovery: warning: ${openWrites}\n`);
  }
  let registry;
  try {
    registry = await composeRegistry(config, log);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`discovery: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  // Every listener is bound before anything says "listening": xDS first, since Fastify logs its
  // own line as soon as HTTP is up. A port that is taken stops start-up with one line.
  let xdsPort: number | undefined;
  let address: string;
  try {
    xdsPort = await registry.startXds();
  } catch (error) {
    return stopStarting(
      registry,
      describeListenFailure(error, {
        portSetting: 'XDS_PORT',
        port: config.xds.port,
        addressSetting: 'XDS_LISTEN_ADDRESS',
        address: config.xds.listenAddress,
        alternative: 'XDS_ENABLED=false when no proxy uses the gRPC port',
      }),
    );
  }
  try {
    address = await registry.app.listen({ port: config.port, host: config.listenAddress });
  } catch (error) {
    return stopStarting(
      registry,
      describeListenFailure(error, {
        portSetting: 'PORT',
        port: config.port,
        addressSetting: 'LISTEN_ADDRESS',
        address: config.listenAddress,
      }),
    );
  }
  registry.readiness.markStarted();
  log.info(
    { address, backend: config.backendStorage, env: config.applicationEnv },
    `discovery listening on ${address}`,
  );
  if (xdsPort !== undefined)
    log.info({ port: xdsPort, host: config.xds.listenAddress }, `xDS control plane listening on port ${xdsPort}`);

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    const graceMs = config.drainSeconds * 1000 + SHUTDOWN_GRACE_MS;
    const timer = setTimeout(() => {
      log.error({ graceMs }, 'shutdown took too long; exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    registry.close().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

/** Releases what start-up took (the APPLICATION_DIR lock, a bound port), says why in one line, exits 1. */
async function stopStarting(registry: Registry, line: string): Promise<never> {
  await registry.close().catch(() => undefined);
  process.stderr.write(`discovery: ${line}\n`);
  process.exit(1);
}

main().catch((error: unknown) => {
  process.stderr.write(`discovery: start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
