#!/usr/bin/env node
// The server process: `node dist/src/main.js`, or the package's `discovery-server` bin.
import { composeRegistry } from './compose.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { silenceAwsSdkNodeWarning, unsupportedNodeMessage } from './node-support.js';

/** How long a graceful shutdown may take before the process exits anyway. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
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
  const address = await registry.app.listen({ port: config.port, host: config.listenAddress });
  log.info(
    { address, backend: config.backendStorage, env: config.applicationEnv },
    `discovery listening on ${address}`,
  );
  const xdsPort = await registry.startXds();
  if (xdsPort !== undefined)
    log.info({ port: xdsPort, host: config.xds.listenAddress }, `xDS control plane listening on port ${xdsPort}`);

  const shutdown = (signal: string) => {
    log.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ graceMs: SHUTDOWN_GRACE_MS }, 'shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS);
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

main().catch((error: unknown) => {
  process.stderr.write(`discovery: start-up failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
