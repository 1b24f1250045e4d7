import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startDiscovery, type DiscoveryProcess } from '../helpers/discovery-process.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Every shell example in README.md and docs/*.md, pasted in order into a shell against a fresh
 * server, must work. The rule for which blocks run, stated once here and in the README:
 * - every fenced block whose info string is exactly `sh` runs, unless the line before its fence
 *   is `<!-- not run: <why> -->`;
 * - shell examples are written as `sh` blocks only (a `bash`, `shell` or `console` block fails
 *   this test), so none can slip past unrun;
 * - `NAME=value ... npm start` as a command of its own starts a fresh server with those settings
 *   (what the reader does in another terminal); each file starts on a fresh server with defaults;
 * - `localhost:8080` is the test server's address;
 * - each `curl` must answer below 400 (curl's `--fail-with-body`), and a command ending in
 *   `# answers NNN` must answer NNN (a 4xx or 5xx so announced does not stop the block).
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** One block is a handful of calls to a local server; far longer means something hangs. */
const BLOCK_BOUND_MS = 30_000;

interface Block {
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly commands: readonly string[];
  readonly notRun: string | undefined;
}

async function docFiles(): Promise<string[]> {
  const docs = (await readdir(path.join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).sort();
  return ['README.md', ...docs.map((name) => path.join('docs', name))];
}

function blocksOf(file: string, text: string): Block[] {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  for (let index = 0; index < lines.length; index++) {
    const fence = /^```(\S*)\s*$/.exec(lines[index]!);
    if (!fence) continue;
    const end = lines.findIndex((line, at) => at > index && line.startsWith('```'));
    assert.ok(end > index, `${file}:${index + 1}: a fence that never closes`);
    const info = fence[1]!;
    assert.ok(
      !['bash', 'shell', 'console', 'zsh', 'shell-session'].includes(info),
      `${file}:${index + 1}: shell examples are \`\`\`sh blocks (run by this test), not \`\`\`${info}`,
    );
    if (info === 'sh') {
      const before = index > 0 ? lines[index - 1]!.trim() : '';
      const notRun = /^<!-- not run: (.+) -->$/.exec(before)?.[1];
      blocks.push({ file, line: index + 1, commands: joinContinuations(lines.slice(index + 1, end)), notRun });
    }
    index = end;
  }
  return blocks;
}

/** One entry per command: continuation lines (ending in `\`) joined, blank lines dropped. */
function joinContinuations(lines: readonly string[]): string[] {
  const commands: string[] = [];
  let pending = '';
  for (const line of lines) {
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const command = (pending + line).trim();
    pending = '';
    if (command !== '') commands.push(command);
  }
  return commands;
}

const START = /^((?:[A-Z][A-Z0-9_]*=(?:'[^']*'|"[^"]*"|\S+)\s+)*)npm start$/;

/** `A=1 B='x y'` to { A: '1', B: 'x y' }. */
function settingsOf(prefix: string): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const match of prefix.matchAll(/([A-Z][A-Z0-9_]*)=('[^']*'|"[^"]*"|\S+)/g)) {
    const raw = match[2]!;
    settings[match[1]!] = /^['"]/.test(raw) ? raw.slice(1, -1) : raw;
  }
  return settings;
}

interface CommandOutcome {
  readonly command: string;
  readonly statuses: number[];
}

/** Runs the commands in one bash, curl made to fail on >= 400 and to report each status on stderr. */
async function runShell(
  commands: readonly string[],
  address: string,
): Promise<{ code: number | null; stdout: string; stderr: string; outcomes: CommandOutcome[] }> {
  const script = [
    'set -eo pipefail',
    // Each call's status goes to stderr, so `$(curl ...)` still captures only the body or headers.
    `curl() { command curl --silent --show-error --fail-with-body --max-time 10 -w '%{stderr}@status %{http_code}\\n' "$@"; }`,
    ...commands.flatMap((command, index) => [
      `printf '@command %d\\n' ${index} >&2`,
      refusalAllowed(command)
        .replaceAll('http://localhost:8080', `http://${address}`)
        .replaceAll('localhost:8080', address),
    ]),
  ].join('\n');
  const child = spawn('bash', ['-c', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), BLOCK_BOUND_MS);
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const outcomes: CommandOutcome[] = [];
  for (const line of stderr.split('\n')) {
    const started = /^@command (\d+)$/.exec(line);
    if (started) outcomes.push({ command: commands[Number(started[1])]!, statuses: [] });
    const status = /^@status (\d+)$/.exec(line);
    if (status) outcomes.at(-1)?.statuses.push(Number(status[1]));
  }
  return { code, stdout, stderr, outcomes };
}

/**
 * A command that says it `# answers 4xx` (or 5xx) shows a refusal: curl's failure is what it
 * shows, so it does not stop the block; the status is still checked against what it says.
 */
function refusalAllowed(command: string): string {
  return command.replace(/\s*(# answers [45]\d\d\s*)$/, ' || true  $1');
}

describe('the examples in README.md and docs/ work when pasted, in order, on a fresh server', async () => {
  for (const file of await docFiles()) {
    const blocks = blocksOf(file, await readFile(path.join(ROOT, file), 'utf8'));
    if (blocks.length === 0) continue;
    test(`${file}: every sh block, in order`, async () => {
      const dir = await tempDir();
      let server: DiscoveryProcess | undefined;
      const restart = async (settings: Record<string, string>) => {
        if (server) assert.equal(await server.stop('SIGTERM'), 0);
        server = await startDiscovery(settings, { cwd: dir.path });
      };
      try {
        await restart({});
        let ran = 0;
        for (const block of blocks) {
          const where = `${block.file}:${block.line}`;
          if (block.notRun !== undefined) {
            assert.ok(block.notRun.trim().length > 3, `${where}: a block that is not run says why`);
            continue;
          }
          const shell: string[] = [];
          const flush = async () => {
            if (shell.length === 0) return;
            const result = await runShell(shell, new URL(server!.url).host);
            const said = `${where}:\n${shell.join('\n')}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
            assert.equal(result.code, 0, `exits 0: ${said}`);
            assert.equal(result.outcomes.length, shell.length, `every command ran: ${said}`);
            for (const outcome of result.outcomes) {
              if (/\bcurl\b/.test(outcome.command)) assert.ok(outcome.statuses.length > 0, `a status: ${said}`);
              const expected = /# answers (\d{3})\s*$/.exec(outcome.command)?.[1];
              if (expected) assert.equal(outcome.statuses.at(-1), Number(expected), `${outcome.command}: ${said}`);
            }
            ran += shell.length;
            shell.length = 0;
          };
          for (const command of block.commands) {
            const start = START.exec(command);
            if (start) {
              await flush();
              await restart(settingsOf(start[1] ?? ''));
              ran++;
            } else {
              shell.push(command);
            }
          }
          await flush();
        }
        // A file whose every block says why it is not run has nothing to run; any other ran something.
        if (blocks.some((block) => block.notRun === undefined)) assert.ok(ran > 0, `${file}: at least one command ran`);
      } finally {
        if (server) await server.stop('SIGTERM');
        await dir.remove();
      }
    });
  }
});
