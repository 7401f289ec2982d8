// pqeval.mjs — what scoring a pair with a pqeval waveform→embedding ONNX graph needs, in plain
// JavaScript without Node or browser APIs (Node's score.mjs and the web page use the same file:
// examples/node/pqeval.mjs and examples/web/pqeval.mjs are identical copies, checked by the tests).
//
// * readWav: RIFF/WAVE PCM 8/16/24/32-bit and IEEE float 32/64-bit, any channel count, to mono
//   float64, read exactly as pqeval reads it (libsndfile's scaling: int / 2^(bits-1), 8-bit
//   unsigned (u - 128) / 128; channels averaged in float64).
// * onnxMetadata: the model's metadata_props (the pqeval.* keys) read from the ONNX file itself.
// * graphInfo / provenance: the pqeval.graph facts (sample rate, min_samples, ...) and the weights'
//   provenance with pqeval's note for it.
// * cosinePerFrame / scorePair: pqeval.similarity.cosine_per_frame and the mean, and the whole
//   pair: trim both signals to the shorter length, embed each, compare the common frames.

/** pqeval's notes beside scores from weights that are not the published ones (pqeval.provenance). */
export const NOTES = {
  pretrained: '',
  seeded: 'weights: seeded — not a perceptual measurement',
  custom: 'weights: custom, not the published model — not a validated perceptual measurement',
  unknown: 'weights: provenance not recorded — not verified as a perceptual measurement',
};

/**
 * An error meant for the user: one line naming the file. `code` is the exit code (2: could not
 * run); `reason` is 'format' when the bytes are not a WAV this reader decodes (another decoder
 * may still read them), '' otherwise.
 */
export class PqevalError extends Error {
  constructor(message, code = 2, reason = '') {
    super(message);
    this.name = 'PqevalError';
    this.code = code;
    this.reason = reason;
  }
}

const PCM = 1;
const FLOAT = 3;
const EXTENSIBLE = 0xfffe;

/**
 * Read a WAV file's bytes to { samples: Float64Array (mono), sampleRate, channels, notes }.
 * Throws PqevalError (naming `name`) for anything pqeval would refuse or this reader cannot read.
 */
export function readWav(bytes, name = '<wav>') {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const tag = (at) => String.fromCharCode(u8[at], u8[at + 1], u8[at + 2], u8[at + 3]);
  if (u8.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    throw new PqevalError(
      `${name}: not a RIFF/WAVE file (this example reads WAV only; convert it, or use pqeval)`,
      2,
      'format',
    );
  }
  let fmt = null;
  let data = null;
  const notes = [];
  for (let at = 12; at + 8 <= u8.length; ) {
    const id = tag(at);
    const size = dv.getUint32(at + 4, true);
    const body = at + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > u8.length) throw new PqevalError(`${name}: a WAV fmt chunk of ${size} bytes`);
      let format = dv.getUint16(body, true);
      const bits = dv.getUint16(body + 14, true);
      if (format === EXTENSIBLE && size >= 40) format = dv.getUint16(body + 24, true); // the subformat GUID's first two bytes
      fmt = {
        format,
        channels: dv.getUint16(body + 2, true),
        sampleRate: dv.getUint32(body + 4, true),
        blockAlign: dv.getUint16(body + 12, true),
        bits,
      };
    } else if (id === 'data') {
      const present = u8.length - body;
      if (size === 0 || size === 0xffffffff) {
        // a streamed (or crashed) writer: pqeval reads what is there, and says so
        data = { offset: body, size: present };
        notes.push(`WAV header declares no data size; read the ${present} bytes present`);
      } else if (size > present) {
        throw new PqevalError(`${name}: truncated WAV file (header declares ${size} data bytes, ${present} present)`);
      } else {
        data = { offset: body, size };
      }
      break;
    }
    at = body + size + (size & 1);
  }
  if (!fmt) throw new PqevalError(`${name}: a WAV file without a fmt chunk`);
  if (!data) throw new PqevalError(`${name}: a WAV file without a data chunk`);
  const { format, channels, sampleRate, bits } = fmt;
  const ok = (format === PCM && [8, 16, 24, 32].includes(bits)) || (format === FLOAT && (bits === 32 || bits === 64));
  if (!ok) {
    throw new PqevalError(
      `${name}: unsupported WAV encoding (format ${format}, ${bits} bits; this reader takes PCM 8/16/24/32-bit and float 32/64-bit)`,
      2,
      'format',
    );
  }
  if (channels < 1) throw new PqevalError(`${name}: a WAV file with ${channels} channels`);
  if (sampleRate <= 0) throw new PqevalError(`${name}: sample rate must be positive, got ${sampleRate}`);
  const width = bits / 8;
  const frame = width * channels;
  const n = Math.floor(data.size / frame);
  if (n === 0) throw new PqevalError(`${name}: the file holds no audio samples (zero length)`);
  const sample = sampleReader(dv, format, bits);
  const out = new Float64Array(n);
  let peak = 0;
  let bad = 0;
  let firstBad = -1;
  for (let i = 0, p = data.offset; i < n; i++) {
    let s = 0;
    for (let c = 0; c < channels; c++, p += width) {
      const v = sample(p);
      if (!Number.isFinite(v)) {
        bad++;
        if (firstBad < 0) firstBad = i;
      } else if (Math.abs(v) > peak) peak = Math.abs(v);
      s += v;
    }
    out[i] = channels === 1 ? s : s / channels; // numpy's mean over a row: sum in order, then divide
  }
  if (bad) {
    throw new PqevalError(
      `${name}: ${bad} non-finite (NaN/inf) samples, the first at ${(firstBad / sampleRate).toFixed(3)} s`,
    );
  }
  if (peak > 1)
    notes.push(`peak ${Math.round(peak * 1e6) / 1e6} is over full scale (1.0); scores are computed as given`);
  if (channels > 1) notes.push(`${channels} channels mixed to mono`);
  return { samples: out, sampleRate, channels, notes };
}

function sampleReader(dv, format, bits) {
  if (format === FLOAT) return bits === 32 ? (p) => dv.getFloat32(p, true) : (p) => dv.getFloat64(p, true);
  switch (bits) {
    case 8:
      return (p) => (dv.getUint8(p) - 128) / 128;
    case 16:
      return (p) => dv.getInt16(p, true) / 32768;
    case 24:
      return (p) => ((dv.getInt8(p + 2) << 16) | (dv.getUint8(p + 1) << 8) | dv.getUint8(p)) / 8388608;
    default:
      return (p) => dv.getInt32(p, true) / 2147483648;
  }
}

// --- the ONNX file's metadata, without a protobuf library -------------------------------------

function varint(u8, at) {
  let value = 0;
  let scale = 1;
  for (;;) {
    if (at >= u8.length) throw new Error('truncated varint');
    const b = u8[at++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return [value, at];
    scale *= 128;
  }
}

/** The top-level protobuf fields of `u8[lo:hi)`: [{ field, wire, value | lo, hi }]. */
function fields(u8, lo, hi) {
  const out = [];
  let at = lo;
  while (at < hi) {
    let key;
    [key, at] = varint(u8, at);
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) {
      let v;
      [v, at] = varint(u8, at);
      out.push({ field, wire, value: v });
    } else if (wire === 2) {
      let len;
      [len, at] = varint(u8, at);
      if (at + len > hi) throw new Error('truncated field');
      out.push({ field, wire, lo: at, hi: at + len });
      at += len;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw new Error(`unexpected protobuf wire type ${wire}`);
  }
  return out;
}

/** An ONNX model's metadata_props (ModelProto field 14) as { key: value }; throws if not ONNX. */
export function onnxMetadata(bytes, name = '<graph>') {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const text = new TextDecoder();
  const meta = {};
  try {
    for (const f of fields(u8, 0, u8.length)) {
      if (f.field !== 14 || f.wire !== 2) continue;
      let key = '';
      let value = '';
      for (const g of fields(u8, f.lo, f.hi)) {
        if (g.wire !== 2) continue;
        if (g.field === 1) key = text.decode(u8.subarray(g.lo, g.hi));
        if (g.field === 2) value = text.decode(u8.subarray(g.lo, g.hi));
      }
      meta[key] = value;
    }
  } catch (e) {
    throw new PqevalError(`${name}: not an ONNX model file (${e.message})`);
  }
  return meta;
}

/** The weights' provenance as pqeval parses it: { kind, detail, raw, note }. */
export function provenance(weights) {
  const raw = (weights ?? '').trim();
  const i = raw.indexOf(':');
  const kind = i < 0 ? '' : raw.slice(0, i);
  if (!['pretrained', 'seeded', 'custom'].includes(kind))
    return { kind: 'unknown', detail: raw, raw, note: NOTES.unknown };
  return { kind, detail: raw.slice(i + 1).trim(), raw, note: NOTES[kind] };
}

/**
 * What the graph says about itself: { sampleRate, minSamples, hopSeconds, outputs, sourceModel,
 * model, variant, weights: provenance(...) } from its metadata (the sidecar's `metadata`, or the ONNX
 * file's own). Throws PqevalError when the sample rate is not recorded.
 */
export function graphInfo(meta, name = '<graph>') {
  let g = {};
  if (meta['pqeval.graph']) {
    try {
      g = JSON.parse(meta['pqeval.graph']);
    } catch {
      throw new PqevalError(`${name}: unreadable pqeval.graph metadata (not JSON)`);
    }
  }
  const sampleRate = Number(g.sample_rate);
  if (!(sampleRate > 0)) {
    throw new PqevalError(`${name}: no sample rate recorded (pqeval.graph metadata); not a pqeval graph?`);
  }
  return {
    sampleRate,
    minSamples: Number(g.min_samples) || 1,
    hopSeconds: g.hop_seconds,
    outputs: g.outputs,
    sourceModel: g.source_model,
    model: meta['pqeval.model_id'] ?? '',
    variant: meta['pqeval.variant'] ?? '',
    weights: provenance(meta['pqeval.weights']),
  };
}

/** pqeval's "lengths differ" note (seconds to 3 decimals). */
export function lengthNote(nClean, nDegraded, sr) {
  const n = Math.min(nClean, nDegraded);
  return `lengths differ: clean ${(nClean / sr).toFixed(3)} s, degraded ${(nDegraded / sr).toFixed(3)} s; both trimmed to ${(n / sr).toFixed(3)} s`;
}

// --- similarity ---------------------------------------------------------------------------------

/**
 * pqeval.similarity.cosine_per_frame for two [n, d] row-major Float32Arrays (float64 arithmetic):
 * dot / (‖a‖‖b‖); two zero rows count as 1, one zero row as 0; rows equal element by element
 * (nonzero, finite) exactly 1; clipped to [-1, 1]. Returns a Float64Array of n.
 */
export function cosinePerFrame(a, b, n, d) {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let aa = 0;
    let bb = 0;
    let equal = true;
    for (let k = i * d, end = k + d; k < end; k++) {
      const x = a[k];
      const y = b[k];
      dot += x * y;
      aa += x * x;
      bb += y * y;
      if (x !== y) equal = false;
    }
    const na = Math.sqrt(aa);
    const nb = Math.sqrt(bb);
    let c;
    if (na === 0 && nb === 0) c = 1;
    else if (na === 0 || nb === 0) c = 0;
    else c = dot / (na * nb);
    if (equal && na > 0 && Number.isFinite(na)) c = 1;
    out[i] = Math.min(1, Math.max(-1, c)); // np.clip keeps NaN as NaN; so does this
  }
  return out;
}

/**
 * Score a pair as `pqeval score` does for an embedding model (VGGish with --vggish-output
 * embedding): both signals (mono, at the graph's rate) trimmed to the shorter length, each run
 * through the graph, per-frame cosine over the frames both have, and their mean.
 *
 * `run(Float32Array waveform)` → Promise<{ embedding: Float32Array, dims: [frames, d],
 * timestamps: Float32Array }>. Returns { score, frames: Float64Array, times: Float64Array,
 * notes: string[] }; score is NaN (with the reason in `error`) when no frame could be compared.
 */
export async function scorePair(clean, degraded, info, run) {
  const notes = [];
  let n = clean.length;
  if (clean.length !== degraded.length) {
    n = Math.min(clean.length, degraded.length);
    notes.push(lengthNote(clean.length, degraded.length, info.sampleRate));
  }
  if (n < info.minSamples) {
    const need = (info.minSamples / info.sampleRate).toFixed(3);
    return {
      score: NaN,
      frames: new Float64Array(0),
      times: new Float64Array(0),
      notes,
      error: `the clips are shorter than one window (${(n / info.sampleRate).toFixed(3)} s < ${need} s)`,
    };
  }
  const a = await run(Float32Array.from(clean.subarray(0, n)));
  const b = await run(Float32Array.from(degraded.subarray(0, n)));
  const frames = Math.min(a.dims[0], b.dims[0]);
  const d = a.dims[1];
  if (b.dims[1] !== d) throw new PqevalError(`embedding sizes differ (${d} and ${b.dims[1]})`);
  if (a.dims[0] !== b.dims[0]) notes.push(`frame counts differ: ${a.dims[0]} and ${b.dims[0]}`);
  if (frames === 0) {
    return { score: NaN, frames: new Float64Array(0), times: new Float64Array(0), notes, error: 'no embedding frames' };
  }
  const cos = cosinePerFrame(a.embedding, b.embedding, frames, d);
  let sum = 0;
  for (const c of cos) sum += c;
  const times = Float64Array.from(a.timestamps.subarray(0, frames));
  return { score: sum / frames, frames: cos, times, notes };
}
