"""Compact variants of exported models, each with its accuracy cost measured on real recordings.

Variants (``COMPACT_KINDS``), written beside the fp32 model as ``<key>-<kind>.onnx`` with the
same provenance metadata plus ``pqeval.compact`` (method, source sha256, measured accuracy):

* ``int8fc`` (VGGish): ONNX Runtime dynamic quantisation of the fully-connected layers only
  (their Gemm nodes are rewritten as MatMul + Add, which ORT's dynamic quantiser handles; int8
  weights per output column, activations quantised per call). The convolutions stay fp32: on this
  AVX2 CPU without VNNI, quantised convolutions run 2-3x slower (../shared/DESIGN.md). The PCA MatMul
  (64 kB) stays fp32 too: quantising it saves nothing and moves the 8-bit outputs.
* ``fp16`` (VGGish): weights stored as float16, each followed by a Cast to float32 that ORT folds
  into an fp32 constant while it loads the model (half the file, same arithmetic after load).
* ``int8qdq`` (OpenL3): static int8 QDQ (per-channel int8 weights, uint8 activations, MinMax
  calibration) calibrated on 1 s windows of real recordings; the accuracy is measured on
  recordings held out of the calibration.

Accuracy is always against the fp32 model with the same weights; on seeded weights it says
nothing about the real models' accuracy and is labelled ``seeded weights``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from pqeval.errors import ModelError, UsageError
from pqeval.registry import FAMILIES
from pqeval.similarity import cosine_per_frame

from .common import require, write_onnx

COMPACT_KINDS = {f.name: f.compact_kinds for f in FAMILIES.values()}
COMPACT_KEY = "pqeval.compact"
FP16_MIN_ELEMENTS = 1024  # smaller initializers (biases, constants) stay fp32
QDQ_CALIBRATION_WINDOWS = 96  # 1 s windows drawn from the calibration recordings
OPENL3_ACCURACY_HOP = 0.5  # s, window hop when measuring OpenL3 accuracy


# --- graph rewrites ---------------------------------------------------------------------------


def _init_map(graph) -> dict:
    return {t.name: t for t in graph.initializer}


def gemm_to_matmul(proto) -> list[str]:
    """Rewrite every Gemm with a constant B (alpha = beta = 1) as MatMul (+ Add of C), in place.

    Returns the names of the new MatMul nodes. ORT's dynamic quantiser quantises MatMul, not Gemm.
    """
    import onnx
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = _init_map(g)
    new_nodes, matmuls, stale = [], [], set()
    for node in g.node:
        if node.op_type != "Gemm" or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA", 0):
            new_nodes.append(node)
            continue
        b = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            b = np.ascontiguousarray(b.T)
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(b, node.input[1]))
        stale.add(node.input[1])
        mm_out = f"{node.name}_matmul_out" if len(node.input) > 2 else node.output[0]
        mm = helper.make_node("MatMul", [node.input[0], node.input[1]], [mm_out], name=f"{node.name}_MatMul")
        new_nodes.append(mm)
        matmuls.append(mm.name)
        if len(node.input) > 2 and node.input[2]:
            new_nodes.append(
                helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_Add")
            )
    del g.node[:]
    g.node.extend(new_nodes)
    keep = [v for v in g.value_info if v.name not in stale]  # shapes recorded before the transpose
    del g.value_info[:]
    g.value_info.extend(keep)
    onnx.checker.check_model(proto)
    return matmuls


def to_fp16_storage(proto, min_elements: int = FP16_MIN_ELEMENTS) -> int:
    """Store float32 initializers with >= min_elements values as float16 + a Cast to float32, in place.

    Returns the number of initializers converted. The graph still computes in float32.
    """
    from onnx import TensorProto, helper, numpy_helper

    g = proto.graph
    casts = []
    for t in list(g.initializer):
        if t.data_type != TensorProto.FLOAT or int(np.prod(t.dims)) < min_elements:
            continue
        name = t.name
        half = numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), f"{name}__fp16")
        t.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], name=f"{name}__to_fp32", to=TensorProto.FLOAT))
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return len(casts)


# --- writing ----------------------------------------------------------------------------------


def _source(path: Path) -> dict:
    """The sidecar of an exported fp32 model (its ``metadata`` equals the model's own)."""
    side_path = path.with_name(path.name + ".json")
    if not path.is_file() or not side_path.is_file():
        raise ModelError(f"{path}: exported model (and its .json sidecar) not found; export it first")
    return json.loads(side_path.read_text())


def _compact_meta(meta: dict, side: dict, kind: str, method: str, accuracy: dict | None) -> dict:
    out = dict(meta)
    out["pqeval.variant"] = f"{meta.get('pqeval.variant', '')}+{kind}"
    out[COMPACT_KEY] = json.dumps(
        {
            "kind": kind,
            "method": method,
            "source_sha256": side.get("sha256"),
            "accuracy": accuracy,
        }
    )
    return out


def compact_path(src: Path, kind: str) -> Path:
    """``models/vggish.onnx`` + ``int8fc`` -> ``models/vggish-int8fc.onnx``."""
    return src.with_name(f"{src.name.removesuffix('.onnx')}-{kind}.onnx")


# --- the variants -----------------------------------------------------------------------------


def quantize_vggish_fc(src: Path, dst: Path, per_channel: bool = True) -> None:
    """Dynamic int8 quantisation of VGGish's three FC layers (Gemm -> MatMul first); writes ``dst`` (no sidecar)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    proto = onnx.load(str(src))
    fc = [n.name for n in proto.graph.node if n.op_type == "Gemm"]
    if not fc:
        raise ModelError(f"{src}: no Gemm (fully-connected) nodes to quantise")
    matmuls = gemm_to_matmul(proto)
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "fc-matmul.onnx"
        onnx.save(proto, str(mid))
        quantize_dynamic(
            str(mid),
            str(dst),
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=matmuls,
            per_channel=per_channel,
            weight_type=QuantType.QInt8,
        )


class _WindowReader:
    """ORT CalibrationDataReader over OpenL3 spectrogram batches."""

    def __init__(self, input_name: str, batches: list[np.ndarray]) -> None:
        self.input_name = input_name
        self._it = iter(batches)

    def get_next(self):
        b = next(self._it, None)
        return None if b is None else {self.input_name: b}


def calibration_windows(files: list[Path], n: int, seed: int = 0) -> np.ndarray:
    """[n, 48000] float32: 1 s windows (hop OPENL3_ACCURACY_HOP) of the recordings, n drawn without replacement."""
    from pqeval.audio import load_audio
    from pqeval.openl3 import cut_windows, num_windows, resample_to_48k

    wins = []
    for f in files:
        a = load_audio(f)
        assert isinstance(a.samples, np.ndarray)  # load_audio reads the whole file
        x48 = resample_to_48k(a.samples, a.sr)
        wins.append(cut_windows(x48, 0, num_windows(len(x48), OPENL3_ACCURACY_HOP), OPENL3_ACCURACY_HOP))
    allw = np.concatenate(wins)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(allw), size=min(n, len(allw)), replace=False)
    return allw[np.sort(pick)]


def quantize_openl3_qdq(
    src: Path, dst: Path, calib_files: list[Path], n_windows: int = QDQ_CALIBRATION_WINDOWS
) -> None:
    """Static int8 QDQ quantisation of an OpenL3 CNN calibrated on real windows; writes ``dst`` (no sidecar)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pqeval.openl3 import INPUT_NAME, OpenL3Embedder
    from pqeval.session import OnnxModel

    frontend = OpenL3Embedder(OnnxModel(src)).frontend  # the frontend the model's metadata names
    wins = calibration_windows(calib_files, n_windows)
    batches = [frontend(wins[i : i + 8]) for i in range(0, len(wins), 8)]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre),
            str(dst),
            _WindowReader(INPUT_NAME, batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )


# --- accuracy ---------------------------------------------------------------------------------


def audio_files(audio_dir: str | Path) -> list[Path]:
    """The recordings in ``audio_dir`` (sorted, as ``pqeval batch`` finds them); UsageError if none."""
    from pqeval.audio import audio_files as recordings

    d = Path(audio_dir)
    files = recordings(d)
    if not files:
        raise UsageError(f"{d}: no recordings to measure accuracy on")
    return files


def vggish_accuracy(ref_path: Path, path: Path, files: list[Path], threads: int | None = None) -> dict:
    """Per-example cosine (``embedding`` output) and changed 8-bit outputs of ``path`` vs ``ref_path``."""
    from pqeval.audio import load_audio
    from pqeval.session import OnnxModel
    from pqeval.vggish import VGGishFrontend

    fe = VGGishFrontend()
    ref, cmp = OnnxModel(ref_path, threads), OnnxModel(path, threads)
    cos_parts: list[np.ndarray] = []
    changed, total, steps = 0, 0, 0
    for f in files:
        a = load_audio(f)
        assert isinstance(a.samples, np.ndarray)  # load_audio reads the whole file
        ex = fe.examples(a.samples, a.sr)
        if len(ex) == 0:
            continue
        x = {"examples": ex[:, None].astype(np.float32)}
        r = ref.run(x, ["embedding", "postprocessed"])
        c = cmp.run(x, ["embedding", "postprocessed"])
        cos_parts.append(cosine_per_frame(r[0], c[0]))
        changed += int((r[1] != c[1]).sum())
        steps = max(steps, int(np.abs(r[1] - c[1]).max()))
        total += r[1].size
    cos = np.concatenate(cos_parts)
    return {
        "weights": ref.weights,
        "reference": ref_path.name,
        "files": [f.name for f in files],
        "frames": int(len(cos)),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "postprocessed_changed_share": changed / total,
        "postprocessed_changed": changed,
        "postprocessed_total": total,
        "postprocessed_max_step": steps,
    }


def openl3_accuracy(
    ref_path: Path, path: Path, files: list[Path], hop: float = OPENL3_ACCURACY_HOP, threads: int | None = None
) -> dict:
    """Per-window cosine of ``path`` vs ``ref_path`` (same numpy frontend) on the recordings."""
    from pqeval.audio import load_audio
    from pqeval.openl3 import OpenL3Embedder
    from pqeval.session import OnnxModel

    ref, cmp = OnnxModel(ref_path, threads), OnnxModel(path, threads)
    er, ec = OpenL3Embedder(ref, hop=hop), OpenL3Embedder(cmp, hop=hop)
    cos_parts: list[np.ndarray] = []
    for f in files:
        a = load_audio(f)
        assert isinstance(a.samples, np.ndarray)  # load_audio reads the whole file
        cos_parts.append(cosine_per_frame(er.embed(a.samples, a.sr).frames, ec.embed(a.samples, a.sr).frames))
    cos = np.concatenate(cos_parts)
    return {
        "weights": ref.weights,
        "reference": ref_path.name,
        "files": [f.name for f in files],
        "hop": hop,
        "frames": int(len(cos)),
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "cosine_p05": float(np.percentile(cos, 5)),
    }


def _accuracy_label(acc: dict) -> dict:
    w = str(acc.get("weights", ""))
    if w.startswith("pretrained:"):
        return {**acc, "label": "pretrained weights"}
    kind = "custom" if w.startswith("custom:") else "seeded"
    return {**acc, "label": f"{kind} weights (not the real model's accuracy)"}


# --- entry point ------------------------------------------------------------------------------


def export_compact(
    src: str | Path, kind: str, audio: str | Path | list[Path] | None = None, quick: bool = False
) -> tuple[Path, dict | None]:
    """Write the ``kind`` variant of the exported model ``src`` beside it; return (path, accuracy).

    audio: a directory (or list) of real recordings to measure accuracy on (and, for ``int8qdq``, to calibrate on:
    every other file calibrates, the rest are held out for the accuracy figure). Without it the
    variant is written with ``accuracy: null`` (``int8qdq`` needs it). quick: a 4-window
    calibration (tests only). UsageError naming the ``export`` extra if onnx cannot be imported.
    """
    require("compact variants")
    src = Path(src)
    side = _source(src)
    meta = side["metadata"]
    model_id = meta.get("pqeval.model_id", "")
    if kind not in COMPACT_KINDS.get(model_id, ()):
        raise UsageError(
            f"{src.name}: compact kind {kind!r} not available for {model_id!r}; choose from "
            f"{COMPACT_KINDS.get(model_id, ())}"
        )
    dst = compact_path(src, kind)
    if audio is None:
        files = []
    elif isinstance(audio, (list, tuple)):
        files = [Path(f) for f in audio]
    else:
        files = audio_files(audio)
    import onnx

    n_calib = 4 if quick else QDQ_CALIBRATION_WINDOWS
    with tempfile.TemporaryDirectory(dir=src.parent, prefix=".compact-") as tmp:
        raw = Path(tmp) / dst.name
        if kind == "int8fc":
            quantize_vggish_fc(src, raw)
            method = "onnxruntime quantize_dynamic: FC Gemm->MatMul, int8 per-channel weights; convs and PCA fp32"
        elif kind == "int8qdq":
            if not files:
                raise UsageError("int8qdq needs real recordings to calibrate on (audio_dir)")
            calib, held = files[0::2], files[1::2] or files
            quantize_openl3_qdq(src, raw, calib, n_calib)
            files = held
            method = (
                f"onnxruntime quantize_static QDQ, per-channel int8 weights, uint8 activations, MinMax, "
                f"calibrated on {n_calib} windows of {', '.join(f.name for f in calib)}"
            )
        elif kind == "fp16":
            proto = onnx.load(str(src))
            n = to_fp16_storage(proto)
            onnx.save(proto, str(raw))
            method = f"{n} float32 initializers stored as float16 + Cast to float32 (folded by ORT at load)"
        out = onnx.load(str(raw))
        write_onnx(out, dst, _compact_meta(meta, side, kind, method, None))
    acc = None
    if files:
        acc = vggish_accuracy(src, dst, files) if model_id == "vggish" else openl3_accuracy(src, dst, files)
        acc = _accuracy_label(acc)
        write_onnx(out, dst, _compact_meta(meta, side, kind, method, acc))  # same graph, metadata with accuracy
    return dst, acc
