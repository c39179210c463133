// The page in a real headless Chromium (Debian's, driven by playwright-core; nothing
// downloads a browser): it loads a sample the CLI made, shows the CLI's verdict and per-app
// table for it, downloads the --for comfyui file byte for byte as the CLI writes it, sends
// nothing anywhere, and stays responsive while it works.
//
// LV_CHROMIUM: the browser (default /usr/bin/chromium). LV_SCREENSHOT=PATH: also save a
// screenshot of the page with its report there (scripts/test-web.sh --screenshot).
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliConvert, cliVerify, missing, run, sample, scratch, webDir } from './common.mjs';
import { serve } from '../serve.mjs';

const chromiumPath = process.env.LV_CHROMIUM ?? '/usr/bin/chromium';
let why = missing();
if (!why && !existsSync(chromiumPath)) why = `no Chromium at ${chromiumPath} (apt-get install chromium, or set LV_CHROMIUM)`;
let chromium = null;
if (!why) {
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    why = 'playwright-core is not installed (npm ci --prefix web)';
  }
}

const NAME = 'page_sample.safetensors';  // a full-size FLUX.1 LoRA, rank 4, diffusers names

test('the page checks a file as the CLI does and downloads the CLI-identical conversion', { skip: why ?? false, timeout: 300_000 }, async (t) => {
  const dir = scratch();
  sample(dir, NAME, '--rank', '4', '--seed', '7');
  const expected = cliVerify(dir, NAME);
  const native = cliConvert(dir, NAME, 'comfyui', 'page_sample.comfyui.safetensors');
  assert.equal(native.status, 0, native.stderr);

  const server = await serve(webDir);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  t.after(async () => {
    await browser.close();
    server.close();
  });
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const requests = [];
  page.on('request', (r) => requests.push({ method: r.method(), url: r.url(), body: r.postDataBuffer() }));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await page.goto(`${origin}/`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.match(await page.textContent('#privacy'), /Nothing is uploaded/);
  assert.match(await page.textContent('#limit'), /Files up to 2 GiB can be checked here/);

  // A timer on the page's own thread: the check runs in the worker, so it keeps firing.
  await page.evaluate(() => {
    window.lvGaps = { last: performance.now(), worst: 0 };
    window.lvTick = setInterval(() => {
      const now = performance.now();
      window.lvGaps.worst = Math.max(window.lvGaps.worst, now - window.lvGaps.last);
      window.lvGaps.last = now;
    }, 10);
  });
  await page.setInputFiles('#file', join(dir, NAME));
  await page.waitForSelector('#verdict[data-verdict]', { timeout: 120_000 });
  const worstGap = await page.evaluate(() => { clearInterval(window.lvTick); return window.lvGaps.worst; });
  // Run on the page's thread, the check would block it for about its whole time; a busy
  // machine (ctest runs other tests alongside) delays a timer too, but not by that much.
  const checkMs = Number(await page.getAttribute('#verdict', 'data-ms'));
  assert.ok(worstGap < Math.max(250, checkMs / 2), `the page's thread was blocked for ${worstGap.toFixed(0)} ms of ${checkMs} ms`);
  const phases = await page.evaluate(() => window.lvPhases.map(([p]) => p));
  assert.ok(phases.includes('loading') && phases.includes('done'), `progress phases: ${phases}`);
  assert.equal(await page.getAttribute('#progress', 'value'), '1');

  // The verdict and the per-app table are the CLI's.
  assert.equal(await page.getAttribute('#verdict', 'data-verdict'), expected.verdict);
  assert.match(await page.textContent('#verdict'), new RegExp(`^PASS — ${expected.summary_line}$`));
  const rows = await page.$$eval('#apps tbody tr', (trs) => trs.map((tr) => ({
    loader: tr.dataset.loader,
    cells: [...tr.cells].map((td) => ({ outcome: td.querySelector('strong')?.textContent ?? null, text: td.textContent })),
  })));
  assert.deepEqual(rows.map((r) => r.loader), expected.loaders.map((l) => l.loader));
  for (const [i, l] of expected.loaders.entries()) {
    const [app, input, output, advice] = rows[i].cells;
    assert.equal(app.text, l.display + l.established, l.loader);
    assert.equal(input.outcome, l.input.outcome, `${l.loader}: this file`);
    assert.equal(input.text, l.input.outcome + (l.input.message ?? ''), `${l.loader}: this file`);
    assert.equal(output.outcome, l.output.outcome, `${l.loader}: converted`);
    assert.equal(output.text, l.output.outcome + (l.output.message ?? ''), `${l.loader}: converted`);
    assert.equal(advice.text, l.advice ?? '', `${l.loader}: advice`);
  }
  assert.match(await page.textContent('#report-text'), /loaders \(input -> output\):/);
  if (process.env.LV_SCREENSHOT) {
    writeFileSync(process.env.LV_SCREENSHOT, await page.screenshot({ fullPage: true }));
  }

  // Convert for ComfyUI: the page downloads the file the CLI writes, byte for byte.
  assert.equal(await page.inputValue('#app'), 'comfyui');
  const download = page.waitForEvent('download', { timeout: 120_000 });
  await page.click('#convert-button');
  const d = await download;
  assert.equal(d.suggestedFilename(), 'page_sample.comfyui.safetensors');
  const got = readFileSync(await d.path());
  assert.ok(got.equals(native.bytes), `downloaded ${got.length} bytes, the CLI wrote ${native.bytes.length}, and they differ`);
  await page.waitForSelector('#convert-result[data-verdict="pass"]');
  assert.match(await page.textContent('#convert-result'), /^Verified: equivalent: all \d+ modules match within tolerance/);

  // A conversion the CLI refuses (sd-scripts cannot take every tensor without
  // --drop-unsupported): the CLI's message where the conversion was asked for.
  const refused = cliConvert(dir, NAME, 'sd-scripts', 'page_sample.sd-scripts.safetensors');
  assert.equal(refused.status, 65);
  await page.selectOption('#app', 'sd-scripts');
  await page.click('#convert-button');
  await page.waitForSelector('#convert-result[data-verdict="error"]');
  assert.equal(`error: ${await page.textContent('#convert-result')}`, refused.stderr.trim());

  // A file that is not a safetensors file: the CLI's message on the page.
  writeFileSync(join(dir, 'notes.safetensors'), 'just some text, not a LoRA\n');
  await page.setInputFiles('#file', join(dir, 'notes.safetensors'));
  await page.waitForSelector('#error:not([hidden])');
  const bad = run(dir, 'notes.safetensors', '--json', '-');
  assert.equal(bad.status, 65);
  assert.equal(`error: ${await page.textContent('#error')}`, bad.stderr.trim());

  // Nothing left this machine, and nothing but the page's own files was asked for.
  assert.deepEqual(errors, []);
  for (const r of requests) {
    assert.equal(r.method, 'GET', `${r.method} ${r.url}`);
    assert.equal(r.body, null, r.url);
    assert.ok(r.url.startsWith(`${origin}/`) || r.url.startsWith('blob:'), r.url);
  }
});
