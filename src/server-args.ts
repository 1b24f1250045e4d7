import { UsageError, type InformationalCommand } from './command-line.js';

export const SERVER_USAGE = `Usage: discovery-server
       discovery-server --version | --help

Serves the discovery registry: the v1 SDS REST API and the dashboard (/ui/) over HTTP on PORT
(default 8080), and the Envoy xDS control plane over gRPC on XDS_PORT (default 18000).

Every setting is an environment variable, read and checked once at start-up; the server takes
no other arguments. The table of settings is the "Settings" section of README.md (in the
package: node_modules/@discovery-registry/discovery/README.md).

Logs are JSON lines on stdout. Exit codes: 0 after SIGTERM/SIGINT (a clean shutdown), 1 when
start-up fails (a wrong setting, a port taken), 2 for a bad command line.`;

/** The server's command line: nothing (run), `--help`/`-h` or `--version`; anything else is refused. */
export function parseServerArgs(argv: readonly string[]): 'run' | InformationalCommand {
  if (argv.length === 0) return 'run';
  const [first] = argv;
  if (argv.length === 1 && (first === '--help' || first === '-h')) return 'help';
  if (argv.length === 1 && first === '--version') return 'version';
  const unexpected = argv.find((arg) => !['--help', '-h', '--version'].includes(arg)) ?? argv[1];
  throw new UsageError(
    `unexpected argument '${unexpected}': settings are environment variables (e.g. PORT=9090 discovery-server)`,
  );
}
