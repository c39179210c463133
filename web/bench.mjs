// The page's verdict time against the native CLI's on the same file, on this machine:
// node web/bench.mjs FILE [RUNS]. The CLI (LV_CLI, default build/lora-verify) runs
// `lora-verify FILE --json OUT`; the page (build-web/, served locally, in Debian's headless
// Chromium) is timed from the file being chosen to its verdict being shown, which includes
// reading the File into the module's memory. Runs alternate (CLI, page, CLI, …) so other load
// on the machine spreads over both; prints the medians as JSON.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const file = resolve(process.argv[2]);
const runs = Number(process.argv[3] ?? 5);
const repo = resolve(dirname(new URL(import.meta.url).pathname), '..');
const cli = process.env.LV_CLI ?? join(repo, 'build', 'lora-verify');
const work = mkdtempSync(join(tmpdir(), 'lv-bench-web-'));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function cliRun() {
  const t = process.hrtime.bigint();
  const r = spawnSync(cli, [basename(file), '--json', join(work, 'r.json'), '--quiet'], { cwd: dirname(file) });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0 && r.status !== 1) throw new Error(`lora-verify failed: ${r.stderr}`);
  return ms;
}

const server = await serve(join(repo, 'build-web'));
const browser = await chromium.launch({ executablePath: process.env.LV_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'] });
const page = await browser.newPage();
async function pageRun() {
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForSelector('body[data-ready="true"]');
  await page.setInputFiles('#file', file);
  await page.waitForSelector('#verdict[data-verdict]', { timeout: 900_000 });
  const phases = await page.evaluate(() => window.lvPhases);
  const start = phases[0][2];
  const loaded = phases.find(([p]) => p === 'reading')[2];
  return { verdict: phases.at(-1)[2] - start, reading_file: loaded - start, memory: Number(await page.getAttribute('#verdict', 'data-memory')) };
}

const load = loadavg().map((x) => x.toFixed(2)).join(' ');
await pageRun();  // warm: the module compiled once, the file in the page cache
cliRun();
const cliMs = [], pageMs = [], readMs = [];
let memory = 0;
for (let i = 0; i < runs; i++) {
  cliMs.push(cliRun());
  const p = await pageRun();
  pageMs.push(p.verdict);
  readMs.push(p.reading_file);
  memory = Math.max(memory, p.memory);
}
await browser.close();
server.close();
rmSync(work, { recursive: true, force: true });
const result = {
  file: basename(file), bytes: statSync(file).size, runs, load_average_at_start: load,
  cli_ms: Math.round(median(cliMs)), page_ms: Math.round(median(pageMs)), page_reading_file_ms: Math.round(median(readMs)),
  ratio: +(median(pageMs) / median(cliMs)).toFixed(2), wasm_memory_bytes: memory,
  cli_runs_ms: cliMs.map(Math.round), page_runs_ms: pageMs.map(Math.round),
};
console.log(JSON.stringify(result, null, 1));
