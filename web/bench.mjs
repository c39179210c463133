// The page's verdict time against the native CLI's on the same file, on this machine:
// node web/bench.mjs FILE [RUNS] [--convert APP]. The CLI (LV_CLI, default build/lora-verify)
// runs `lora-verify FILE --json OUT`; the page (build-web/, served locally, in Debian's
// headless Chromium) is timed from the file being chosen to its verdict being shown, which
// includes reading the File into the module's memory. Runs alternate (CLI, page, CLI, …) so
// other load on the machine spreads over both; prints the medians as JSON. --convert APP: then
// once `convert --for APP` in the page (from the click to the download saved) and with the CLI,
// the two files compared byte for byte, with the peak RSS of Chromium's processes.
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';

const args = process.argv.slice(2);
const convertApp = args.includes('--convert') ? args.splice(args.indexOf('--convert'), 2)[1] : null;
const file = resolve(args[0]);
const runs = Number(args[1] ?? 5);
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
// A normal profile, not a private one: there Chromium cancels generated downloads over 2 GiB.
const browser = await chromium.launchPersistentContext(join(work, 'profile'), {
  executablePath: process.env.LV_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox'], acceptDownloads: true,
});
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

// Peak RSS of Chromium's processes (the largest one, and all together) while fn runs.
async function peakRss(fn) {
  const peak = { one: 0, all: 0 };
  const timer = setInterval(() => {
    let rss = [];
    try {
      rss = execFileSync('ps', ['-C', 'chromium', '-o', 'rss=']).toString().split('\n').filter(Boolean).map(Number);
    } catch { /* none running */ }
    peak.one = Math.max(peak.one, ...rss, 0);
    peak.all = Math.max(peak.all, rss.reduce((a, b) => a + b, 0));
  }, 200);
  try {
    return { result: await fn(), peak_rss_one_process_mb: Math.round(peak.one / 1024), peak_rss_all_mb: Math.round(peak.all / 1024) };
  } finally {
    clearInterval(timer);
  }
}

let conversion = null;
if (convertApp) {
  const out = `${basename(file).replace(/\.safetensors$/, '')}.${convertApp}.safetensors`;
  const t = process.hrtime.bigint();
  const r = spawnSync(cli, ['convert', basename(file), '-o', join(work, out), '--for', convertApp, '--quiet'], { cwd: dirname(file) });
  const cliConvertMs = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`lora-verify convert failed: ${r.stderr}`);
  await page.selectOption('#app', convertApp);
  const measured = await peakRss(async () => {
    const started = Date.now();
    const download = page.waitForEvent('download', { timeout: 900_000 });
    await page.click('#convert-button');
    const d = await download;
    copyFileSync(await d.path(), join(work, `page-${out}`));
    return { ms: Date.now() - started, text: await page.textContent('#convert-result') };
  });
  conversion = {
    app: convertApp, cli_ms: Math.round(cliConvertMs), page_ms: measured.result.ms, page_result: measured.result.text,
    identical: spawnSync('cmp', ['-s', join(work, out), join(work, `page-${out}`)]).status === 0,  // files may pass 2 GiB
    output_bytes: statSync(join(work, out)).size,
    peak_rss_one_process_mb: measured.peak_rss_one_process_mb, peak_rss_all_mb: measured.peak_rss_all_mb,
  };
}
await browser.close();
server.close();
rmSync(work, { recursive: true, force: true });
const result = {
  file: basename(file), bytes: statSync(file).size, runs, load_average_at_start: load,
  cli_ms: Math.round(median(cliMs)), page_ms: Math.round(median(pageMs)), page_reading_file_ms: Math.round(median(readMs)),
  ratio: +(median(pageMs) / median(cliMs)).toFixed(2), wasm_memory_bytes: memory,
  cli_runs_ms: cliMs.map(Math.round), page_runs_ms: pageMs.map(Math.round), conversion,
};
console.log(JSON.stringify(result, null, 1));
