// Serves the built page (build-web/) on this machine only: node web/serve.mjs [DIR] [PORT].
// Prints the address once it listens. A plain static server: the page needs no special
// headers (the module runs single-threaded, without SharedArrayBuffer).
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.safetensors': 'application/octet-stream',
};

export function serve(dir, port = 0, host = '127.0.0.1') {
  const root = resolve(dir);
  const server = createServer((req, res) => {
    let path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path.endsWith('/')) path += 'index.html';
    const file = normalize(join(root, path));
    let st = null;
    try { st = file.startsWith(root + sep) ? statSync(file) : null; } catch { st = null; }
    const type = TYPES[extname(file)];
    if (!st || !st.isFile() || !type) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      return res.end('not found\n');
    }
    res.writeHead(200, { 'content-type': type, 'content-length': st.size, 'cache-control': 'no-cache' });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok(server));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? 'build-web';
  const server = await serve(dir, Number(process.argv[3] ?? 8765));
  const { port } = server.address();
  console.log(`lora-verify page: http://127.0.0.1:${port}/  (serving ${resolve(dir)}; Ctrl-C stops)`);
}
