// The page: hands the dropped file to the worker (worker.mjs) and shows what comes back.
const $ = (id) => document.getElementById(id);

let worker = null;
let ready = null;       // resolves with the worker's 'ready' message
let pending = new Map(); // request id → {resolve, reject}
let nextId = 1;
let current = null;     // the File being shown

function startWorker() {
  worker = new Worker(new URL('./worker.mjs', import.meta.url), { type: 'module' });
  ready = new Promise((resolve, reject) => {
    worker.onmessage = (ev) => {
      const m = ev.data;
      if (m.type === 'ready') return resolve(m);
      if (m.type === 'failed') return reject(new Error(m.message));
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === 'progress') return showProgress(m.phase, m.fraction);
      pending.delete(m.id);
      if (m.type === 'result') p.resolve(m);
      else {
        if (m.broken) restartWorker();  // out of memory: a fresh module for the next file
        p.reject(Object.assign(new Error(m.message), { code: m.code, report: m.report }));
      }
    };
    worker.onerror = (ev) => reject(new Error(ev.message || 'the worker could not start'));
  });
  return ready;
}

function restartWorker() {
  worker.terminate();
  startWorker();
}

async function request(msg) {
  await ready;
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, ...msg });
  });
}

function sizeText(n) {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${n} bytes`;
}

const PHASES = { loading: 'reading the file into memory' };
window.lvPhases = [];  // [phase, fraction, ms since the page loaded]: the phases' times, for tests
function showProgress(phase, fraction) {
  window.lvPhases.push([phase, fraction, performance.now()]);
  // The file is copied in first (a tenth of the bar), then the pipeline's own phases.
  const value = phase === 'loading' ? 0.1 * fraction : 0.1 + 0.9 * fraction;
  $('progress').value = value;
  $('phase').textContent = `${PHASES[phase] ?? phase}…`;
}

function busy(on, what) {
  $('work').hidden = !on && $('work').hidden;
  document.body.classList.toggle('busy', on);
  $('convert-button').disabled = on;
  $('file').disabled = on;
  if (on) {
    $('work').hidden = false;
    $('progress').value = 0;
    $('phase').textContent = what;
  }
}

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function outcomeCell(o) {
  const td = document.createElement('td');
  if (!o) {
    td.textContent = '—';
    return td;
  }
  td.className = `outcome ${o.outcome}`;
  const b = document.createElement('strong');
  b.textContent = o.outcome;
  td.append(b);
  if (o.message) {
    const m = document.createElement('div');
    m.className = 'small clamp';
    m.textContent = o.message;
    m.title = o.message;
    td.append(m);
  }
  return td;
}

function showReport(r, text, ms, memoryBytes) {
  $('result').hidden = false;
  const v = $('verdict');
  v.className = `verdict ${r.verdict}`;
  v.textContent = `${r.verdict === 'pass' ? 'PASS' : 'FAIL'} — ${r.summary_line}`;
  v.dataset.verdict = r.verdict;
  v.dataset.ms = String(Math.round(ms));
  v.dataset.memory = String(memoryBytes ?? '');
  const facts = [
    ['Model', r.model?.display ?? ''],
    ['Dialect', r.dialect?.name ?? r.dialect ?? ''],
    ['Converted as', r.converted_dialect?.name ?? r.converted_dialect ?? ''],
    ['Tensors', String(r.summary?.tensors ?? '')],
    ['Checked in', `${(ms / 1000).toFixed(2)} s`],
  ];
  $('facts').replaceChildren(...facts.flatMap(([k, val]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = typeof val === 'string' ? val : JSON.stringify(val);
    return [dt, dd];
  }));
  const rows = (r.loaders ?? []).map((l) => {
    const tr = document.createElement('tr');
    tr.dataset.loader = l.loader;
    const app = document.createElement('td');
    app.innerHTML = '<strong></strong><div class="small"></div>';
    app.firstChild.textContent = l.display;
    app.lastChild.textContent = l.established;
    const advice = document.createElement('td');
    advice.className = 'small';
    advice.textContent = l.advice ?? '';
    tr.append(app, outcomeCell(l.input), outcomeCell(l.output), advice);
    return tr;
  });
  $('apps').tBodies[0].replaceChildren(...rows);
  $('report-text').textContent = text;
  const old = $('report-json').href;
  if (old) URL.revokeObjectURL(old);
  $('report-json').href = URL.createObjectURL(new Blob([JSON.stringify(r, null, 2)], { type: 'application/json' }));
}

async function check(file) {
  current = file;
  showError('');
  $('result').hidden = true;
  $('convert-result').textContent = '';
  $('convert-result').className = '';
  delete $('convert-result').dataset.verdict;
  $('file-name').textContent = file.name;
  $('file-size').textContent = `(${sizeText(file.size)})`;
  busy(true, 'starting…');
  window.lvPhases = [['start', 0, performance.now()]];
  try {
    const m = await request({ cmd: 'verify', file });
    showReport(m.report, m.text, m.ms, m.memoryBytes);
    window.lvPhases.push(['shown', 1, performance.now()]);
    $('phase').textContent = `done in ${(m.ms / 1000).toFixed(2)} s`;
  } catch (e) {
    showError(e.message);
    $('work').hidden = true;
  } finally {
    busy(false);
  }
}

let lastDownload = null;
async function convert(ev) {
  ev.preventDefault();
  if (!current) return;
  const app = $('app').value;
  showError('');
  $('convert-result').textContent = '';
  $('convert-result').className = '';
  delete $('convert-result').dataset.verdict;
  busy(true, `converting for ${app}…`);
  try {
    const m = await request({ cmd: 'convert', file: current, app, dropUnsupported: $('drop-unsupported').checked });
    $('phase').textContent = `done in ${(m.ms / 1000).toFixed(2)} s`;
    const out = $('convert-result');
    out.replaceChildren();
    out.dataset.verdict = m.report.verdict;
    const p = document.createElement('span');
    p.textContent = `${m.report.verdict === 'pass' ? 'Verified' : 'Not verified'}: ${m.report.summary_line}. `;
    out.append(p);
    if (m.blob) {
      if (lastDownload) URL.revokeObjectURL(lastDownload);
      lastDownload = URL.createObjectURL(m.blob);
      const a = document.createElement('a');
      a.id = 'download';
      a.href = lastDownload;
      a.download = m.outputName;
      a.textContent = `Download ${m.outputName} (${sizeText(m.blob.size)})`;
      out.append(a);
      // Chromium keeps a private window's blobs in memory only and cancels such downloads.
      if (m.blob.size >= 2 ** 31) out.append(' (over 2 GiB: in a private window the browser may cancel the download)');
      a.click();
    } else {
      out.append('No file was written: see the report.');
    }
    $('report-text').textContent = m.text;
  } catch (e) {
    // Shown where the conversion was asked for, with the CLI's message.
    const out = $('convert-result');
    out.dataset.verdict = 'error';
    out.className = 'error';
    out.textContent = e.message;
    $('phase').textContent = 'stopped';
  } finally {
    busy(false);
  }
}

function pick(files) {
  if (files && files.length) check(files[0]);
}

async function main() {
  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    pick(ev.dataTransfer.files);
  });
  $('file').addEventListener('change', (ev) => pick(ev.target.files));
  $('convert').addEventListener('submit', convert);
  try {
    const r = await startWorker();
    $('version').textContent = r.version;
    $('limit').textContent = `Files up to ${r.limit} can be checked here ` +
      '(a browser gives WebAssembly at most 4 GiB of memory); larger ones need the lora-verify command.';
    $('app').replaceChildren(...r.apps.map((a) => new Option(`${a.display} (${a.name})`, a.name)));
    const comfy = r.apps.find((a) => a.name === 'comfyui');
    if (comfy) $('app').value = comfy.name;
    document.body.dataset.ready = 'true';
  } catch (e) {
    showError(`lora-verify could not start in this browser: ${e.message}`);
  }
}

main();
