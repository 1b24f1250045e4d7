// The build (`npm run build`; also run on install by `prepare`, on `npm pack` by `prepack`, and
// before `npm start` and `npm test`). It does only what changed, so running it again costs seconds:
//   1. `tsc -b` compiles src/, test/ and bench/ into dist/, incrementally (dist/tsconfig.tsbuildinfo);
//      an output missing for a source older than the last build (dist/ partly deleted by hand)
//      forces a full compile;
//   2. outputs whose source is gone are deleted, so a removed test never runs from a stale dist/;
//   3. the dashboard's static files are mirrored into dist/src/dashboard/static/, where the built
//      server reads them (a package carries dist/ only), copying only files that differ;
//   4. the package's bins are made executable.
// Plain JavaScript, since it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const buildInfo = path.join(dist, 'tsconfig.tsbuildinfo');
const compiled = ['src', 'test', 'bench'];
const staticSource = path.join(root, 'src', 'dashboard', 'static');
const staticTarget = path.join(dist, 'src', 'dashboard', 'static');
/** What tsc writes for one `x.ts`. */
const OUTPUT_SUFFIXES = ['.js', '.js.map', '.d.ts', '.d.ts.map'];

function say(line) {
  process.stderr.write(`build: ${line}\n`);
}

/** Every file under `dir`, as paths relative to it; none when it does not exist. */
function walk(dir, relative = '') {
  const here = path.join(dir, relative);
  if (!existsSync(here)) return [];
  const files = [];
  for (const entry of readdirSync(here, { withFileTypes: true })) {
    const name = path.join(relative, entry.name);
    if (entry.isDirectory()) files.push(...walk(dir, name));
    else files.push(name);
  }
  return files;
}

function isCompiledSource(file) {
  return file.endsWith('.ts') && !file.endsWith('.d.ts');
}

function compile() {
  let tsc;
  try {
    tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  } catch {
    // An install without dev dependencies (npm ci --omit=dev) of a tree that was built before.
    if (existsSync(path.join(dist, 'src', 'main.js'))) {
      say('typescript is not installed (dev dependencies omitted); keeping the existing dist/');
      return false;
    }
    say('typescript is not installed: the build needs the dev dependencies (npm ci without --omit=dev)');
    process.exit(1);
  }
  // tsc -b emits only for sources changed since its build info, so an output deleted by hand
  // while its source stayed older than that would never come back. (A new source has no output
  // yet either, but is newer than the build info, so tsc -b compiles it.)
  const builtAt = existsSync(buildInfo) ? statSync(buildInfo).mtimeMs : undefined;
  const lost =
    builtAt !== undefined &&
    compiled.some((dir) =>
      walk(path.join(root, dir))
        .filter(isCompiledSource)
        .some(
          (file) =>
            statSync(path.join(root, dir, file)).mtimeMs <= builtAt &&
            !existsSync(path.join(dist, dir, file.replace(/\.ts$/, '.js'))),
        ),
    );
  if (lost) {
    say('some compiled files are missing from dist/; compiling everything');
    rmSync(buildInfo);
  }
  const result = spawnSync(process.execPath, [tsc, '-b', root], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
  return true;
}

function pruneOrphans() {
  for (const dir of compiled) {
    const outputs = path.join(dist, dir);
    for (const file of walk(outputs)) {
      const full = path.join(outputs, file);
      if (full.startsWith(staticTarget + path.sep)) continue;
      const suffix = OUTPUT_SUFFIXES.find((each) => file.endsWith(each));
      const base = suffix === undefined ? undefined : file.slice(0, -suffix.length);
      if (base !== undefined && existsSync(path.join(root, dir, `${base}.ts`))) continue;
      rmSync(full);
      say(`removed ${path.relative(root, full)} (its source is gone)`);
    }
  }
}

function sameContent(a, b) {
  return existsSync(b) && statSync(a).size === statSync(b).size && readFileSync(a).equals(readFileSync(b));
}

function mirrorStatic() {
  const sources = new Set(walk(staticSource));
  for (const file of walk(staticTarget)) {
    if (!sources.has(file)) rmSync(path.join(staticTarget, file));
  }
  for (const file of sources) {
    const from = path.join(staticSource, file);
    const to = path.join(staticTarget, file);
    if (sameContent(from, to)) continue;
    mkdirSync(path.dirname(to), { recursive: true });
    copyFileSync(from, to);
  }
}

function makeBinsExecutable() {
  const { bin } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  for (const file of Object.values(bin ?? {})) chmodSync(path.join(root, file), 0o755);
}

if (compile()) {
  pruneOrphans();
  mirrorStatic();
}
makeBinsExecutable();
