import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface Throughput {
  readonly requestsPerSecond: number;
  readonly p99Ms: number;
  readonly p50Ms?: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly target: number | undefined;
  readonly ratio: number;
  readonly ratios: number[];
  readonly ours: Throughput;
  readonly baseline: Throughput;
  readonly pass: boolean | undefined;
  readonly notes?: string;
}

export interface ScaleResult {
  readonly hosts: number;
  readonly services: number;
  readonly loadSeconds: number;
  readonly rssMb: number;
  readonly rssAloneMb: number;
  readonly alone: Throughput;
  readonly full: Throughput;
}

export interface GrowthRow {
  readonly hosts: number;
  readonly bytes: number;
  readonly ours: Throughput;
  readonly baseline: Throughput;
  readonly ratio: number;
}

export interface BenchReport {
  readonly date: string;
  readonly command: string;
  readonly machine: string;
  readonly node: string;
  readonly seconds: number;
  readonly rounds: number;
  readonly results: ScenarioResult[];
  readonly scale?: ScaleResult;
  readonly growth?: GrowthRow[];
}

const CHROMIUM = '/usr/bin/chromium';

const fmt = (value: number, digits = 0) =>
  Number.isFinite(value)
    ? value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : 'n/a';

/**
 * Renders the figures as Markdown. With `outDir`, also writes results.json, RESULTS.md (the
 * figures followed by the hand-written notes in speed-notes.md) and the growth chart PNG.
 */
export async function renderResults(report: BenchReport, outDir: string | undefined): Promise<string> {
  const lines: string[] = [
    '# Benchmark results',
    '',
    `- Date: ${report.date}`,
    `- Command: \`${report.command}\``,
    `- Machine: ${report.machine}; Node.js ${report.node}`,
    `- Load: wrk -t1 -c50, ${report.seconds} s per run; ${report.rounds} rounds of A-B-B-A (A = discovery, B = bare node:http baseline), a fresh pair of processes per round; ratio = median over rounds of discovery's req/s over the baseline's`,
    '',
    '## Scenarios',
    '',
    '| scenario | discovery req/s | baseline req/s | ratio | target | p99 discovery | p99 baseline | notes |',
    '|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const result of report.results) {
    const verdict = result.target === undefined ? 'report' : `${result.target.toFixed(2)}× ${result.pass ? '✔' : '✘'}`;
    lines.push(
      `| ${result.description} | ${fmt(result.ours.requestsPerSecond)} | ${fmt(result.baseline.requestsPerSecond)} | ${result.ratio.toFixed(2)}× | ${verdict} | ${fmt(result.ours.p99Ms, 2)} ms | ${fmt(result.baseline.p99Ms, 2)} ms | ${result.notes ?? ''} |`,
    );
  }
  if (report.scale) {
    const scale = report.scale;
    const slowdown = scale.full.p50Ms! / scale.alone.p50Ms! - 1;
    lines.push(
      '',
      '## Scale',
      '',
      `${fmt(scale.hosts)} hosts over ${fmt(scale.services)} services, InMemory, registered over HTTP in ${scale.loadSeconds.toFixed(1)} s, every service read once.`,
      '',
      '| | resident memory | GET req/s (one 100-host service) | p50 | p99 |',
      '|---|---:|---:|---:|---:|',
      `| registry holding only that service | ${fmt(scale.rssAloneMb)} MB | ${fmt(scale.alone.requestsPerSecond)} | ${fmt(scale.alone.p50Ms!, 2)} ms | ${fmt(scale.alone.p99Ms, 2)} ms |`,
      `| registry holding ${fmt(scale.hosts)} hosts | ${fmt(scale.rssMb)} MB | ${fmt(scale.full.requestsPerSecond)} | ${fmt(scale.full.p50Ms!, 2)} ms | ${fmt(scale.full.p99Ms, 2)} ms |`,
      '',
      `Targets: resident memory under 300 MB (${scale.rssMb < 300 ? '✔' : '✘'} ${fmt(scale.rssMb)} MB); median GET latency within 10% of the lone service (${slowdown <= 0.1 ? '✔' : '✘'} ${(slowdown * 100).toFixed(1)}%).`,
    );
  }
  if (report.growth) {
    lines.push(
      '',
      '## Growth with hosts per service',
      '',
      '![GET throughput and p99 against hosts per service](growth.png)',
      '',
      '| hosts per service | response bytes | discovery req/s | baseline req/s | ratio | p99 discovery | p99 baseline |',
      '|---:|---:|---:|---:|---:|---:|---:|',
      ...report.growth.map(
        (row) =>
          `| ${fmt(row.hosts)} | ${fmt(row.bytes)} | ${fmt(row.ours.requestsPerSecond)} | ${fmt(row.baseline.requestsPerSecond)} | ${row.ratio.toFixed(2)}× | ${fmt(row.ours.p99Ms, 2)} ms | ${fmt(row.baseline.p99Ms, 2)} ms |`,
      ),
    );
  }
  const figures = lines.join('\n');
  if (!outDir) return figures;

  await mkdir(outDir, { recursive: true });
  await writeFile(path.join(outDir, 'results.json'), JSON.stringify(report, null, 2) + '\n');
  if (report.growth) await writeGrowthChart(report.growth, path.join(outDir, 'growth.png'));
  let notes = '';
  try {
    notes = await readFile(path.join(outDir, 'speed-notes.md'), 'utf8');
  } catch {
    // no notes yet
  }
  await writeFile(path.join(outDir, 'RESULTS.md'), `${figures}\n\n${notes}`.trimEnd() + '\n');
  return figures;
}

/** Draws the growth chart as SVG and has headless Chromium turn it into a PNG. */
async function writeGrowthChart(rows: GrowthRow[], file: string): Promise<void> {
  try {
    await access(CHROMIUM);
  } catch {
    process.stdout.write(`no ${CHROMIUM}: growth chart not drawn\n`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 720, height: 360 } });
    await page.setContent(growthSvg(rows));
    await page.screenshot({ path: file });
  } finally {
    await browser.close();
  }
}

function growthSvg(rows: GrowthRow[]): string {
  const width = 720;
  const height = 360;
  const left = 70;
  const right = 70;
  const top = 40;
  const bottom = 50;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const x = (index: number) => left + (rows.length === 1 ? plotWidth / 2 : (index / (rows.length - 1)) * plotWidth);
  const maxRps = Math.max(...rows.flatMap((row) => [row.ours.requestsPerSecond, row.baseline.requestsPerSecond])) * 1.1;
  const maxP99 = Math.max(...rows.map((row) => row.ours.p99Ms)) * 1.2;
  const yRps = (value: number) => top + plotHeight - (value / maxRps) * plotHeight;
  const yP99 = (value: number) => top + plotHeight - (value / maxP99) * plotHeight;
  const line = (values: number[], y: (value: number) => number) =>
    values.map((value, index) => `${index ? 'L' : 'M'}${x(index).toFixed(1)},${y(value).toFixed(1)}`).join(' ');
  const ticks = rows
    .map(
      (row, index) =>
        `<text x="${x(index)}" y="${height - bottom + 20}" text-anchor="middle">${row.hosts.toLocaleString('en-US')}</text>`,
    )
    .join('');
  const rpsTicks = [0, 0.25, 0.5, 0.75, 1]
    .map(
      (f) =>
        `<text x="${left - 8}" y="${yRps(maxRps * f) + 4}" text-anchor="end">${Math.round((maxRps * f) / 1000)}k</text><line x1="${left}" x2="${width - right}" y1="${yRps(maxRps * f)}" y2="${yRps(maxRps * f)}" stroke="#eee"/>`,
    )
    .join('');
  const p99Ticks = [0, 0.5, 1]
    .map((f) => `<text x="${width - right + 8}" y="${yP99(maxP99 * f) + 4}">${(maxP99 * f).toFixed(1)} ms</text>`)
    .join('');
  return `<!doctype html><html><body style="margin:0;background:#fff">
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">
<text x="${width / 2}" y="22" text-anchor="middle" font-size="15">GET /v1/registration/:service — throughput and p99 against hosts per service</text>
${rpsTicks}${p99Ticks}${ticks}
<text x="${width / 2}" y="${height - 8}" text-anchor="middle">hosts per service</text>
<path d="${line(
    rows.map((row) => row.baseline.requestsPerSecond),
    yRps,
  )}" fill="none" stroke="#999" stroke-width="2" stroke-dasharray="6 4"/>
<path d="${line(
    rows.map((row) => row.ours.requestsPerSecond),
    yRps,
  )}" fill="none" stroke="#1f6feb" stroke-width="3"/>
<path d="${line(
    rows.map((row) => row.ours.p99Ms),
    yP99,
  )}" fill="none" stroke="#d1242f" stroke-width="2"/>
<g transform="translate(${left + 10},${top + 10})">
<rect width="230" height="58" fill="#fff" stroke="#ccc"/>
<line x1="8" x2="38" y1="14" y2="14" stroke="#1f6feb" stroke-width="3"/><text x="46" y="18">discovery req/s (left axis)</text>
<line x1="8" x2="38" y1="30" y2="30" stroke="#999" stroke-width="2" stroke-dasharray="6 4"/><text x="46" y="34">bare node:http req/s</text>
<line x1="8" x2="38" y1="46" y2="46" stroke="#d1242f" stroke-width="2"/><text x="46" y="50">discovery p99 (right axis)</text>
</g>
</svg></body></html>`;
}
