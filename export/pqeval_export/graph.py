"""One ONNX file from a mono waveform to embeddings per frame: pqeval's frontend in ONNX ops around
an already exported model, for runtimes without Python (C/C++, Java, C#, JS, onnxruntime-web).

``pqeval export graph vggish|openl3-<variant> --out FILE.onnx`` reads the installed model
(:func:`pqeval.session.find_model`, checked against its sidecar), writes the frontend of
``pqeval.vggish`` / ``pqeval.openl3`` as ONNX nodes in front of it and writes one self-contained
file (weights inside, no ``.data``) with the model's metadata and sidecar. Only ``onnx`` (and
onnxruntime for the check at the end) are needed: no torch, no TensorFlow.

The contract (docs/graph.md):

* input ``waveform``: float32 [samples], mono, at the model's rate (VGGish 16 kHz, OpenL3 48 kHz);
* output ``embedding``: float32 [frames, D] (VGGish: the 128-d embedding after the final ReLU,
  what ``pqeval score --vggish-output embedding`` scores; OpenL3: the model's embedding);
* output ``timestamps``: float32 [frames], frame i starts at i * 0.96 s (VGGish) or i * hop s
  (OpenL3): pqeval's float64 times rounded to float32, exactly (made with int64 and float32 ops);
* VGGish only, output ``postprocessed``: float32 [frames, 128], torchvggish's 8-bit PCA values 0..255;
* metadata: the model's (``pqeval.weights`` ...) plus ``pqeval.graph`` (JSON: input, sample_rate,
  min_samples, hop_seconds, outputs, source_model, source_sha256) and ``pqeval.graph_verify``.

How the frontend is written:

* framing is a Gather with indices made in the graph from the input's length (Shape, integer
  arithmetic, Range); OpenL3's centre padding (24000 zeros in front), end padding (to a whole
  number of hops, at least one window: ``pqeval.openl3.num_windows``) and kapre's ``pad_end``
  inside each window are Pad nodes;
* the DFT is a MatMul with precomputed float32 [window * cos | window * sin] matrices (no
  ``STFT``/``DFT`` op: every runtime has MatMul), magnitude ``Sqrt(re² + im²)``, the mel
  filterbank a MatMul, then ``Log`` (VGGish ``log(mel + 0.01)``; OpenL3 ``10 log10(max(S, 1e-10))``,
  minus the window's ``ReduceMax``, floored at -80 dB);
* the model runs inside a ``Loop`` over batches of frames (:data:`BATCH`: VGGish 16 examples,
  OpenL3 one window), each batch's frontend computed in the loop body, the outputs concatenated
  (loop-carried): memory stays that of one batch however long the clip. The model's nodes are
  inlined with the prefix ``model/``, its weights are initializers of the main graph;
* no float64 anywhere (some onnxruntime-web builds leave out float64 kernels): the timestamps are
  made exactly with int64 arithmetic (:func:`_timestamps`).

Resampling is not in the graph: resample to the model's rate before (pqeval uses resampy's
``kaiser_best``, :mod:`pqeval.resample`; OpenL3 is sensitive to the resampler, docs/graph.md).
:func:`build_resampler` writes pqeval's resampler as a separate small graph for the rate pairs
where it is a plain polyphase filter (``pqeval export graph ... --resample-from RATE``).
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pqeval.errors import ModelError, UsageError
from pqeval.registry import DEFAULT_HOP, FAMILIES, base_spec

from .common import write_onnx

if TYPE_CHECKING:
    import onnx

INPUT = "waveform"
EMBEDDING = "embedding"
TIMESTAMPS = "timestamps"
POSTPROCESSED = "postprocessed"
GRAPH_KEY = "pqeval.graph"  # metadata: the contract above, as JSON
VERIFY_KEY = "pqeval.graph_verify"  # metadata: the check at export (graph vs pqeval's numpy path)
MIN_OPSET = 17
MODEL_PREFIX = "model/"
VERIFY_COSINE_MIN = 0.99999
VERIFY_SECONDS = {"vggish": 2.5, "openl3": 1.6}  # synthetic test signal: 2 VGGish examples / 4 OpenL3 windows


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise UsageError("building a graph needs the onnx package: pip install onnx") from None
    return onnx


# --- a small node writer --------------------------------------------------------------------


class _Nodes:
    """Appends nodes to ``nodes`` and constants to ``inits`` (the main graph's initializers, which
    a Loop body may read too), with unique names under ``prefix``; ``opset`` of the default domain."""

    def __init__(self, nodes: list, inits: list, prefix: str, counter: list[int], opset: int) -> None:
        self.nodes, self.inits, self.prefix, self._count, self.opset = nodes, inits, prefix, counter, opset

    def _name(self, hint: str) -> str:
        self._count[0] += 1
        return f"{self.prefix}{hint}_{self._count[0]}"

    def const(self, value: Any, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def i64(self, *values: int) -> str:
        """An int64 constant [len(values)]."""
        return self.const(np.array(values, np.int64), "i64")

    def scalar(self, value: int) -> str:
        """An int64 scalar constant (Range and Loop take scalars)."""
        return self.const(np.int64(value), "i64")

    def f32(self, value: float) -> str:
        return self.const(np.array(value, np.float32), "f32")

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        name = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=f"{name}:{op_type}", **attrs))
        return name

    def reduce_max(self, x: str, axes: list[int]) -> str:
        """ReduceMax over ``axes``, keepdims (axes an attribute before opset 18, an input from 18)."""
        if self.opset >= 18:
            return self.op("ReduceMax", x, self.i64(*axes), keepdims=1)
        return self.op("ReduceMax", x, axes=axes, keepdims=1)


# --- the frontends as ONNX nodes -----------------------------------------------------------------


def dft_matrix(window: np.ndarray, n_fft: int) -> np.ndarray:
    """[len(window), 2 * (n_fft//2 + 1)] float32: columns window*cos then window*sin of the rfft bins
    (frames shorter than n_fft are zero-padded, as ``np.fft.rfft(frame, n_fft)``)."""
    n = np.arange(len(window))[:, None]
    k = np.arange(n_fft // 2 + 1)[None, :]
    angle = 2.0 * np.pi * ((n * k) % n_fft) / n_fft  # exact integer reduction before the angle
    w = np.asarray(window, np.float64)[:, None]
    return np.concatenate([w * np.cos(angle), w * np.sin(angle)], axis=1).astype(np.float32)


def _magnitude(b: _Nodes, frames: str, window: np.ndarray, n_fft: int) -> str:
    """|rfft(frames * window, n_fft)| of frames [..., len(window)] -> [..., n_fft//2 + 1]."""
    nb = n_fft // 2 + 1
    spec = b.op("MatMul", frames, b.const(dft_matrix(window, n_fft), "dft"))
    re = b.op("Slice", spec, b.i64(0), b.i64(nb), b.i64(-1))
    im = b.op("Slice", spec, b.i64(nb), b.i64(2 * nb), b.i64(-1))
    return b.op("Sqrt", b.op("Add", b.op("Mul", re, re), b.op("Mul", im, im)))


def _offsets(b: _Nodes, n_frames: int, hop: int, length: int) -> str:
    """int64 [n_frames, length]: f * hop + k, made at run time from Range (nothing stored)."""
    zero, one = b.scalar(0), b.scalar(1)
    starts = b.op("Mul", b.op("Range", zero, b.scalar(n_frames), one), b.scalar(hop))
    return b.op("Add", b.op("Unsqueeze", starts, b.i64(1)), b.op("Range", zero, b.scalar(length), one))


def _exact_hop(hop_seconds: float) -> tuple[int, int, int]:
    """(p, q, s) for :func:`_timestamps`: hop_seconds is the double nearest p/q (q <= 10**6), and
    floor(hop * 2**s) >= 2**25. UsageError for a hop that is no such fraction."""
    frac = Fraction(hop_seconds).limit_denominator(10**6)
    if float(frac) != hop_seconds or frac <= 0:
        raise UsageError(f"the hop must be a decimal number of seconds with at most 6 decimals, got {hop_seconds!r}")
    s = 0
    while frac * 2**s < 2**25:
        s += 1
    p, q = frac.numerator, frac.denominator
    if (2**63 - 1) // (p * 2**s) * hop_seconds < 1e5:  # int64 room for 27 h of frames (> 2**32 samples)
        raise UsageError(f"the hop {hop_seconds!r} s has too long an exact fraction ({p}/{q}); round it")
    return p, q, s


def _timestamps(b: _Nodes, count: str, hop_seconds: float) -> str:
    """float32 [count]: ``float32(i * hop_seconds)`` equal to pqeval's ``np.arange(n) * hop`` (float64)
    rounded to float32, with int64 and float32 ops only (some onnxruntime-web builds have no float64).

    With hop = p/q: K = 2 * floor(i p 2**s / q) + (1 if a remainder is left), at least 2**26 for
    i >= 1, so that its one float32 rounding (Cast) is the correct rounding of i p / q (the last
    bit is the sticky bit); times 2**-(s + 1) is exact. The float64 product rounds to the same float32
    except at exact float32 midpoints, which need 25-bit values (beyond 2**24 s) here.
    """
    from onnx import TensorProto

    p, q, s = _exact_hop(hop_seconds)
    idx = b.op("Range", b.scalar(0), count, b.scalar(1))
    scaled = b.op("Mul", idx, b.scalar(p * 2**s))
    whole = b.op("Div", scaled, b.scalar(q))  # non-negative: Div is floor
    rest = b.op("Sub", scaled, b.op("Mul", whole, b.scalar(q)))
    sticky = b.op("Cast", b.op("Greater", rest, b.scalar(0)), to=TensorProto.INT64)
    k = b.op("Add", b.op("Mul", whole, b.scalar(2)), sticky)
    t = b.op("Mul", b.op("Cast", k, to=TensorProto.FLOAT), b.f32(2.0 ** -(s + 1)))
    return b.op("Identity", t, out=TIMESTAMPS)


# --- the two families ----------------------------------------------------------------------------


class _Spec:
    """One family: rate, shortest input, frame hop, the model's I/O, frames per loop iteration, and
    the frontend as nodes (before the loop, and for the frames of one iteration)."""

    family: str
    sample_rate: int
    min_samples: int
    hop_seconds: float
    batch: int
    model_input: str
    model_outputs: dict[str, str]  # graph output -> model output

    def count(self, b: _Nodes) -> str:
        """Nodes before the loop; returns the number of frames (an int64 scalar)."""
        raise NotImplementedError

    def features(self, b: _Nodes, ids: str) -> str:
        """Nodes of one iteration: frames ``ids`` (int64 [k]) -> the model's input [k, ...]."""
        raise NotImplementedError


class _VGGish(_Spec):
    """pqeval.vggish.VGGishFrontend: frames of 400 samples every 160, |rfft 512|, 64 HTK mel bands,
    log(mel + 0.01), examples of 96 frames (0.96 s) without overlap."""

    family = "vggish"
    model_input = "examples"
    model_outputs = {EMBEDDING: "embedding", POSTPROCESSED: "postprocessed"}

    def __init__(self, batch: int) -> None:
        from pqeval.vggish import EXAMPLE_SECONDS, LOG_OFFSET, SAMPLE_RATE, VGGishFrontend

        fe = VGGishFrontend()
        self.fe, self.log_offset, self.batch = fe, LOG_OFFSET, batch
        self.sample_rate, self.min_samples, self.hop_seconds = SAMPLE_RATE, fe.min_samples, EXAMPLE_SECONDS
        self.example_hop = fe.example_frames * fe.hop_length  # 15360 samples between examples

    def count(self, b: _Nodes) -> str:
        fe = self.fe
        n = b.op("Shape", INPUT)  # [1]
        # frames = (n - 400) // 160 + 1 (Div truncates towards 0: clamped at 0), examples = frames // 96
        frames = b.op("Add", b.op("Div", b.op("Sub", n, b.i64(fe.window_length)), b.i64(fe.hop_length)), b.i64(1))
        count = b.op("Div", b.op("Max", frames, b.i64(0)), b.i64(fe.example_frames))
        self.offsets = b.op(
            "Unsqueeze", _offsets(b, fe.example_frames, fe.hop_length, fe.window_length), b.i64(0)
        )  # [1, 96, 400]
        return b.op("Squeeze", count, b.i64(0))

    def features(self, b: _Nodes, ids: str) -> str:
        fe = self.fe
        starts = b.op("Unsqueeze", b.op("Mul", ids, b.scalar(self.example_hop)), b.i64(1, 2))  # [k, 1, 1]
        frames = b.op("Gather", INPUT, b.op("Add", starts, self.offsets), axis=0)  # [k, 96, 400]
        mag = _magnitude(b, frames, fe.window, fe.fft_length)  # [k, 96, 257]
        mel = b.op("MatMul", mag, b.const(fe.mel_matrix.astype(np.float32), "mel"))  # [k, 96, 64]
        log_mel = b.op("Log", b.op("Add", mel, b.f32(self.log_offset)))
        return b.op("Unsqueeze", log_mel, b.i64(1))  # [k, 1, 96, 64]


class _OpenL3(_Spec):
    """openl3 0.4.2's framing (centre padding, end padding, ``int(hop * 48000)``) and
    pqeval.openl3.OpenL3Frontend (kapre's STFT, Slaney mel, dB below the window's maximum)."""

    family = "openl3"
    model_outputs = {EMBEDDING: "embedding"}

    def __init__(self, input_repr: str, hop: float, batch: int) -> None:
        from pqeval import openl3 as ol3

        self.ol3, self.input_repr, self.batch = ol3, input_repr, batch
        self.fe = ol3.OpenL3Frontend(input_repr)
        self.model_input = ol3.INPUT_NAME
        self.sample_rate, self.min_samples, self.hop_seconds = ol3.SAMPLE_RATE, 1, float(hop)
        self.hop_len = ol3.hop_samples(hop)

    def count(self, b: _Nodes) -> str:
        L, h, half = self.ol3.FRAME_LENGTH, self.hop_len, self.ol3.FRAME_LENGTH // 2
        n = b.op("Shape", INPUT)  # [1]
        # windows = 1 + max(0, ceil((n + 24000 - 48000) / hop)): openl3's end padding (num_windows)
        over = b.op("Add", b.op("Sub", n, b.i64(L - half)), b.i64(h - 1))
        count = b.op("Add", b.op("Max", b.op("Div", over, b.i64(h)), b.i64(0)), b.i64(1))  # [1]
        # zeros: 24000 in front (center=True), then up to the end of the last window
        end = b.op("Add", b.op("Mul", b.op("Sub", count, b.i64(1)), b.i64(h)), b.i64(L))
        pad_end = b.op("Sub", end, b.op("Add", n, b.i64(half)))
        self.padded = b.op("Pad", INPUT, b.op("Concat", b.i64(half), pad_end, axis=0))
        self.window_offsets = b.op("Unsqueeze", b.op("Range", b.scalar(0), b.scalar(L), b.scalar(1)), b.i64(0))
        fe = self.fe
        self.stft_offsets = _offsets(b, fe.n_frames, self.ol3.HOP_LENGTH, fe.n_fft)  # [T, n_fft]
        return b.op("Squeeze", count, b.i64(0))

    def features(self, b: _Nodes, ids: str) -> str:
        fe, ol3, L = self.fe, self.ol3, self.ol3.FRAME_LENGTH
        starts = b.op("Unsqueeze", b.op("Mul", ids, b.scalar(self.hop_len)), b.i64(1))  # [k, 1]
        windows = b.op("Gather", self.padded, b.op("Add", starts, self.window_offsets), axis=0)  # [k, 48000]
        need = (fe.n_frames - 1) * ol3.HOP_LENGTH + fe.n_fft
        if need > L:  # kapre's pad_end: the last frames of a window read zeros, not the next samples
            windows = b.op("Pad", windows, b.i64(0, 0, 0, need - L))
        frames = b.op("Gather", windows, self.stft_offsets, axis=1)  # [k, T, n_fft]
        spec = _magnitude(b, frames, fe.window, fe.n_fft)  # [k, T, n_fft//2 + 1]
        if fe.n_mels:
            fb = ol3.mel_filterbank(ol3.SAMPLE_RATE, fe.n_fft, fe.n_mels)  # [n_mels, bins] float32
            spec = b.op("MatMul", spec, b.const(np.ascontiguousarray(fb.T), "mel"))  # [k, T, n_mels]
        scale = 10.0 / math.log(10.0)  # 10 log10(x) = (10 / ln 10) ln x
        db = b.op("Mul", b.op("Log", b.op("Max", spec, b.f32(ol3.DB_AMIN / ol3.DB_REF))), b.f32(scale))
        db = b.op("Sub", db, b.reduce_max(db, [1, 2]))  # each window's maximum is 0 dB
        db = b.op("Max", db, b.f32(-ol3.DB_DYNAMIC_RANGE))
        return b.op("Unsqueeze", b.op("Transpose", db, perm=[0, 2, 1]), b.i64(3))  # [k, F, T, 1]


#: Frames per loop iteration: pqeval's own batch sizes (VGGish 16: its 289 MB of FC weights are
#: read once per batch; OpenL3 1: fastest, and memory stays that of one window).
BATCH = {"vggish": 16, "openl3": 1}


def _spec_for(family: str, metadata: dict[str, str], hop: float | None, path: Path, batch: int | None) -> _Spec:
    if batch is not None and batch < 1:
        raise UsageError(f"batch must be >= 1, got {batch}")
    if family == "vggish":
        if hop is not None:
            raise UsageError("--hop applies to OpenL3 only: VGGish's examples are 0.96 s apart")
        return _VGGish(batch or BATCH[family])
    if family == "openl3":
        from pqeval.openl3 import OpenL3Embedder, hop_samples
        from pqeval.scoring import MAX_HOP, MIN_HOP

        hop = DEFAULT_HOP if hop is None else float(hop)
        if not MIN_HOP <= hop <= MAX_HOP or hop_samples(hop) < 1:
            raise UsageError(f"the OpenL3 hop must be {MIN_HOP:.3g}..{MAX_HOP:g} s, got {hop}")
        _exact_hop(hop)  # the timestamps can be made exactly (UsageError if not)

        class _Meta:  # what OpenL3Embedder._input_repr reads: the frontend the model was exported for
            def __init__(self) -> None:
                self.metadata, self.path = metadata, path

        return _OpenL3(OpenL3Embedder._input_repr(_Meta()), hop, batch or BATCH[family])
    raise ModelError(f"{path}: a {family or 'unlabelled'} model: no graph frontend for it")


# --- assembling ------------------------------------------------------------------------------------


def _check_model_io(proto: onnx.ModelProto, spec: _Spec, path: Path) -> dict[str, int]:
    """The model's output sizes {name: D}; ModelError if its I/O is not what the family's exports have."""
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in inits]
    sizes = {o.name: o.type.tensor_type.shape.dim[-1].dim_value for o in proto.graph.output}
    wanted = list(spec.model_outputs.values())
    if inputs != [spec.model_input] or not all(sizes.get(k) for k in wanted):
        raise ModelError(
            f"{path}: expected input {spec.model_input!r} and outputs {wanted} [batch, D], "
            f"found inputs {inputs} and outputs {sorted(sizes)}"
        )
    opset = {o.domain: o.version for o in proto.opset_import}.get("", 0)
    if opset < MIN_OPSET:
        raise ModelError(f"{path}: opset {opset}, the graph needs {MIN_OPSET} or later (re-export the model)")
    for node in proto.graph.node:
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise ModelError(f"{path}: has control flow ({node.op_type}); cannot inline it")
    return sizes


def assemble(proto: onnx.ModelProto, spec: _Spec, path: Path = Path("model.onnx")) -> onnx.ModelProto:
    """The merged graph: frontend, then a Loop over batches of frames (frontend of the batch + the
    model's nodes inlined), outputs concatenated. Consumes ``proto`` (renamed in place)."""
    onnx = _onnx()
    from onnx import TensorProto, compose, helper

    sizes = _check_model_io(proto, spec, path)
    opset = {o.domain: o.version for o in proto.opset_import}[""]
    compose.add_prefix_graph(proto.graph, MODEL_PREFIX, inplace=True)
    inits: list = list(proto.graph.initializer)  # the model's weights, read by the loop body
    counter = [0]
    outer_nodes: list = []
    outer = _Nodes(outer_nodes, inits, "frontend/", counter, opset)
    count = spec.count(outer)
    _timestamps(outer, count, spec.hop_seconds)
    chunks = outer.op("Div", outer.op("Add", count, outer.scalar(spec.batch - 1)), outer.scalar(spec.batch))

    body_nodes: list = []
    body = _Nodes(body_nodes, inits, "batch/", counter, opset)
    it, cond_in = "batch/iteration", "batch/cond_in"
    first = body.op("Mul", it, body.scalar(spec.batch))
    last = body.op("Min", body.op("Add", first, body.scalar(spec.batch)), count)
    ids = body.op("Range", first, last, body.scalar(1))  # the frames of this iteration
    body.op("Identity", spec.features(body, ids), out=MODEL_PREFIX + spec.model_input)
    body_nodes.extend(proto.graph.node)
    names = list(spec.model_outputs)
    carried = []
    for g in names:
        acc_in = f"batch/{g}_so_far"
        carried.append(acc_in)
        body.op("Concat", acc_in, MODEL_PREFIX + spec.model_outputs[g], axis=0, out=f"batch/{g}")
    body.op("Identity", cond_in, out="batch/cond_out")

    def value(name: str, elem: int, dims: list | None) -> Any:
        return helper.make_tensor_value_info(name, elem, dims)

    dims = {g: sizes[spec.model_outputs[g]] for g in names}
    body_graph = helper.make_graph(
        body_nodes,
        "batch",
        [value(it, TensorProto.INT64, []), value(cond_in, TensorProto.BOOL, [])]
        + [value(a, TensorProto.FLOAT, ["so_far", dims[g]]) for a, g in zip(carried, names, strict=True)],
        [value("batch/cond_out", TensorProto.BOOL, [])]
        + [value(f"batch/{g}", TensorProto.FLOAT, ["so_far_next", dims[g]]) for g in names],
    )
    empty = [outer.const(np.zeros((0, dims[g]), np.float32), f"no_{g}") for g in names]
    true = outer.const(np.array(True), "true")
    outer_nodes.append(helper.make_node("Loop", [chunks, true, *empty], names, name="batches:Loop", body=body_graph))
    outputs = [value(g, TensorProto.FLOAT, ["frames", dims[g]]) for g in names]
    outputs.insert(1, value(TIMESTAMPS, TensorProto.FLOAT, ["frames"]))
    graph = helper.make_graph(
        outer_nodes,
        f"pqeval_{spec.family}_waveform",
        [value(INPUT, TensorProto.FLOAT, ["samples"])],
        outputs,
        inits,
    )
    used = {n.domain for n in proto.graph.node} | {""}  # leave out domains no node uses (ai.onnx.ml)
    opsets = [o for o in proto.opset_import if o.domain in used]
    merged = helper.make_model(graph, opset_imports=opsets, producer_name="pqeval")
    merged.ir_version = proto.ir_version
    onnx.checker.check_model(merged, full_check=True)
    return merged


def build_graph(
    path: str | Path, hop: float | None = None, batch: int | None = None
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """(merged ModelProto, metadata) for the exported model file ``path`` (checked against its sidecar).

    hop: OpenL3's window hop in seconds (default pqeval's, registry.DEFAULT_HOP); batch: frames
    per loop iteration (default :data:`BATCH`; changes speed and memory, not the numbers' meaning).
    """
    merged, metadata, _ = _build(Path(path), hop, batch)
    return merged, metadata


def _build(path: Path, hop: float | None, batch: int | None) -> tuple[onnx.ModelProto, dict[str, str], _Spec]:
    from pqeval.session import OnnxModel, embedded_metadata

    onnx = _onnx()
    src = OnnxModel(path)
    src.check_integrity()  # sha256 of the file (and of its external weights) as exported
    src._check_embedded(embedded_metadata(path).get("pqeval.weights"))
    metadata = dict(src.metadata)
    spec = _spec_for(metadata.get("pqeval.model_id", ""), metadata, hop, path, batch)
    proto = onnx.load(str(path))  # with its external weights, if any: they go inside the graph
    merged = assemble(proto, spec, path)
    metadata.pop("pqeval.version", None)  # write_onnx records the version that built the graph
    metadata[GRAPH_KEY] = json.dumps(
        {
            "input": INPUT,
            "sample_rate": spec.sample_rate,
            "min_samples": spec.min_samples,
            "hop_seconds": spec.hop_seconds,
            "outputs": [EMBEDDING, TIMESTAMPS, *[k for k in spec.model_outputs if k != EMBEDDING]],
            "source_model": src.key,
            "source_sha256": src.sidecar["sha256"],
        }
    )
    return merged, metadata, spec


# --- the resampler graph --------------------------------------------------------------------------

RESAMPLED = "resampled"  # the resampler graph's output
RESAMPLER_KEY = "pqeval.resampler"  # its metadata (JSON)
_ROW_OUTPUTS = 256  # outputs per matrix row at least: bounds the framed input at ~1-2x the output


def resampler_is_exact(sr_in: int, sr_out: int, filter: str = "kaiser_best_0.2") -> bool:
    """True when pqeval's resampler (resampy's kaiser_best) is a plain polyphase FIR for this rate pair:
    upsampling, or downsampling by a factor whose table step ``scale * per_zero`` is a whole number.
    Otherwise resampy's float output time falls just below an integer at some outputs and it reads
    them at the wrong phase (``pqeval.resample._fix_flips``): a graph cannot reproduce that."""
    from pqeval.resample import FILTERS

    scale = min(1.0, sr_out / sr_in)
    step_exact = scale * FILTERS[filter].per_zero == int(scale * FILTERS[filter].per_zero)
    # resampy's length int(n * (sr_out / sr_in)) is floor(n * sr_out / sr_in) when the float64 ratio
    # is not below the exact one (it is not for the common rates: 8, 11.025, 16, 22.05, 32, 44.1 kHz)
    return step_exact and Fraction(sr_out / sr_in) >= Fraction(sr_out, sr_in)


def build_resampler(sr_in: int, sr_out: int, filter: str = "kaiser_best_0.2") -> onnx.ModelProto:
    """ONNX graph ``waveform`` float32 [n] at sr_in -> ``resampled`` float32 [int(n * (sr_out / sr_in))]
    at sr_out, equal to :func:`pqeval.resample.resample` (resampy's kaiser_best) up to float32 rounding.

    The polyphase filter of :func:`pqeval.resample.polyphase_filter` as one MatMul: rows of U outputs
    read input samples [r * D + lo, r * D + lo + span) (zeros outside the signal) times a fixed
    [span, U] tap matrix. UsageError for a rate pair where that is not exact (see resampler_is_exact).
    """
    from onnx import TensorProto, helper

    from pqeval.resample import polyphase_filter

    onnx = _onnx()
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0 or sr_in == sr_out:
        raise UsageError(f"resampling needs two different positive rates, got {sr_in} -> {sr_out} Hz")
    if not resampler_is_exact(sr_in, sr_out, filter):
        raise UsageError(
            f"resampling {sr_in} -> {sr_out} Hz cannot be written exactly as a graph (resampy's float output "
            "time reads some outputs at the wrong phase there); resample with pqeval before the graph"
        )
    up, down, taps = polyphase_filter(sr_in, sr_out, filter)
    half = (len(taps) - 1) // 2
    periods = -(-_ROW_OUTPUTS // up)
    U, D = up * periods, down * periods
    # y[t] = sum_j x[j] taps[t * down + half - j * up]; output t = r * U + c reads j = r * D + m
    c = np.arange(U)
    lo = -(-(c[0] * down + half - (len(taps) - 1)) // up)  # smallest m any output of a row reads
    hi = ((U - 1) * down + half) // up  # largest
    m = np.arange(lo, hi + 1)
    k = c[None, :] * down + half - m[:, None] * up
    H = np.where((k >= 0) & (k < len(taps)), taps[np.clip(k, 0, len(taps) - 1)], 0.0).astype(np.float32)
    span = len(m)

    inits: list = []
    nodes: list = []
    b = _Nodes(nodes, inits, "resample/", [0], MIN_OPSET)
    n = b.op("Shape", INPUT)  # [1]
    n_out = b.op("Div", b.op("Mul", n, b.i64(up)), b.i64(down))  # resampy 0.2's int(n * (sr_out / sr_in))
    rows = b.op("Div", b.op("Add", n_out, b.i64(U - 1)), b.i64(U))  # [1]
    # zeros: -lo in front; at the end up to what the last row reads
    need = b.op("Add", b.op("Mul", b.op("Sub", rows, b.i64(1)), b.i64(D)), b.i64(hi + 1))
    pad_end = b.op("Max", b.op("Sub", need, n), b.i64(0))
    padded = b.op("Pad", INPUT, b.op("Concat", b.i64(-lo), pad_end, axis=0))
    starts = b.op("Mul", b.op("Range", b.scalar(0), b.op("Squeeze", rows, b.i64(0)), b.scalar(1)), b.scalar(D))
    idx = b.op("Add", b.op("Unsqueeze", starts, b.i64(1)), b.op("Range", b.scalar(0), b.scalar(span), b.scalar(1)))
    framed = b.op("Gather", padded, idx, axis=0)  # [rows, span]
    y = b.op("Reshape", b.op("MatMul", framed, b.const(H, "taps")), b.i64(-1))  # [rows * U]
    b.op("Slice", y, b.i64(0), n_out, b.i64(0), out=RESAMPLED)
    graph = helper.make_graph(
        nodes,
        f"pqeval_resample_{sr_in}_{sr_out}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["samples"])],
        [helper.make_tensor_value_info(RESAMPLED, TensorProto.FLOAT, ["resampled_samples"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", MIN_OPSET)], producer_name="pqeval")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def export_resampler(sr_in: int, sr_out: int, out: str | Path) -> tuple[Path, dict[str, Any]]:
    """Write the resampler graph ``out`` (+ sidecar), checked against pqeval's resampler on a test signal."""
    from pqeval.resample import resample

    model = build_resampler(sr_in, sr_out)
    x = verify_signal(sr_in, 1.3)
    got = run_graph(model.SerializeToString(), x)[RESAMPLED]
    want = resample(x.astype(np.float64), sr_in, sr_out)
    check: dict[str, Any] = {"reference": "pqeval.resample.resample (resampy kaiser_best 0.2)", "samples": len(want)}
    check["length_equal"] = got.shape == want.shape
    if check["length_equal"]:
        check["max_abs_diff"] = float(np.abs(got - want).max())
    if not check["length_equal"] or check["max_abs_diff"] > 1e-5:
        raise ModelError(f"the {sr_in} -> {sr_out} Hz resampler graph does not match pqeval's ({json.dumps(check)})")
    meta = {
        RESAMPLER_KEY: json.dumps(
            {
                "input": INPUT,
                "output": RESAMPLED,
                "sample_rate_in": sr_in,
                "sample_rate_out": sr_out,
                "filter": "resampy kaiser_best 0.2 (pqeval.resample)",
                "output_samples": "int(samples * (sample_rate_out / sample_rate_in))",
            }
        ),
        "pqeval.verify": json.dumps(check),
    }
    out = Path(out)
    write_onnx(model, out, meta)
    return out, check


# --- the check at export ---------------------------------------------------------------------------


def verify_signal(sample_rate: int, seconds: float, seed: int = 1234) -> np.ndarray:
    """A deterministic float32 test signal: a chirp, a tone and noise with a noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
    x += 0.05 * rng.standard_normal(len(t)) * (1 + np.sin(2 * np.pi * 1.3 * t))
    return x.astype(np.float32)


def run_graph(model_bytes_or_path: bytes | str | Path, waveform: np.ndarray, threads: int = 0) -> dict[str, np.ndarray]:
    """Run a graph in ONNX Runtime (CPU): {output name: array}."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    src = model_bytes_or_path if isinstance(model_bytes_or_path, bytes) else str(model_bytes_or_path)
    sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {INPUT: np.asarray(waveform, np.float32)}), strict=True))


def reference(path: str | Path, waveform: np.ndarray, hop: float | None = None) -> dict[str, np.ndarray]:
    """pqeval's numpy path + the source model on the same samples: {output name: array} as the graph's."""
    from pqeval.session import OnnxModel

    model = OnnxModel(path)
    x = np.asarray(waveform, np.float32).astype(np.float64)
    family = model.metadata.get("pqeval.model_id")
    if family == "vggish":
        from pqeval.vggish import VGGishEmbedder

        emb = VGGishEmbedder(model, output="embedding").embed(x, FAMILIES["vggish"].sample_rate)
        post = VGGishEmbedder(model, output="postprocessed").embed(x, FAMILIES["vggish"].sample_rate)
        return {EMBEDDING: emb.frames, TIMESTAMPS: emb.times, POSTPROCESSED: post.frames}
    from pqeval.openl3 import OpenL3Embedder

    e = OpenL3Embedder(model, hop=DEFAULT_HOP if hop is None else hop).embed(x, FAMILIES["openl3"].sample_rate)
    return {EMBEDDING: e.frames, TIMESTAMPS: e.times}


def compare(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, Any]:
    """The graph's outputs against the numpy path's: frame counts, cosine, timestamps, 8-bit values."""
    from pqeval.similarity import cosine_per_frame

    a, b = got[EMBEDDING], want[EMBEDDING]
    out: dict[str, Any] = {"frames": int(len(a)), "reference_frames": int(len(b))}
    if a.shape != b.shape:
        return out
    out["cosine_min"] = float(cosine_per_frame(a, b).min()) if len(a) else 1.0
    out["max_abs_diff"] = float(np.abs(a.astype(np.float64) - b).max()) if len(a) else 0.0
    out["timestamps_equal"] = bool(np.array_equal(got[TIMESTAMPS], np.asarray(want[TIMESTAMPS]).astype(np.float32)))
    if POSTPROCESSED in want:
        d = np.abs(got[POSTPROCESSED].astype(np.float64) - want[POSTPROCESSED])
        out["postprocessed_differing"] = int((d > 0).sum())
        out["postprocessed_max_step"] = float(d.max()) if d.size else 0.0
        out["postprocessed_total"] = int(d.size)
    return out


def verify(model_bytes: bytes, source: Path, spec: _Spec) -> dict[str, Any]:
    """ORT(graph) vs pqeval's numpy frontend + ORT(source model) on a synthetic signal."""
    x = verify_signal(spec.sample_rate, VERIFY_SECONDS[spec.family])
    hop = spec.hop_seconds if spec.family == "openl3" else None
    check = compare(run_graph(model_bytes, x), reference(source, x, hop))
    return {"reference": "pqeval's numpy path + the source model", "seconds": len(x) / spec.sample_rate, **check}


def verified(check: dict[str, Any]) -> bool:
    """The graph's frames match: same count, cosine >= VERIFY_COSINE_MIN, equal timestamps, 8-bit
    values at most one step apart (a rounding boundary)."""
    return (
        check.get("frames") == check.get("reference_frames")
        and check.get("cosine_min", 0.0) >= VERIFY_COSINE_MIN
        and bool(check.get("timestamps_equal"))
        and check.get("postprocessed_max_step", 0.0) <= 1.0
    )


def resampler_path(out: str | Path, sr_in: int) -> Path:
    """Where ``export_graph(..., resample_from=[sr_in])`` writes that resampler: ``<out>-resample-<sr_in>.onnx``."""
    out = Path(out)
    return out.with_name(f"{out.name.removesuffix('.onnx')}-resample-{int(sr_in)}.onnx")


def export_graph(
    key: str,
    out: str | Path,
    hop: float | None = None,
    batch: int | None = None,
    resample_from: list[int] | tuple[int, ...] = (),
) -> tuple[Path, dict[str, Any]]:
    """Build the graph of installed model ``key``, check it against pqeval's numpy path, write
    ``out`` (one file, weights inside) and its sidecar ``out.json``; return (path, check).

    resample_from: also write a resampler graph from each of these rates to the model's rate
    (:func:`resampler_path`; only rate pairs where it is exact, see :func:`resampler_is_exact`).
    UsageError for a key pqeval does not know, a bad hop or an inexact rate pair; ModelError for a
    missing, modified or unusable model, or a graph that does not match the numpy path.
    """
    from pqeval.session import find_model

    family = spec_family(key)
    out = Path(out)
    if out.suffix != ".onnx":
        raise UsageError(f"{out}: the graph file must end in .onnx")
    rate = FAMILIES[family].sample_rate
    for sr_in in resample_from:
        if int(sr_in) <= 0 or int(sr_in) == rate or not resampler_is_exact(int(sr_in), rate):
            raise UsageError(
                f"no exact resampler graph from {sr_in} Hz to {rate} Hz: the rates it can write are those "
                f"where pqeval's resampler is a plain polyphase filter (e.g. 8000, 16000, 22050, 44100 -> 48000); "
                "resample with pqeval otherwise"
            )
    path = find_model(key)
    merged, metadata, spec = _build(path, hop, batch)
    data = merged.SerializeToString()
    check = verify(data, path, spec)
    if not verified(check):
        raise ModelError(f"{path}: the graph does not match pqeval's numpy path ({json.dumps(check)})")
    metadata[VERIFY_KEY] = json.dumps(check)
    del data
    write_onnx(merged, out, metadata)
    for sr_in in dict.fromkeys(int(r) for r in resample_from):
        export_resampler(sr_in, spec.sample_rate, resampler_path(out, sr_in))
    return out, check


def spec_family(key: str) -> str:
    """The family of an exportable model key (UsageError if pqeval does not know the key)."""
    spec = base_spec(key)
    if spec is None:
        known = ", ".join(FAMILIES[f].default_key for f in FAMILIES)
        raise UsageError(
            f"unknown model {key!r}: give an exportable model key (e.g. {known}; see `pqeval models --available`)"
        )
    return spec.family
