/**
 * The rooms of src/ and the arrows allowed between them: the one table that eslint.config.js
 * turns into `no-restricted-imports` rules and test/import-graph.test.ts checks the whole
 * import graph against (type-only and dynamic imports included, and no circles).
 *
 * A room is a folder of src/ (`hosts/`), a file at its top (`config.ts`), or `shared`: the
 * small modules at the top that every room may use. Dependencies point down only: a room may
 * import its own files and the rooms of a lower rank, never a room of its own rank (siblings
 * stay apart) nor one above it.
 */

/** Modules at the top of src/ that every room may import; they import nothing but each other. */
export const SHARED_FILES = [
  'booleans.ts',
  'clock.ts',
  // --help, --version and refusing other arguments, for both bins (the server and the agent).
  'command-line.ts',
  'errors.ts',
  'listen-failure.ts',
  'logger.ts',
  'node-support.ts',
  'readiness.ts',
  'stats.ts',
  'tls-files.ts',
  'version.ts',
];

/** The server's rooms, lowest first. */
export const SERVER_RANKS = [
  ['shared', 'types/'],
  // The domain: every rule; it owns the interfaces it depends on (host-store.ts, change-log.ts).
  ['hosts/'],
  // Built on the domain: the backends, replicas sharing one table, the xDS control plane.
  ['store/', 'replication/', 'xds/'],
  // Counters and series over the domain's events and the change feed.
  ['metrics.ts'],
  // The HTTP edge: request schemas and parsing, routes, auth.
  ['http/'],
  ['dashboard/'],
  // Reads and checks the environment; each setting's vocabulary lives in the room that uses it.
  ['config.ts'],
  ['app.ts'],
  ['compose.ts'],
  // The server bin's usage, read before any setting.
  ['server-args.ts'],
  ['main.ts'],
];

/**
 * The package's library side stands apart from the server: no server room imports it. Each of
 * its rooms lists what it may import. The client speaks the wire (hosts/ and http/ types only,
 * erased from its JavaScript); the agent is built on the client; the package entry
 * (src/index.ts) re-exports both.
 */
export const LIBRARY_IMPORTS = {
  'client/': ['shared', 'hosts/', 'http/'],
  'agent/': ['shared', 'client/'],
  'index.ts': ['client/', 'agent/'],
};

export const ALL_ROOMS = [...SERVER_RANKS.flat(), ...Object.keys(LIBRARY_IMPORTS)];

/** The room of a path relative to src/ (`hosts/model.ts`, `config.ts`), or undefined when it has none. */
export function roomOf(relativePath) {
  const slash = relativePath.indexOf('/');
  const room = slash === -1 ? relativePath : relativePath.slice(0, slash + 1);
  if (SHARED_FILES.includes(room)) return 'shared';
  return ALL_ROOMS.includes(room) ? room : undefined;
}

/** The rooms `room` may import, itself included. */
export function allowedImports(room) {
  if (room in LIBRARY_IMPORTS) return [room, ...LIBRARY_IMPORTS[room]];
  const rank = SERVER_RANKS.findIndex((rooms) => rooms.includes(room));
  if (rank === -1) throw new Error(`no room named ${room}`);
  return [room, ...SERVER_RANKS.slice(0, rank).flat()];
}
