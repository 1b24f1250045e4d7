import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import ts from 'typescript';

/**
 * The import graph of src/ against the room table in scripts/rooms.mjs (the table
 * eslint.config.js enforces per import line). Read from the sources, not the compiled
 * JavaScript: type-only imports vanish from the output but are arrows all the same, and the
 * circle this replaced (config.ts -> hosts/instance-keys.ts -> logger.ts -> config.ts) was
 * type-only. Dynamic `import()` counts too, which the lint rule does not see.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = path.join(ROOT, 'src');

interface Rooms {
  roomOf(relativePath: string): string | undefined;
  allowedImports(room: string): string[];
}
const rooms = (await import(pathToFileURL(path.join(ROOT, 'scripts/rooms.mjs')).href)) as Rooms;

/** Each file of src/ (relative, `hosts/model.ts`) with the files of src/ it imports. */
type ImportGraph = Map<string, string[]>;

function importGraph(srcDir: string): ImportGraph {
  const graph: ImportGraph = new Map();
  const files = (readdirSync(srcDir, { recursive: true }) as string[])
    .filter((file) => file.endsWith('.ts'))
    .map((file) => file.split(path.sep).join('/'))
    .sort();
  for (const file of files) {
    const source = readFileSync(path.join(srcDir, file), 'utf8');
    const { importedFiles } = ts.preProcessFile(source, true, true);
    const targets = importedFiles
      .map((ref) => ref.fileName)
      .filter((specifier) => specifier.startsWith('.'))
      .map((specifier) => {
        const target = path.posix.join(path.posix.dirname(file), specifier).replace(/\.js$/, '.ts');
        assert.ok(existsSync(path.join(srcDir, target)), `${file} imports ${specifier}, which is not a file of src/`);
        return target;
      });
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Every circle, as the files on it (Tarjan's strongly connected components of more than one file, or a file importing itself). */
function circles(graph: ImportGraph): string[][] {
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (file: string) => {
    order.set(file, order.size);
    low.set(file, order.get(file)!);
    stack.push(file);
    onStack.add(file);
    for (const target of graph.get(file) ?? []) {
      if (!order.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(file, Math.min(low.get(file)!, order.get(target)!));
      }
    }
    if (low.get(file) === order.get(file)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== file);
      if (component.length > 1 || graph.get(file)?.includes(file)) found.push(component.sort());
    }
  };
  for (const file of graph.keys()) if (!order.has(file)) visit(file);
  return found;
}

/** Every import from a room to one it may not import (`from -> to (room -> room)`). */
function wrongArrows(graph: ImportGraph): string[] {
  const wrong: string[] = [];
  for (const [file, targets] of graph) {
    const from = rooms.roomOf(file);
    if (from === undefined) continue; // reported by the room test
    const allowed = rooms.allowedImports(from);
    for (const target of targets) {
      const to = rooms.roomOf(target);
      if (to === undefined || !allowed.includes(to)) wrong.push(`${file} -> ${target} (${from} -> ${to ?? 'no room'})`);
    }
  }
  return wrong;
}

describe('the import graph of src/', () => {
  const graph = importGraph(SRC);

  test('is read with its type-only arrows', () => {
    // `import type { Log } from '../logger.js'`: gone from the JavaScript, still an arrow.
    assert.ok(graph.get('hosts/instance-keys.ts')?.includes('logger.ts'));
    assert.ok(graph.size > 50, `only ${graph.size} files read`);
  });

  test('every file of src/ is in a room of scripts/rooms.mjs, so the lint rule covers it', () => {
    const homeless = [...graph.keys()].filter((file) => rooms.roomOf(file) === undefined);
    assert.deepEqual(homeless, [], 'add each new folder or top-level file to the room table');
  });

  test('has no import circles', () => {
    assert.deepEqual(circles(graph), []);
  });

  test('has no arrow running back up: each room imports only the rooms below it', () => {
    assert.deepEqual(wrongArrows(graph), []);
  });

  test('the checks find a circle and an upward arrow when there is one', () => {
    const broken: ImportGraph = new Map([
      ['config.ts', ['hosts/instance-keys.ts']],
      ['hosts/instance-keys.ts', ['logger.ts']],
      ['logger.ts', ['config.ts']],
      ['client/index.ts', ['agent/agent.ts']],
      ['agent/agent.ts', []],
    ]);
    assert.deepEqual(circles(broken), [['config.ts', 'hosts/instance-keys.ts', 'logger.ts']]);
    assert.deepEqual(wrongArrows(broken), [
      'logger.ts -> config.ts (shared -> config.ts)',
      'client/index.ts -> agent/agent.ts (client/ -> agent/)',
    ]);
  });
});
