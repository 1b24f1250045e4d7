import pino, { type Logger } from 'pino';
import type { LogLevel } from './config.js';

/** JSON lines on stdout. Credentials and cookies never reach the log. */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'discovery' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
