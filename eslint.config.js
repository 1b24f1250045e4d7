import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettierConfig from 'eslint-config-prettier';
import { allowedImports, ALL_ROOMS, SHARED_FILES } from './scripts/rooms.mjs';

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The files of a room, as eslint globs. */
function filesOf(room) {
  if (room === 'shared') return SHARED_FILES.map((file) => `src/${file}`);
  return room.endsWith('/') ? [`src/${room}**/*.ts`] : [`src/${room}`];
}

/**
 * How an import written in `from` names `room`: `./http/…` from a file at the top of src/,
 * `../http/…` (or `../../http/…`) from a file in a folder.
 */
function importsOf(room, from) {
  const up = from.endsWith('/') ? '^(\\.\\./)+' : '^\\./';
  if (room === 'shared') return SHARED_FILES.map((file) => `${up}${escape(file.replace(/\.ts$/, '.js'))}$`);
  return [room.endsWith('/') ? `${up}${escape(room)}` : `${up}${escape(room.replace(/\.ts$/, '.js'))}$`];
}

/** The domain reads no wire type: request schemas and parsing live in http/. */
const DOMAIN_PACKAGES = {
  group: ['typebox', 'typebox/*', '@sinclair/*', 'fastify', '@fastify/*'],
  message: 'hosts/ is the domain: TypeBox, Fastify and request parsing belong to http/.',
};

/**
 * Import boundaries: per room of src/, the rooms it may not import (scripts/rooms.mjs has the
 * order and the reasons). Type-only imports count: they are arrows a reader follows too.
 */
const roomBoundaries = ALL_ROOMS.filter((room) => room !== 'types/').map((room) => {
  const allowed = allowedImports(room);
  const patterns = ALL_ROOMS.filter((other) => other !== 'types/' && !allowed.includes(other)).flatMap((other) =>
    importsOf(other, room).map((regex) => ({
      regex,
      message: `${room} may not import ${other}: the rooms of src/ import only rooms below them (scripts/rooms.mjs).`,
    })),
  );
  if (room === 'hosts/') patterns.push(DOMAIN_PACKAGES);
  return { files: filesOf(room), rules: { 'no-restricted-imports': ['error', { patterns }] } };
});

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'test-artifacts/', 'src/dashboard/static/vendor/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettierConfig,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...roomBoundaries,
);
