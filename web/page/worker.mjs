// The page's worker: runs lora-verify (WebAssembly) off the page's thread, so the page stays
// responsive while a large file is checked. Messages in: {id, cmd: 'verify' | 'convert',
// file, app, dropUnsupported}. Out: {type: 'ready', …}, then per request {id, type:
// 'progress' | 'result' | 'error', …}. The file never leaves this browser.
import { load, limitText, MAX_INPUT_BYTES } from './lora-verify.mjs';

let lv = null;

async function start() {
  try {
    lv = await load();
    postMessage({ type: 'ready', version: lv.version, apps: lv.apps(), maxInputBytes: MAX_INPUT_BYTES, limit: limitText(MAX_INPUT_BYTES) });
  } catch (e) {
    postMessage({ type: 'failed', message: String(e.message ?? e) });
  }
}

async function run({ id, cmd, file, app, dropUnsupported }) {
  const onProgress = (phase, fraction) => postMessage({ id, type: 'progress', phase, fraction });
  const started = performance.now();
  try {
    if (cmd === 'verify') {
      const r = await lv.verifyFile(file, { name: file.name, onProgress });
      postMessage({ id, type: 'result', ...r, ms: performance.now() - started, memoryBytes: lv.core.HEAPU8.length });
    } else if (cmd === 'convert') {
      const { bytes, ...r } = await lv.convertFile(file, app, { name: file.name, dropUnsupported, onProgress });
      // A Blob travels to the page by reference (an ArrayBuffer of 2 GiB or more can be neither
      // posted nor put into a Blob whole: it goes in in pieces).
      const pieces = [];
      for (let off = 0; bytes && off < bytes.length; off += 256 << 20) pieces.push(bytes.subarray(off, off + (256 << 20)));
      const blob = bytes ? new Blob(pieces, { type: 'application/octet-stream' }) : null;
      postMessage({ id, type: 'result', ...r, blob, ms: performance.now() - started });
    }
  } catch (e) {
    postMessage({ id, type: 'error', code: e.code ?? 70, message: String(e.message ?? e), report: e.report ?? null,
                  broken: !!lv.broken });
  }
}

onmessage = (ev) => run(ev.data);
start();
