// What the web tests share: where the CLI and the web build are, and samples the CLI makes
// and checks, to compare the WebAssembly module and the page against.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const webDir = resolve(process.env.LV_WEB_DIR ?? join(repo, 'build-web'));
export const cli = resolve(process.env.LV_CLI ?? join(repo, 'build', 'lora-verify'));

// Why the tests cannot run here, or null.
export function missing() {
  if (!existsSync(join(webDir, 'lv_core.wasm'))) return `no web build in ${webDir} (run scripts/build-web.sh)`;
  if (!existsSync(cli)) return `no lora-verify CLI at ${cli} (set LV_CLI)`;
  return null;
}

// A scratch folder, removed at exit.
export function scratch() {
  const dir = mkdtempSync(join(tmpdir(), 'lv-web-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Runs the CLI in `cwd` (inputs named relative to it, so its reports name them as the page
// does); returns {status, stdout, stderr}.
export function run(cwd, ...args) {
  const r = spawnSync(cli, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return r;
}

// `lora-verify sample NAME ARGS…` in dir; returns the file's bytes.
export function sample(dir, name, ...args) {
  const r = run(dir, 'sample', name, '--quiet', ...args);
  if (r.status !== 0) throw new Error(`lora-verify sample ${name} failed (${r.status}): ${r.stderr}`);
  return readFileSync(join(dir, name));
}

// The CLI's --json report of `verify NAME` (status 0 or 1: both have a report).
export function cliVerify(dir, name) {
  const r = run(dir, name, '--json', '-');
  if (r.status !== 0 && r.status !== 1) throw new Error(`lora-verify ${name}: exit ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// The CLI's `convert NAME -o OUT --for APP [--drop-unsupported] --json -`: {status, report,
// bytes (null when nothing was written), stderr}.
export function cliConvert(dir, name, app, out, ...extra) {
  const r = run(dir, 'convert', name, '-o', out, '--for', app, '--json', '-', ...extra);
  const path = join(dir, out);
  const bytes = existsSync(path) ? readFileSync(path) : null;
  if (bytes) rmSync(path);
  return { status: r.status, report: r.stdout ? JSON.parse(r.stdout) : null, bytes, stderr: r.stderr };
}
