import { PACKAGE_VERSION } from './version.js';

/** Exit code of a command line that cannot be run, the same for both bins. */
export const EXIT_USAGE = 2;

/** A command line that cannot be run; the message is printed, then the usage or a hint to it. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** What a command line asks for besides running: print the usage, or the version. */
export type InformationalCommand = 'help' | 'version';

export interface BinCommandLine<T> {
  /** The bin's name, as users type it and as every line it prints starts. */
  readonly name: string;
  readonly usage: string;
  /** Reads argv; throws UsageError for a command line that cannot be run. */
  readonly parse: (argv: readonly string[]) => T | InformationalCommand;
  /**
   * What follows the error line on stderr: the whole usage (short enough to read at once), or
   * one line pointing to `--help` (a usage too long to bury the error line under).
   */
  readonly onError: 'usage' | 'hint';
}

/**
 * The start shared by `discovery-server` and `discovery-agent`, so both answer alike: `--help`
 * prints the usage on stdout and exits 0, `--version` prints `<name> <version>` and exits 0, a
 * command line `parse` refuses prints `<name>: <why>` on stderr and exits 2. Anything else is
 * returned for the bin to run. (Writes to a pipe or file are synchronous on Linux, so exiting
 * right after them loses nothing.)
 */
export function readCommandLine<T>(bin: BinCommandLine<T>, argv: readonly string[]): T {
  let command: T | InformationalCommand;
  try {
    command = bin.parse(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const after = bin.onError === 'usage' ? `\n${bin.usage}\n` : `Run ${bin.name} --help for usage.\n`;
    process.stderr.write(`${bin.name}: ${error.message}\n${after}`);
    process.exit(EXIT_USAGE);
  }
  if (command === 'help') {
    process.stdout.write(`${bin.usage}\n`);
    process.exit(0);
  }
  if (command === 'version') {
    process.stdout.write(`${bin.name} ${PACKAGE_VERSION}\n`);
    process.exit(0);
  }
  return command;
}
