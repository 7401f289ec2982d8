// Copy the onnxruntime-web files the page loads into vendor/ (run by `npm ci` / `npm install` as
// the postinstall script, or by hand: `npm run vendor`). The page needs the WASM build only:
//   ort.wasm.min.mjs             the ES module the page imports (the JS API, WASM backend)
//   ort-wasm-simd-threaded.mjs   the Emscripten loader it imports from ort.env.wasm.wasmPaths
//   ort-wasm-simd-threaded.wasm  ONNX Runtime itself (~14 MB; not committed, hence this script)
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(here, 'node_modules', 'onnxruntime-web', 'dist');
const out = join(here, 'vendor');
const FILES = ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

const { version } = JSON.parse(readFileSync(join(here, 'node_modules', 'onnxruntime-web', 'package.json'), 'utf8'));
const pinned = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8')).dependencies['onnxruntime-web'];
if (version !== pinned) {
  console.error(`vendor: node_modules has onnxruntime-web ${version}, package.json pins ${pinned}; run npm ci`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });
for (const f of FILES) copyFileSync(join(dist, f), join(out, f));
writeFileSync(join(out, 'VERSION'), `onnxruntime-web ${version}\n`);
console.log(`vendor: copied onnxruntime-web ${version} (${FILES.join(', ')}) to ${out}`);
