/** A failure the caller can act on; `statusCode` is what the HTTP front end answers. */
export class DomainError extends Error {
  override readonly name: string = 'DomainError';
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
  }
}

/** A request that breaks a rule of the API: nothing was written. */
export class InvalidInputError extends DomainError {
  override readonly name = 'InvalidInputError';
  constructor(message: string, statusCode = 400) {
    super(message, statusCode);
  }
}

export class NotFoundError extends DomainError {
  override readonly name = 'NotFoundError';
  constructor(message: string, statusCode = 404) {
    super(message, statusCode);
  }
}

/**
 * Storage could not be reached or refused the call (throttling, timeout, network).
 * Answered as 503 so clients retry; never swallowed, since a lost write loses a host.
 */
export class StorageUnavailableError extends DomainError {
  override readonly name = 'StorageUnavailableError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 503);
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

/**
 * A setting that cannot be used; its message is the one line printed at start-up. Thrown by
 * config.ts while it reads the environment, and by a store that finds its setting unusable
 * (a locked directory, a missing plugin, a table of the wrong shape).
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
