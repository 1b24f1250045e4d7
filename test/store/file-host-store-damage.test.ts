import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Host } from '../../src/hosts/model.js';
import { FileHostStore } from '../../src/store/file-host-store.js';
import { heartbeatOf } from '../contract/host-store.contract.js';
import { recordingLog } from '../helpers/fake-disk.js';
import { tempDir } from '../helpers/temp-dir.js';

const host = (index: number): Host => heartbeatOf({ ip_address: `10.0.0.${index}` });
const put = (index: number) => `${JSON.stringify({ put: host(index) })}\n`;

/** Writes the two files as given, opens a store over them, and reports what it served and logged. */
async function startOver(files: { journal?: string | Buffer; snapshot?: string | Buffer }) {
  const dir = await tempDir();
  if (files.journal !== undefined) await writeFile(path.join(dir.path, 'hosts.journal'), files.journal);
  if (files.snapshot !== undefined) await writeFile(path.join(dir.path, 'hosts.json'), files.snapshot);
  const log = recordingLog();
  const open = () => FileHostStore.open({ directory: dir.path, fsync: false, log });
  const served = async (store: FileHostStore) =>
    (await store.listByService('users')).hosts.map((each) => each.ip_address).sort();
  const warnings = () =>
    log.lines.filter((line) => line.level === 'warn').map((line) => `${line.msg} ${JSON.stringify(line.obj)}`);
  return { dir, log, open, served, warnings };
}

/** Recovers, checks the damaged copy and the rewritten journal, and that the next start is clean. */
async function assertRecovered(
  files: { journal: string | Buffer; snapshot?: string },
  expectedIps: string[],
  warningPatterns: RegExp[],
) {
  const subject = await startOver(files);
  const store = await subject.open();
  assert.deepEqual(await subject.served(store), expectedIps);
  const warnings = subject.warnings();
  assert.ok(warnings.length > 0, 'the recovery is logged as a warning');
  for (const pattern of warningPatterns)
    assert.ok(
      warnings.some((warning) => pattern.test(warning)),
      `a warning matches ${pattern}: ${warnings.join(' | ')}`,
    );
  const names = await readdir(subject.dir.path);
  const damaged = names.filter((name) => name.startsWith('hosts.journal.damaged-'));
  assert.equal(damaged.length, 1, `the damaged journal is kept aside: ${names.join(', ')}`);
  assert.deepEqual(
    await readFile(path.join(subject.dir.path, damaged[0]!)),
    Buffer.from(files.journal),
    'the kept copy is the damaged file as it was',
  );
  // Later appends land after good lines only, and the next start finds nothing to recover.
  await store.heartbeat(host(200));
  await store.close();
  subject.log.lines.length = 0;
  const again = await subject.open();
  assert.deepEqual(await subject.served(again), [...expectedIps, '10.0.0.200'].sort());
  assert.deepEqual(subject.warnings(), [], 'the second start is clean');
  await again.close();
  await subject.dir.remove();
}

/** Start-up is refused with one line naming the file, where, what was expected and what to do; nothing is changed. */
async function assertRefused(files: { journal?: string; snapshot?: string }, patterns: RegExp[]) {
  const subject = await startOver(files);
  const before = (await readdir(subject.dir.path)).sort();
  await assert.rejects(subject.open(), (error: Error) => {
    assert.doesNotMatch(error.message, /\n/, 'one line');
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
  assert.deepEqual((await readdir(subject.dir.path)).sort(), before, 'no file was added or removed');
  if (files.snapshot !== undefined)
    assert.equal(await readFile(path.join(subject.dir.path, 'hosts.json'), 'utf8'), files.snapshot);
  if (files.journal !== undefined)
    assert.equal(await readFile(path.join(subject.dir.path, 'hosts.journal'), 'utf8'), files.journal);
  await subject.dir.remove();
}

describe('InFile: a damaged journal is recovered up to its good lines', () => {
  test('a bad line in the middle is named and skipped; the lines after it are kept', async () => {
    await assertRecovered(
      { journal: put(1) + 'this is not json\n' + put(3) },
      ['10.0.0.1', '10.0.0.3'],
      [/hosts\.journal/, /line 2\b/, /byte 2\d\d\b/],
    );
  });

  test('a torn line followed by more lines: the record glued after the tear is kept too', async () => {
    const torn = put(2).slice(0, 60);
    await assertRecovered(
      { journal: put(1) + torn + put(3) + put(4) },
      ['10.0.0.1', '10.0.0.3', '10.0.0.4'],
      [/line 2\b/],
    );
  });

  test('a NUL-filled line (blocks allocated but never written before a crash) is skipped', async () => {
    await assertRecovered(
      { journal: put(1) + '\0'.repeat(180) + '\n' + put(3) },
      ['10.0.0.1', '10.0.0.3'],
      [/line 2\b/],
    );
  });

  test('a NUL-filled tail is dropped with a warning', async () => {
    await assertRecovered({ journal: put(1) + put(2) + '\0'.repeat(300) }, ['10.0.0.1', '10.0.0.2'], [/line 3\b/]);
  });

  test('a torn last line is dropped with a warning', async () => {
    await assertRecovered({ journal: put(1) + put(2).slice(0, 50) }, ['10.0.0.1'], [/line 2\b/]);
  });

  test('a byte-order mark at the start of the journal is dropped, not taken for damage of line 1', async () => {
    await assertRecovered({ journal: '\uFEFF' + put(1) + put(2) }, ['10.0.0.1', '10.0.0.2'], [/byte-order mark/]);
  });

  test('null, {} and records that are not hosts are damaged lines, each named with what was expected', async () => {
    const badPort = `${JSON.stringify({ put: { ...host(6), port: 'eighty' } })}\n`;
    const noTags = `${JSON.stringify({ put: { ...host(7), tags: null } })}\n`;
    const badDelete = `${JSON.stringify({ del: ['users'] })}\n`;
    await assertRecovered(
      {
        journal:
          put(1) +
          'null\n' +
          '{}\n' +
          '{"put":{"service":"users"}}\n' +
          badPort +
          noTags +
          badDelete +
          '[1,2]\n' +
          put(9),
      },
      ['10.0.0.1', '10.0.0.9'],
      [
        /line 2\b.*null/,
        /line 3\b/,
        /line 4\b.*ip_address/,
        /line 5\b.*port/,
        /line 6\b.*tags/,
        /line 7\b.*del/,
        /line 8\b/,
      ],
    );
  });

  test('a journal damaged over a good snapshot keeps the snapshot and the good lines', async () => {
    await assertRecovered(
      { snapshot: JSON.stringify([host(1), host(2)]), journal: put(3) + '{"del":["users","10.0.0.1"]\n' + put(4) },
      ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'],
      [/line 2\b/],
    );
  });
});

describe('InFile: a damaged snapshot refuses to start, with instructions', () => {
  const journal = put(9);
  const instructions = /move .*hosts\.json.* aside/;

  test('a truncated snapshot', async () => {
    const whole = JSON.stringify([host(1), host(2), host(3)]);
    await assertRefused({ snapshot: whole.slice(0, whole.length - 40), journal }, [
      /hosts\.json/,
      new RegExp(`byte ${whole.length - 40}\\b`),
      /expected/,
      instructions,
    ]);
  });

  test('an empty snapshot never starts as an empty registry', async () => {
    await assertRefused({ snapshot: '', journal }, [/hosts\.json/, /byte 0\b/, /empty/, /expected/, instructions]);
  });

  test('a snapshot with a bad byte in the middle names its offset', async () => {
    const whole = JSON.stringify([host(1), host(2)]);
    const at = whole.indexOf('},{') + 1; // the comma between the two records
    await assertRefused({ snapshot: whole.slice(0, at) + '#' + whole.slice(at + 1), journal }, [
      /hosts\.json/,
      new RegExp(`byte ${at}\\b`),
      instructions,
    ]);
  });

  for (const [name, snapshot] of [
    ['null', 'null'],
    ['{}', '{}'],
    ['a number', '42'],
  ] as const) {
    test(`a snapshot that is ${name}, not an array of hosts`, async () => {
      await assertRefused({ snapshot, journal }, [/hosts\.json/, /expected a JSON array/, instructions]);
    });
  }

  test('a snapshot record that is not a host names the record and the field', async () => {
    const snapshot = `[\n${JSON.stringify(host(1))},\n${JSON.stringify({ ...host(2), port: 0 })}\n]\n`;
    await assertRefused({ snapshot, journal }, [/hosts\.json/, /record 2\b/, /line 3\b/, /port/, instructions]);
  });

  test('a byte-order mark at the start of the snapshot is tolerated with a warning', async () => {
    const subject = await startOver({ snapshot: '\uFEFF' + JSON.stringify([host(1)]), journal: put(2) });
    const store = await subject.open();
    assert.deepEqual(await subject.served(store), ['10.0.0.1', '10.0.0.2']);
    assert.ok(
      subject.warnings().some((warning) => /hosts\.json.*byte-order mark/.test(warning)),
      subject.warnings().join(' | '),
    );
    await store.close();
    await subject.dir.remove();
  });
});
