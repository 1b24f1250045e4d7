import pino, { type Logger } from 'pino';

/** The levels LOG_LEVEL names (config.ts reads the original's words, `warning` and `critical`, as these). */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** The part of a pino logger the domain, the stores and xDS use, so they can be handed any such logger. */
export interface Log {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

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
