#!/usr/bin/env node
// Score a clean/degraded pair with a pqeval waveform→embedding ONNX graph (onnxruntime-node).
//
//   node score.mjs [--output NAME] GRAPH.onnx CLEAN.wav DEGRADED.wav
//
// Prints one line per frame (time in s, cosine) and the mean last: `score: 0.12345678`, the
// number `pqeval score` gives (for VGGish with `--vggish-output embedding`). Notes and the
// weights' warning go to stderr. Exit codes as pqeval's: 0 scored, 3 no score (reason shown),
// 2 could not run (bad file, wrong rate, bad graph, bad option).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import process from 'node:process';

import { PqevalError, graphInfo, onnxMetadata, readWav, scorePair } from './pqeval.mjs';

const USAGE = 'usage: node score.mjs [--output NAME] GRAPH.onnx CLEAN.wav DEGRADED.wav';

function parseArgs(argv) {
  const args = [];
  let output = 'embedding';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      console.log(USAGE);
      console.log('  --output NAME   the graph output to compare (default: embedding; VGGish also has postprocessed)');
      process.exit(0);
    } else if (a === '--output') {
      if (i + 1 >= argv.length) throw new PqevalError(`--output needs a value\n${USAGE}`);
      output = argv[++i];
    } else if (a.startsWith('--output=')) {
      output = a.slice('--output='.length);
    } else if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    } else if (a.startsWith('-') && a !== '-') {
      throw new PqevalError(`unknown option ${a}\n${USAGE}`);
    } else {
      args.push(a);
    }
  }
  if (args.length !== 3) throw new PqevalError(USAGE);
  return { graph: args[0], clean: args[1], degraded: args[2], output };
}

function readBytes(path) {
  try {
    return readFileSync(path);
  } catch (e) {
    if (e.code === 'ENOENT') throw new PqevalError(`${path}: no such file`);
    if (e.code === 'EISDIR') throw new PqevalError(`${path}: is a directory, expected a file`);
    throw new PqevalError(`${path}: cannot read (${e.message})`);
  }
}

/** The graph's bytes and metadata; its sidecar (GRAPH.onnx.json), when present, must match it. */
function loadGraph(path) {
  const bytes = readBytes(path);
  const meta = onnxMetadata(bytes, path);
  const sidecarPath = `${path}.json`;
  let sidecar = null;
  if (existsSync(sidecarPath)) {
    try {
      sidecar = JSON.parse(readFileSync(sidecarPath, 'utf8'));
    } catch (e) {
      throw new PqevalError(`${sidecarPath}: not a readable sidecar (${e.message})`);
    }
    if (sidecar.size !== undefined && sidecar.size !== bytes.length) {
      throw new PqevalError(
        `${path}: ${bytes.length} bytes, its sidecar records ${sidecar.size} (modified or truncated)`,
      );
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (sidecar.sha256 && sidecar.sha256 !== digest) {
      throw new PqevalError(`${path}: sha256 ${digest} differs from its sidecar's ${sidecar.sha256} (modified?)`);
    }
  }
  // the file's own metadata decides; the sidecar's copy fills in a graph written without it
  return { bytes, meta: { ...(sidecar?.metadata ?? {}), ...meta }, sidecar };
}

function loadWav(path, rate) {
  const wav = readWav(readBytes(path), path);
  if (wav.sampleRate !== rate) {
    throw new PqevalError(
      `${path}: sample rate ${wav.sampleRate} Hz, the graph takes ${rate} Hz (resample it first, e.g. with pqeval's resampler or sox)`,
    );
  }
  return wav;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const graph = loadGraph(opts.graph);
  const info = graphInfo(graph.meta, opts.graph);
  const clean = loadWav(opts.clean, info.sampleRate);
  const degraded = loadWav(opts.degraded, info.sampleRate);

  const ort = await import('onnxruntime-node');
  let session;
  try {
    session = await ort.InferenceSession.create(graph.bytes, { logSeverityLevel: 3 });
  } catch (e) {
    throw new PqevalError(`${opts.graph}: ONNX Runtime cannot load it (${String(e.message).split('\n')[0]})`);
  }
  for (const name of [opts.output, 'timestamps']) {
    if (!session.outputNames.includes(name)) {
      throw new PqevalError(`${opts.graph}: no output named ${name} (it has ${session.outputNames.join(', ')})`);
    }
  }
  const input = session.inputNames[0];
  const run = async (waveform) => {
    const r = await session.run({ [input]: new ort.Tensor('float32', waveform, [waveform.length]) }, [
      opts.output,
      'timestamps',
    ]);
    return { embedding: r[opts.output].data, dims: r[opts.output].dims, timestamps: r.timestamps.data };
  };

  for (const [path, wav] of [
    [opts.clean, clean],
    [opts.degraded, degraded],
  ]) {
    for (const note of wav.notes) console.error(`${path}: ${note}`);
  }
  const result = await scorePair(clean.samples, degraded.samples, info, run);
  for (const note of result.notes) console.error(note);
  if (info.weights.note) console.error(info.weights.note);
  await session.release?.();

  console.log('time_s\tcosine');
  for (let i = 0; i < result.frames.length; i++) {
    console.log(`${result.times[i].toFixed(6)}\t${result.frames[i].toFixed(8)}`);
  }
  if (Number.isNaN(result.score)) {
    console.error(`${info.model || 'embedding'}: no score: ${result.error}`);
    console.log('score: nan');
    return 3;
  }
  console.log(`score: ${result.score.toFixed(8)}`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    if (e instanceof PqevalError) {
      console.error(`error: ${e.message}`);
      process.exitCode = e.code;
    } else {
      console.error(e);
      process.exitCode = 1;
    }
  },
);
