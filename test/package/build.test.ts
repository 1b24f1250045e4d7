import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A project of two sources laid out as this one is, built by this project's build script. */
async function fixture(dir: string): Promise<void> {
  const write = async (file: string, text: string) => {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), text);
  };
  await mkdir(path.join(dir, 'scripts'));
  await copyFile(path.join(ROOT, 'scripts/build.mjs'), path.join(dir, 'scripts/build.mjs'));
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
  await write('package.json', JSON.stringify({ type: 'module', bin: { tool: 'dist/src/tool.js' } }));
  await write(
    'tsconfig.json',
    JSON.stringify({
      compilerOptions: {
        module: 'NodeNext',
        target: 'ES2022',
        outDir: 'dist',
        rootDir: '.',
        strict: true,
        incremental: true,
        tsBuildInfoFile: 'dist/tsconfig.tsbuildinfo',
        types: [],
        declaration: true,
        sourceMap: true,
      },
      include: ['src', 'test', 'bench'],
    }),
  );
  await write('src/tool.ts', '#!/usr/bin/env node\nexport const tool = 1;\n');
  await write('test/old.test.ts', 'export const old = 1;\n');
  await write('src/dashboard/static/index.html', '<p>one</p>\n');
  await write('src/dashboard/static/gone.css', 'p {}\n');
}

const build = (dir: string) =>
  run(process.execPath, [path.join(dir, 'scripts/build.mjs')], { cwd: dir, timeout: 120_000 });

test('the build compiles only what changed, removes outputs of deleted sources, mirrors the dashboard', async () => {
  const dir = await tempDir('discovery-build-');
  try {
    await fixture(dir.path);
    const dist = (file: string) => path.join(dir.path, 'dist', file);
    await build(dir.path);
    assert.ok(existsSync(dist('src/tool.js')));
    assert.ok(existsSync(dist('test/old.test.js')) && existsSync(dist('test/old.test.d.ts')));
    assert.equal(await readFile(dist('src/dashboard/static/index.html'), 'utf8'), '<p>one</p>\n');
    assert.equal((await stat(dist('src/tool.js'))).mode & 0o111, 0o111, 'a bin is executable');

    // Nothing changed: nothing is written.
    const before = (await stat(dist('src/tool.js'))).mtimeMs;
    await build(dir.path);
    assert.equal((await stat(dist('src/tool.js'))).mtimeMs, before);

    // A test deleted, a page changed and a file removed from the dashboard.
    await unlink(path.join(dir.path, 'test/old.test.ts'));
    await writeFile(path.join(dir.path, 'src/dashboard/static/index.html'), '<p>two</p>\n');
    await unlink(path.join(dir.path, 'src/dashboard/static/gone.css'));
    const { stderr } = await build(dir.path);
    assert.match(stderr, /removed dist\/test\/old\.test\.js \(its source is gone\)/);
    for (const output of ['old.test.js', 'old.test.js.map', 'old.test.d.ts'])
      assert.equal(existsSync(dist(`test/${output}`)), false, `${output} is still in dist/`);
    assert.equal(await readFile(dist('src/dashboard/static/index.html'), 'utf8'), '<p>two</p>\n');
    assert.equal(existsSync(dist('src/dashboard/static/gone.css')), false);

    // A new source is compiled as any change is, incrementally.
    await writeFile(path.join(dir.path, 'src/new.ts'), 'export const fresh = 2;\n');
    assert.doesNotMatch((await build(dir.path)).stderr, /compiling everything/);
    assert.ok(existsSync(dist('src/new.js')));

    // An output deleted by hand is compiled again, though its source is older than the build info.
    await unlink(dist('src/tool.js'));
    assert.match((await build(dir.path)).stderr, /compiling everything/);
    assert.ok(existsSync(dist('src/tool.js')));
  } finally {
    await dir.remove();
  }
});
