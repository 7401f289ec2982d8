// The page's logic: load a pqeval graph (model/graph.onnx next to the page, or one the user picks),
// decode a clean and a degraded recording, score them with ONNX Runtime Web (WASM) and show the
// score, the per-frame cosine over time and the weights' warning. pqeval.mjs holds what the Node
// example shares (WAV reader, ONNX metadata, cosine, the pair's scoring).
import * as ort from './vendor/ort.wasm.min.mjs';
import { PqevalError, graphInfo, onnxMetadata, readWav, scorePair } from './pqeval.mjs';

const DEFAULT_GRAPH = 'model/graph.onnx';
const SVG = 'http://www.w3.org/2000/svg';

ort.env.wasm.wasmPaths = new URL('./vendor/', import.meta.url).href;
// Threads need SharedArrayBuffer, i.e. a cross-origin-isolated page (COOP/COEP headers), which a
// plain static server does not send: use one thread there instead of failing.
if (!globalThis.crossOriginIsolated) ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

const $ = (id) => document.getElementById(id);
const state = { graph: null, clean: null, degraded: null, seq: 0 };
/** For scripts and tests: the page's state and the last result (score, frames, times, notes). */
window.pqeval = { state: 'loading', result: null, error: null, graph: null };

function setState(s, message = '') {
  window.pqeval.state = s;
  document.body.dataset.state = s;
  $('status').textContent = message;
}

function showError(e) {
  const msg = e instanceof PqevalError ? e.message : `${e?.message ?? e}`;
  window.pqeval.error = msg;
  $('error').textContent = msg;
  setState('error', '');
}

function clearError() {
  window.pqeval.error = null;
  $('error').textContent = '';
}

// --- the graph ----------------------------------------------------------------------------------

async function sha256Hex(bytes) {
  if (!globalThis.crypto?.subtle) return null; // only in secure contexts (https, localhost)
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function useGraph(bytes, name, sidecar) {
  const own = onnxMetadata(bytes, name);
  if (sidecar) {
    if (sidecar.size !== undefined && sidecar.size !== bytes.length) {
      throw new PqevalError(
        `${name}: ${bytes.length} bytes, its sidecar records ${sidecar.size} (modified or truncated)`,
      );
    }
    const digest = sidecar.sha256 ? await sha256Hex(bytes) : null;
    if (digest && digest !== sidecar.sha256) {
      throw new PqevalError(`${name}: sha256 ${digest} differs from its sidecar's ${sidecar.sha256} (modified?)`);
    }
  }
  // the file's own metadata decides; the sidecar's copy fills in a graph written without it
  const info = graphInfo({ ...(sidecar?.metadata ?? {}), ...own }, name);
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], logSeverityLevel: 3 });
  } catch (e) {
    throw new PqevalError(`${name}: ONNX Runtime cannot load it (${String(e?.message ?? e).split('\n')[0]})`);
  }
  for (const out of ['embedding', 'timestamps']) {
    if (!session.outputNames.includes(out)) {
      throw new PqevalError(`${name}: no output named ${out} (it has ${session.outputNames.join(', ')})`);
    }
  }
  await state.graph?.session.release?.();
  state.graph = { session, info, name, sidecar: Boolean(sidecar) };
  window.pqeval.graph = {
    name,
    sampleRate: info.sampleRate,
    model: info.model,
    variant: info.variant,
    weights: info.weights.raw,
  };
  $('graph-name').textContent = name;
  $('graph-facts').textContent =
    `— ${info.model || 'model'}${info.variant ? ` (${info.variant})` : ''}, ${info.sampleRate} Hz, weights ${info.weights.raw || 'not recorded'}` +
    (sidecar ? ', sidecar verified' : ', no sidecar (metadata from the file)');
  $('rate-hint').textContent = `(WAV at ${info.sampleRate} Hz for pqeval's exact numbers)`;
}

async function loadDefaultGraph() {
  setState('loading', `Loading ${DEFAULT_GRAPH}…`);
  let res;
  try {
    res = await fetch(DEFAULT_GRAPH);
  } catch (e) {
    res = null;
  }
  if (!res || !res.ok) {
    $('graph-name').textContent = '(none)';
    setState(
      'no-graph',
      `No graph at ${DEFAULT_GRAPH} (${res ? `HTTP ${res.status}` : 'not reachable'}): choose one above.`,
    );
    return;
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  let sidecar = null;
  const side = await fetch(`${DEFAULT_GRAPH}.json`).catch(() => null);
  if (side?.ok) {
    try {
      sidecar = await side.json();
    } catch {
      throw new PqevalError(`${DEFAULT_GRAPH}.json: not a readable sidecar (not JSON)`);
    }
  }
  await useGraph(bytes, DEFAULT_GRAPH, sidecar);
}

// --- the recordings -----------------------------------------------------------------------------

/** Mono float64 samples at `rate`: WAV at that rate read exactly (as pqeval); anything else via WebAudio. */
async function decodeFile(file, rate) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const notes = [];
  try {
    const wav = readWav(bytes, file.name);
    if (wav.sampleRate === rate) return { samples: wav.samples, notes: wav.notes.map((n) => `${file.name}: ${n}`) };
    notes.push(
      `${file.name}: ${wav.sampleRate} Hz, resampled to ${rate} Hz by the browser (decodeAudioData), not pqeval's resampler: the score is close to pqeval's, not equal`,
    );
  } catch (e) {
    if (!(e instanceof PqevalError && e.reason === 'format')) throw e;
    notes.push(
      `${file.name}: decoded and resampled to ${rate} Hz by the browser (decodeAudioData), not pqeval's reader and resampler: the score is close to pqeval's, not equal`,
    );
  }
  let buffer;
  try {
    buffer = await new OfflineAudioContext(1, 1, rate).decodeAudioData(bytes.buffer.slice(0));
  } catch (e) {
    throw new PqevalError(`${file.name}: the browser cannot decode it (${e?.message ?? e})`);
  }
  const channels = Array.from({ length: buffer.numberOfChannels }, (_, c) => buffer.getChannelData(c));
  const samples = new Float64Array(buffer.length);
  for (let i = 0; i < samples.length; i++) {
    let s = 0;
    for (const ch of channels) s += ch[i];
    samples[i] = s / channels.length;
  }
  if (channels.length > 1) notes.push(`${file.name}: ${channels.length} channels mixed to mono`);
  return { samples, notes };
}

/** One session.run at a time (a new choice while a pair is being scored waits for the running one). */
let running = Promise.resolve();
function exclusive(fn) {
  const p = running.then(fn);
  running = p.catch(() => {});
  return p;
}

async function scoreIfReady() {
  if (!state.graph || !state.clean || !state.degraded) return;
  const seq = ++state.seq;
  clearError();
  clearResult();
  setState('scoring', 'Decoding and scoring…');
  const { session, info } = state.graph;
  const input = session.inputNames[0];
  const run = (waveform) =>
    exclusive(async () => {
      const feeds = { [input]: new ort.Tensor('float32', waveform, [waveform.length]) };
      const r = await session.run(feeds, ['embedding', 'timestamps']);
      return { embedding: r.embedding.data, dims: r.embedding.dims, timestamps: r.timestamps.data };
    });
  try {
    const started = performance.now();
    const clean = await decodeFile(state.clean, info.sampleRate);
    const degraded = await decodeFile(state.degraded, info.sampleRate);
    const result = await scorePair(clean.samples, degraded.samples, info, run);
    if (seq !== state.seq) return; // a newer choice is being scored
    result.notes = [...clean.notes, ...degraded.notes, ...result.notes];
    const seconds = Math.min(clean.samples.length, degraded.samples.length) / info.sampleRate;
    showResult(result, info, seconds);
    const ms = Math.round(performance.now() - started);
    if (Number.isNaN(result.score)) {
      showError(new PqevalError(`no score: ${result.error}`, 3));
    } else {
      setState('done', `Scored ${result.frames.length} frames in ${ms} ms.`);
    }
  } catch (e) {
    if (seq === state.seq) showError(e);
  }
}

// --- the result ---------------------------------------------------------------------------------

function clearResult() {
  window.pqeval.result = null;
  $('score').textContent = '';
  $('model-line').textContent = '';
  $('warning').hidden = true;
  $('notes').replaceChildren();
  $('plot').replaceChildren();
  $('frames').replaceChildren();
}

function showResult(result, info, seconds) {
  window.pqeval.result = {
    score: result.score,
    frames: Array.from(result.frames),
    times: Array.from(result.times),
    notes: result.notes,
    weights: info.weights.raw,
    warning: info.weights.note,
  };
  $('score').textContent = Number.isNaN(result.score) ? 'nan' : result.score.toFixed(8);
  $('model-line').textContent = `${info.model || 'model'} · ${result.frames.length} frames · ${seconds.toFixed(2)} s`;
  $('warning').textContent = info.weights.note;
  $('warning').hidden = !info.weights.note;
  $('notes').replaceChildren(
    ...result.notes.map((n) => {
      const li = document.createElement('li');
      li.textContent = n;
      return li;
    }),
  );
  $('frames').replaceChildren(
    ...Array.from(result.frames, (c, i) => {
      const tr = document.createElement('tr');
      tr.innerHTML = `<td>${result.times[i].toFixed(3)}</td><td>${c.toFixed(8)}</td>`;
      return tr;
    }),
  );
  drawPlot(result, seconds);
}

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function niceStep(span, maxTicks) {
  for (const s of [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]) {
    if (span / s <= maxTicks) return s;
  }
  return span / maxTicks;
}

/** The per-frame cosine against time (s), with the mean as a dashed line. */
function drawPlot(result, seconds) {
  const svg = $('plot');
  const [W, H] = [820, 260];
  const m = { l: 56, r: 18, t: 14, b: 38 };
  const frames = Array.from(result.frames);
  if (!frames.length) return;
  const lowest = Math.min(...frames.filter(Number.isFinite), 0.95);
  const y0 = Math.max(-1, Math.floor(lowest * 20 - 1e-9) / 20);
  const y1 = 1;
  const x1 = Math.max(seconds, ...result.times);
  const X = (t) => m.l + (t / x1) * (W - m.l - m.r);
  const Y = (v) => m.t + ((y1 - v) / (y1 - y0)) * (H - m.t - m.b);
  const g = [];
  const ys = niceStep(y1 - y0, 6);
  for (let v = y1; v >= y0 - 1e-9; v -= ys) {
    g.push(el('line', { class: 'grid', x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
    g.push(el('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, v.toFixed(ys < 0.1 ? 2 : 1)));
  }
  const xs = niceStep(x1, 10);
  for (let t = 0; t <= x1 + 1e-9; t += xs) {
    g.push(el('line', { class: 'axis', x1: X(t), x2: X(t), y1: H - m.b, y2: H - m.b + 4 }));
    g.push(el('text', { x: X(t), y: H - m.b + 16, 'text-anchor': 'middle' }, `${+t.toFixed(2)}`));
  }
  g.push(el('line', { class: 'axis', x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }));
  g.push(el('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
  g.push(el('text', { x: (m.l + W - m.r) / 2, y: H - 4, 'text-anchor': 'middle' }, 'time (s)'));
  g.push(
    el(
      'text',
      { x: 14, y: (m.t + H - m.b) / 2, transform: `rotate(-90 14 ${(m.t + H - m.b) / 2})`, 'text-anchor': 'middle' },
      'cosine',
    ),
  );
  if (Number.isFinite(result.score)) {
    g.push(el('line', { class: 'mean', x1: m.l, x2: W - m.r, y1: Y(result.score), y2: Y(result.score) }));
    g.push(
      el('text', { x: W - m.r - 4, y: Y(result.score) - 5, 'text-anchor': 'end' }, `mean ${result.score.toFixed(4)}`),
    );
  }
  const pts = frames.map((c, i) => `${X(result.times[i]).toFixed(1)},${Y(c).toFixed(1)}`);
  g.push(el('polyline', { class: 'line', points: pts.join(' ') }));
  if (frames.length <= 200) {
    for (const p of pts) {
      const [cx, cy] = p.split(',');
      g.push(el('circle', { class: 'dot', cx, cy, r: 3 }));
    }
  }
  svg.replaceChildren(...g);
}

// --- wiring -------------------------------------------------------------------------------------

function pickFile(which, file) {
  state[which] = file ?? null;
  $(`${which}-name`).textContent = file
    ? `${file.name} (${(file.size / 1024).toFixed(0)} kB)`
    : 'drop a file here or choose one';
  scoreIfReady();
}

for (const which of ['clean', 'degraded']) {
  const input = $(which);
  const drop = $(`${which}-drop`);
  input.addEventListener('change', () => pickFile(which, input.files[0]));
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) pickFile(which, e.dataTransfer.files[0]);
  });
}

$('graph-file').addEventListener('change', async () => {
  const file = $('graph-file').files[0];
  if (!file) return;
  clearError();
  clearResult();
  setState('loading', `Loading ${file.name}…`);
  try {
    await useGraph(new Uint8Array(await file.arrayBuffer()), file.name, null);
    setState('ready', 'Graph loaded; choose the recordings.');
    await scoreIfReady();
  } catch (e) {
    showError(e);
  }
});

try {
  await loadDefaultGraph();
  if (state.graph) {
    setState('ready', 'Graph loaded; choose the recordings.');
    await scoreIfReady();
  }
} catch (e) {
  showError(e);
}
