// The JavaScript API (build-web/lora-verify.mjs over the WebAssembly module), run in node,
// against the CLI on the same files: the same --json reports, byte-identical converted files,
// the CLI's errors and exit codes.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cliConvert, cliVerify, missing, repo, run, sample, scratch, webDir } from './common.mjs';

const why = missing();
const api = why ? null : await import(pathToFileURL(join(webDir, 'lora-verify.mjs')).href);
const lv = api ? await api.load() : null;
const dir = why ? null : scratch();

// A full-size FLUX.1 LoRA (rank 4, diffusers names: 43 MB) and tiny ones in other dialects.
const FULL = 'full_r4.safetensors';
const full = why ? null : sample(dir, FULL, '--rank', '4');
const TINY = ['kohya', 'ai-toolkit', 'xlabs', 'fal', 'onetrainer'];

test('verify(bytes) is the CLI --json report, field for field', { skip: why ?? false }, async () => {
  const phases = [];
  const report = await lv.verify(full, { name: FULL, onProgress: (p, f) => phases.push([p, f]) });
  assert.deepEqual(report, cliVerify(dir, FULL));
  assert.equal(report.verdict, 'pass');
  assert.ok(phases.some(([p]) => p.startsWith('verifying')), 'progress names the phases');
  assert.deepEqual(phases.at(-1), ['done', 1]);
});

test('verify of each dialect matches the CLI', { skip: why ?? false }, async () => {
  for (const dialect of TINY) {
    const name = `tiny_${dialect}.safetensors`;
    const bytes = sample(dir, name, '--tiny', '--dialect', dialect, '--rank', '8');
    assert.deepEqual(await lv.verify(bytes, { name }), cliVerify(dir, name), dialect);
  }
});

test('a Blob is read in pieces and gives the same report', { skip: why ?? false }, async () => {
  const seen = [];
  const report = await lv.verify(new Blob([full]), { name: FULL, onProgress: (p, f) => seen.push([p, f]) });
  assert.deepEqual(report, await lv.verify(full, { name: FULL }));
  assert.ok(seen.filter(([p]) => p === 'loading').length >= 3, '43 MB in 16 MiB pieces');
});

test("convert(bytes, 'comfyui') is byte for byte the CLI's convert --for comfyui", { skip: why ?? false }, async () => {
  const out = api.outputFileName(FULL, 'comfyui');
  assert.equal(out, 'full_r4.comfyui.safetensors');
  const web = await lv.convertFile(full, 'comfyui', { name: FULL });
  const native = cliConvert(dir, FULL, 'comfyui', out);
  assert.equal(native.status, 0, native.stderr);
  assert.equal(web.pass, true);
  assert.ok(Buffer.from(web.bytes).equals(native.bytes), 'converted bytes differ from the CLI output');
  assert.deepEqual(web.report, native.report);
  assert.ok(Buffer.from(await lv.convert(full, 'comfyui', { name: FULL })).equals(native.bytes));
});

test('convert for every app: the same bytes, report or refusal as the CLI', { skip: why ?? false }, async () => {
  const name = 'tiny_diffusers.safetensors';
  const bytes = sample(dir, name, '--tiny', '--dialect', 'diffusers', '--rank', '4', '--seed', '3');
  const seen = { written: 0, refused: 0 };
  for (const { name: app } of lv.apps()) {
    for (const drop of [false, true]) {
      const out = api.outputFileName(name, app);
      const native = cliConvert(dir, name, app, out, ...(drop ? ['--drop-unsupported'] : []));
      const what = `${app}${drop ? ' --drop-unsupported' : ''}`;
      if (native.status === 0 || native.status === 1) {
        const web = await lv.convertFile(bytes, app, { name, dropUnsupported: drop });
        assert.deepEqual(web.report, native.report, what);
        assert.equal(web.bytes === null, native.bytes === null, what);
        if (web.bytes) assert.ok(Buffer.from(web.bytes).equals(native.bytes), what);
        seen.written += web.bytes ? 1 : 0;
      } else {
        seen.refused++;
        await assert.rejects(lv.convertFile(bytes, app, { name, dropUnsupported: drop }), (e) => {
          assert.equal(e.code, native.status, what);
          assert.equal(`error: ${e.message}`, native.stderr.trim().split('\n')[0], what);
          return true;
        });
      }
    }
  }
  assert.ok(seen.written >= 5 && seen.refused >= 1, JSON.stringify(seen));
});

test('bad input: the CLI message and exit code', { skip: why ?? false }, async () => {
  const bytes = new TextEncoder().encode('{"not": "a safetensors file"}\n');
  writeFileSync(join(dir, 'bad.safetensors'), bytes);
  const native = run(dir, 'bad.safetensors', '--json', '-');
  await assert.rejects(lv.verify(bytes, { name: 'bad.safetensors' }), (e) => {
    assert.equal(e.name, 'LoraVerifyError');
    assert.equal(e.code, native.status);
    assert.equal(`error: ${e.message}`, native.stderr.trim());
    return true;
  });
  await assert.rejects(lv.convert(full, 'no-such-app', { name: FULL }), (e) => e.code === 64 && /comfyui/.test(e.message));
  await assert.rejects(lv.verify('not bytes'), (e) => e.code === 64);
  // The module is still usable after errors.
  assert.equal((await lv.verify(full, { name: FULL })).verdict, 'pass');
});

test('a file beyond the size limit gets a clear message, not an attempt', { skip: why ?? false }, async () => {
  assert.ok(api.MAX_INPUT_BYTES >= 1.7e9, 'a 1.7 GB rank-128 file is within the limit');
  const small = await api.load({ maxInputBytes: 1_000_000 });
  await assert.rejects(small.verify(full, { name: FULL }), (e) => {
    assert.equal(e.code, 65);
    assert.match(e.message, /^full_r4\.safetensors: 43\.\d MB is more than the 1\.0 MB lora-verify can hold in the browser/);
    return true;
  });
  const big = { size: api.MAX_INPUT_BYTES + 1, slice() { throw new Error('must not be read'); } };
  Object.setPrototypeOf(big, Blob.prototype);
  await assert.rejects(lv.verify(big, { name: 'huge.safetensors' }), (e) => e.code === 65 && /^huge\.safetensors: 2\.15 GB is more than the 2 GiB lora-verify can hold in the browser/.test(e.message));
});

test('apps() lists the profiled apps in report order', { skip: why ?? false }, async () => {
  const names = lv.apps().map((a) => a.name);
  assert.deepEqual(names, cliVerify(dir, FULL).loaders.map((l) => l.loader));
  assert.ok(names.includes('comfyui'));
  assert.equal(lv.version, run(dir, '--version').stdout.trim().split(/\s+/).pop());
});

test('running out of memory: a clear message, and the module is not used again', { skip: why ?? false }, async () => {
  // What emscripten does when an allocation fails (no exceptions: abort), and what the
  // reader returns when the converted file cannot be read back beside the input.
  const oom = await api.load();
  oom.core.convert = () => JSON.stringify({ ok: false, code: 74, message: 'cannot re-read the written file: x.tmp: cannot read: Out of memory' });
  await assert.rejects(oom.convert(full, 'comfyui', { name: FULL }), (e) => {
    assert.equal(e.code, 74);
    assert.match(e.message, /^full_r4\.safetensors: lora-verify ran out of memory: a browser gives WebAssembly at most 4 GiB.*use the lora-verify command for this file/);
    return true;
  });
  assert.equal((await oom.verify(full, { name: FULL })).verdict, 'pass', 'a refused conversion leaves the module usable');
  oom.core.verify = () => { throw new WebAssembly.RuntimeError('Aborted(OOM)'); };
  await assert.rejects(oom.verify(full, { name: FULL }), (e) => e.code === 70 && /ran out of memory/.test(e.message));
  assert.ok(oom.broken);
  await assert.rejects(oom.verify(full, { name: FULL }), (e) => e === oom.broken);
});

test("the README's JavaScript runs as printed", { skip: why ?? false }, () => {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8');
  const block = readme.split('<!-- js-snippet -->')[1].split('```js\n')[1].split('```')[0];
  assert.match(block, /from '\.\/build-web\/lora-verify\.mjs'/);
  // The snippet with `bytes` a LoRA, its import pointing at the build under test.
  const script = join(dir, 'readme-snippet.mjs');
  const body = block.replace("'./build-web/lora-verify.mjs'", JSON.stringify(pathToFileURL(join(webDir, 'lora-verify.mjs')).href));
  writeFileSync(script, `import { readFileSync } from 'node:fs';\nconst bytes = readFileSync(${JSON.stringify(join(dir, FULL))});\n` +
    body.replaceAll("'my_lora.safetensors'", JSON.stringify(FULL)) +
    '\nconsole.log(JSON.stringify({ verdict: report.verdict, loaders: report.loaders.length, comfy: comfy.length }));\n');
  const out = JSON.parse(execFileSync(process.execPath, [script]).toString());
  const native = cliConvert(dir, FULL, 'comfyui', 'snippet.comfyui.safetensors');
  assert.deepEqual(out, { verdict: 'pass', loaders: cliVerify(dir, FULL).loaders.length, comfy: native.bytes.length });
});
