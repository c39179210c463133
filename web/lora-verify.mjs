// lora-verify in JavaScript: the core library compiled to WebAssembly (lv_core.mjs and
// lv_core.wasm, built by scripts/build-web.sh into build-web/ beside this file). The web
// page's worker and node use this same module:
//
//   import { load } from './lora-verify.mjs';
//   const lv = await load();
//   const report = await lv.verify(bytes, { name: 'my_lora.safetensors' });  // the CLI's --json report
//   const out = await lv.convert(bytes, 'comfyui', { name: 'my_lora.safetensors' });  // Uint8Array
//
// Inputs are a Uint8Array, an ArrayBuffer or a Blob/File (read in pieces straight into the
// module's memory, so a file is held there once). Everything runs on this thread, in this
// process: nothing is sent anywhere.
import createLvCore from './lv_core.mjs';

// The module's memory is at most 4 GiB (wasm32), and no single buffer there can pass 2 GiB
// (PTRDIFF_MAX). Verifying holds the file plus one group of at most 96 MiB of it converted at
// a time, so files up to this size are checked. Converting holds the file, the converted
// tensors that are not the input's own bytes, and the converted file read back: 3.8 GB for
// the rank-128 FLUX.1 LoRA (1.39 GB, 2.19 GB converted for ComfyUI); a conversion that does
// not fit stops with OUT_OF_MEMORY's message.
export const MAX_INPUT_BYTES = 2 ** 31 - 1;  // 2 GiB less a byte

const OUT_OF_MEMORY = 'lora-verify ran out of memory: a browser gives WebAssembly at most 4 GiB, and converting ' +
  'holds the file, the converted tensors and the converted file read back at once; use the lora-verify command ' +
  'for this file';

const CHUNK_BYTES = 16 * 1024 * 1024;  // a Blob is copied in pieces of this size

// A lora-verify error: .code is the exit code the CLI gives for it (1 checks failed,
// 64 usage, 65 bad input, 66 cannot open, 70 internal, 73 cannot create, 74 I/O), .message
// the CLI's message; .report the report, when there is one (a conversion that failed).
export class LoraVerifyError extends Error {
  constructor(code, message, report = null) {
    super(message);
    this.name = 'LoraVerifyError';
    this.code = code;
    this.report = report;
  }
}

const isNode = typeof process === 'object' && typeof process.versions?.node === 'string';

// Loads the module. options.wasmBinary: the .wasm bytes (node reads lv_core.wasm beside this
// file itself); options.maxInputBytes: a lower limit than MAX_INPUT_BYTES.
export async function load(options = {}) {
  const args = { print: () => {}, printErr: (s) => console.warn(s) };
  if (options.wasmBinary) args.wasmBinary = options.wasmBinary;
  else if (isNode) {
    const { readFile } = await import('node:fs/promises');
    args.wasmBinary = await readFile(new URL('./lv_core.wasm', import.meta.url));
  }
  const core = await createLvCore(args);
  return new LoraVerify(core, Math.min(options.maxInputBytes ?? MAX_INPUT_BYTES, MAX_INPUT_BYTES));
}

// NAME.APP.safetensors for NAME.safetensors, as the CLI's advice names it; a given name is
// kept to its last path component.
export function outputFileName(name, app, given) {
  if (given) return given.split(/[\\/]/).pop() || 'converted.safetensors';
  const base = name.split(/[\\/]/).pop().replace(/\.safetensors$/i, '');
  return `${base || 'converted'}.${app}.safetensors`;
}

// The limit as the page states it: "2 GiB" for MAX_INPUT_BYTES.
export function limitText(n) {
  return n >= 2 ** 30 ? `${+((n + 1) / 2 ** 30).toFixed(1)} GiB` : sizeText(n);
}

function sizeText(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${n} bytes`;
}

class LoraVerify {
  constructor(core, maxInputBytes) {
    this.core = core;
    this.maxInputBytes = maxInputBytes;
    this.broken = null;  // set when the module aborted (out of memory): load a new one
    this.version = core.version();
    this.outputHint = 0;
    this.#fileGrowth();
  }

  // [{name, display, established}] of every app lora-verify has a loader profile for.
  apps() {
    return JSON.parse(this.core.apps());
  }

  // The report of `lora-verify FILE --json` (converted in memory, re-read and verified).
  async verify(input, options = {}) {
    return (await this.verifyFile(input, options)).report;
  }

  // The same, with the CLI's text report: {pass, report, text}.
  async verifyFile(input, { name = 'input.safetensors', onProgress } = {}) {
    await this.#stage(input, name, onProgress);
    const env = this.#call(name, () => this.core.verify(name, this.#progress(onProgress)));
    return { pass: env.pass, report: env.report, text: env.text };
  }

  // `lora-verify convert NAME -o OUTPUT --for APP [--drop-unsupported]`: {pass, report, text,
  // bytes, outputName}; bytes (Uint8Array) is the converted file, re-read and verified, or null
  // when it did not verify (the report says why). outputName defaults to the name the CLI's
  // advice uses, NAME.APP.safetensors.
  async convertFile(input, app, { name = 'input.safetensors', outputName, dropUnsupported = false, onProgress } = {}) {
    outputName = outputFileName(name, app, outputName);
    await this.#stage(input, name, onProgress);
    // The converted file is at most about 1.6 × the input (diffusers to BFL names).
    this.outputHint = Math.ceil(this.core.staged_size() * 1.6) + (16 << 20);
    let env;
    try {
      env = this.#call(name, () =>
        this.core.convert(name, app, outputName, !!dropUnsupported, this.#progress(onProgress)));
    } finally {
      this.outputHint = 0;
    }
    let bytes = null;
    if (env.output) {
      // Written into the module's in-memory file system (cwd "/"): its bytes are taken as
      // they are (no copy) and the file removed.
      const node = this.core.FS.lookupPath(env.output).node;
      bytes = node.contents.subarray(0, node.usedBytes);
      this.core.FS.unlink(env.output);
    }
    return { pass: env.pass, report: env.report, text: env.text, bytes, outputName };
  }

  // The converted file's bytes; a conversion that does not verify throws (code 1, .report).
  async convert(input, app, options = {}) {
    const r = await this.convertFile(input, app, options);
    if (!r.bytes) throw new LoraVerifyError(1, `${r.report.input}: ${r.report.summary_line}`, r.report);
    return r.bytes;
  }

  // Emscripten's in-memory file system grows a file by an eighth at a time, copying it each
  // time: tens of copies for a converted file of gigabytes. Here a file grows to
  // outputHint at once when one is set (during convert), else by half.
  #fileGrowth() {
    const memfs = this.core.FS.filesystems.MEMFS;
    memfs.expandFileStorage = (node, wanted) => {
      const prev = node.contents ? node.contents.length : 0;
      if (prev >= wanted) return;
      const grown = prev < (1 << 20) ? prev * 2 : Math.floor(prev * 1.5);
      const old = node.contents;
      node.contents = new Uint8Array(Math.max(wanted, grown, this.outputHint, 256));
      if (node.usedBytes > 0) node.contents.set(old.subarray(0, node.usedBytes), 0);
    };
  }

  #progress(onProgress) {
    return onProgress ? (phase, fraction) => onProgress(phase, fraction) : undefined;
  }

  #call(name, fn) {
    if (this.broken) throw this.broken;
    let env;
    try {
      env = JSON.parse(fn());
    } catch (e) {
      // An abort (an allocation failed: the module's memory cannot grow past 4 GiB) leaves the
      // module unusable: load() a new one.
      this.broken = new LoraVerifyError(70, `${name}: ${OUT_OF_MEMORY} (${e.message ?? e})`);
      throw this.broken;
    }
    // The converted file could not be read back into memory beside the input.
    if (!env.ok && env.code === 74 && /: Out of memory$/.test(env.message))
      throw new LoraVerifyError(74, `${name}: ${OUT_OF_MEMORY} (${env.message})`);
    if (!env.ok) throw new LoraVerifyError(env.code, env.message);
    return env;
  }

  // Copies the input into the module's memory, where verify/convert take it.
  async #stage(input, name, onProgress) {
    if (this.broken) throw this.broken;
    if (input instanceof ArrayBuffer) input = new Uint8Array(input);
    const isBlob = typeof Blob === 'function' && input instanceof Blob;
    if (!isBlob && !(input instanceof Uint8Array))
      throw new LoraVerifyError(64, `${name}: the input must be a Uint8Array, an ArrayBuffer or a Blob`);
    const size = isBlob ? input.size : input.byteLength;
    if (size > this.maxInputBytes)
      throw new LoraVerifyError(65, `${name}: ${sizeText(size)} is more than the ${limitText(this.maxInputBytes)} ` +
        'lora-verify can hold in the browser (WebAssembly memory is at most 4 GiB); use the lora-verify command for it');
    const ptr = this.core.stage_input(size) >>> 0;
    if (!ptr) throw new LoraVerifyError(70, `${name}: cannot allocate ${sizeText(size)} for the input`);
    if (!isBlob) {
      this.core.HEAPU8.set(input, ptr);
      return;
    }
    // The next piece is read while this one is copied: reading a File is the slow part.
    const read = (off) => input.slice(off, Math.min(size, off + CHUNK_BYTES)).arrayBuffer();
    let next = size > 0 ? read(0) : null;
    for (let off = 0; off < size; off += CHUNK_BYTES) {
      if (onProgress) onProgress('loading', off / size);
      const piece = new Uint8Array(await next);
      next = off + CHUNK_BYTES < size ? read(off + CHUNK_BYTES) : null;
      this.core.HEAPU8.set(piece, ptr + off);  // HEAPU8 read again: memory does not grow meanwhile
    }
  }
}
