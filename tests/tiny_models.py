"""Tiny stand-ins for the exported VGGish and OpenL3 models, built with onnx.helper (no torch/TF).

They have the real models' input/output names, dtypes, shapes, metadata keys and sidecars, and
are written through the real writer (``pqeval_export.common.write_onnx``; VGGish with its weights
in an external ``.onnx.data`` file, as ``pqeval export vggish`` writes it), so model lookup,
integrity checks, provenance labels, the frontends, batching, scoring, the CLI, batch and study
all run on them in well under a second. The numbers they give mean nothing perceptually:

* ``pqeval.weights`` is ``seeded:<seed>`` (the label every seeded model carries, so each score
  says "not a perceptual measurement") and ``pqeval.variant`` is ``tiny-test-model``;
* VGGish: examples [B, 1, 96, 64] -> each example minus its own mean, flattened, times a seeded
  [6144, 128] matrix = ``embedding_raw``; ``embedding`` = ReLU(raw); ``postprocessed`` = a seeded
  PCA-like linear map of ``embedding``, clipped to [-2, 2] and quantised to 0..255 (float32), as
  torchvggish's postprocessor does;
* OpenL3: spectrogram [B, 256, 199, 1] (mel256) -> mean over time, seeded [256, 512] matrix, tanh.

Both are smooth functions of the log-mel / dB spectrogram, so noisier audio gives lower cosine.
``pqeval.verify`` records a real check: ONNX Runtime against the same function in numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SEED = 0
VARIANT = "tiny-test-model"
VGGISH_OPSET = 18  # as pqeval_export.vggish
OPENL3_OPSET = 17  # as pqeval_export.openl3
OPENL3_KEY = "openl3-mel256-music-512"
QUANT_MIN, QUANT_MAX = -2.0, 2.0  # torchvggish's postprocessor


def _vggish_weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 128])
    w = rng.standard_normal((96 * 64, 128)).astype(np.float32) / np.float32(np.sqrt(96 * 64) / 4)
    b = (0.1 * rng.standard_normal(128)).astype(np.float32)
    pca, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    return {
        "w": w,
        "b": b,
        "pca": (pca / 2).astype(np.float32),  # an orthogonal map, halved: values mostly inside [-2, 2]
        "pca_mean": np.full(128, 0.4, np.float32),
    }


def vggish_numpy(examples: np.ndarray, seed: int = SEED) -> dict[str, np.ndarray]:
    """The tiny VGGish in numpy (float32): {output name: [B, 128]}."""
    p = _vggish_weights(seed)
    x = np.asarray(examples, np.float32).reshape(len(examples), -1)
    x = x - x.mean(axis=1, keepdims=True)
    raw = x @ p["w"] + p["b"]
    emb = np.maximum(raw, 0)
    y = (emb - p["pca_mean"]) @ p["pca"]
    post = np.round((np.clip(y, QUANT_MIN, QUANT_MAX) - QUANT_MIN) * np.float32(255.0 / (QUANT_MAX - QUANT_MIN)))
    return {"embedding_raw": raw, "embedding": emb, "postprocessed": post.astype(np.float32)}


def _openl3_weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([seed, 512])
    return {
        "w": (rng.standard_normal((256, 512)) / 16).astype(np.float32),
        "b": (0.1 * rng.standard_normal(512)).astype(np.float32),
    }


def openl3_numpy(spectrogram: np.ndarray, seed: int = SEED) -> np.ndarray:
    """The tiny OpenL3 in numpy (float32): [B, 256, 199, 1] dB -> [B, 512]."""
    p = _openl3_weights(seed)
    m = np.asarray(spectrogram, np.float32).mean(axis=(2, 3))
    return np.tanh(((m + 40.0) / 20.0) @ p["w"] + p["b"]).astype(np.float32)


def _check(got: dict[str, np.ndarray], want: dict[str, np.ndarray], key: str) -> dict:
    e, w = got[key], want[key]
    cos = (e * w).sum(1) / np.maximum(np.linalg.norm(e, axis=1) * np.linalg.norm(w, axis=1), 1e-30)
    return {
        "reference": "numpy (tiny test model, not VGGish/OpenL3)",
        "n_examples": int(len(e)),
        "max_abs_diff": float(np.abs(e - w).max()),
        "max_abs_embedding": float(np.abs(w).max()),
        "cosine_min": float(cos.min()),
    }


def _session_outputs(proto, feed: dict, names: list[str]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(names, s.run(names, feed), strict=True))


def _versions(opset: int) -> str:
    from pqeval_export.common import versions

    return json.dumps({**versions("onnx", "onnxruntime", "numpy"), "opset": opset, "builder": "tests/tiny_models.py"})


def vggish_proto(seed: int = SEED):
    """The tiny VGGish as an onnx ModelProto (checked by onnx.checker)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    p = _vggish_weights(seed)
    inits = [
        numpy_helper.from_array(p["w"], "w"),
        numpy_helper.from_array(p["b"], "b"),
        numpy_helper.from_array(p["pca"], "pca"),
        numpy_helper.from_array(p["pca_mean"], "pca_mean"),
        numpy_helper.from_array(np.array(QUANT_MIN, np.float32), "qmin"),  # Clip takes scalars
        numpy_helper.from_array(np.array(QUANT_MAX, np.float32), "qmax"),
        numpy_helper.from_array(np.array([255.0 / (QUANT_MAX - QUANT_MIN)], np.float32), "qstep"),
        numpy_helper.from_array(np.array([1], np.int64), "mean_axes"),
    ]
    nodes = [
        helper.make_node("Flatten", ["examples"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat", "mean_axes"], ["mean"], keepdims=1),  # opset 18: axes as input
        helper.make_node("Sub", ["flat", "mean"], ["centred"]),
        helper.make_node("MatMul", ["centred", "w"], ["proj"]),
        helper.make_node("Add", ["proj", "b"], ["embedding_raw"]),
        helper.make_node("Relu", ["embedding_raw"], ["embedding"]),
        helper.make_node("Sub", ["embedding", "pca_mean"], ["emb_c"]),
        helper.make_node("MatMul", ["emb_c", "pca"], ["pca_out"]),
        helper.make_node("Clip", ["pca_out", "qmin", "qmax"], ["clipped"]),
        helper.make_node("Sub", ["clipped", "qmin"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "qstep"], ["scaled"]),
        helper.make_node("Round", ["scaled"], ["postprocessed"]),
    ]
    out = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 128])
        for n in ("embedding_raw", "embedding", "postprocessed")
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_vggish",
        [helper.make_tensor_value_info("examples", TensorProto.FLOAT, ["batch", 1, 96, 64])],
        out,
        inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", VGGISH_OPSET)], producer_name="pqeval-tests"
    )
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def openl3_proto(seed: int = SEED):
    """The tiny mel256 OpenL3 as an onnx ModelProto (checked by onnx.checker)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    p = _openl3_weights(seed)
    inits = [
        numpy_helper.from_array(p["w"], "w"),
        numpy_helper.from_array(p["b"], "b"),
        numpy_helper.from_array(np.array([40.0], np.float32), "offset"),
        numpy_helper.from_array(np.array([1 / 20.0], np.float32), "scale"),
    ]
    nodes = [
        helper.make_node("ReduceMean", ["spectrogram"], ["band_mean"], axes=[2, 3], keepdims=0),
        helper.make_node("Add", ["band_mean", "offset"], ["shifted"]),
        helper.make_node("Mul", ["shifted", "scale"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "w"], ["proj"]),
        helper.make_node("Add", ["proj", "b"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_openl3",
        [helper.make_tensor_value_info("spectrogram", TensorProto.FLOAT, ["batch", 256, 199, 1])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 512])],
        inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPENL3_OPSET)], producer_name="pqeval-tests"
    )
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto


def write_tiny_vggish(out_dir: str | Path, seed: int = SEED) -> Path:
    """``out_dir/vggish.onnx`` (+ ``.onnx.data``, ``.onnx.json``), as ``pqeval export vggish`` lays it out."""
    from pqeval.vggish import FRONTEND_PARAMS
    from pqeval_export.common import write_onnx

    proto = vggish_proto(seed)
    ex = np.random.default_rng([seed, 7]).normal(-2.0, 2.0, (6, 1, 96, 64)).astype(np.float32)
    names = ["embedding_raw", "embedding", "postprocessed"]
    got, want = _session_outputs(proto, {"examples": ex}, names), vggish_numpy(ex, seed)
    check = _check(got, want, "embedding")
    check["postprocessed_differing"] = int((got["postprocessed"] != want["postprocessed"]).sum())
    check["postprocessed_total"] = int(want["postprocessed"].size)
    out = Path(out_dir) / "vggish.onnx"
    write_onnx(
        proto,
        out,
        {
            "pqeval.model_id": "vggish",
            "pqeval.variant": VARIANT,
            "pqeval.weights": f"seeded:{seed}",
            "pqeval.frontend": json.dumps(FRONTEND_PARAMS),
            "pqeval.outputs": json.dumps(
                {
                    "postprocessed": "tiny test model: seeded linear map, clip to [-2, 2], 8-bit quantised (0..255)",
                    "embedding": "tiny test model: ReLU of embedding_raw",
                    "embedding_raw": "tiny test model: seeded projection of the mean-removed log-mel example",
                }
            ),
            "pqeval.versions": _versions(VGGISH_OPSET),
            "pqeval.verify": json.dumps(check),
        },
        external_data=True,
    )
    return out


def write_tiny_openl3(out_dir: str | Path, seed: int = SEED) -> Path:
    """``out_dir/openl3-mel256-music-512.onnx`` (+ ``.onnx.json``), the default OpenL3 model's name."""
    from pqeval.openl3 import INPUT_NAME, OUTPUT_NAME, frontend_params
    from pqeval_export.common import write_onnx

    proto = openl3_proto(seed)
    spec = np.random.default_rng([seed, 9]).uniform(-80, 0, (4, 256, 199, 1)).astype(np.float32)
    got = _session_outputs(proto, {"spectrogram": spec}, ["embedding"])
    check = _check(got, {"embedding": openl3_numpy(spec, seed)}, "embedding")
    check["rel_max_abs_diff"] = check["max_abs_diff"] / max(check["max_abs_embedding"], 1e-30)
    out = Path(out_dir) / f"{OPENL3_KEY}.onnx"
    write_onnx(
        proto,
        out,
        {
            "pqeval.model_id": "openl3",
            "pqeval.variant": VARIANT,
            "pqeval.weights": f"seeded:{seed}",
            "pqeval.frontend": json.dumps(frontend_params("mel256")),
            "pqeval.io": json.dumps({"input": INPUT_NAME, "output": OUTPUT_NAME, "embedding_size": 512}),
            "pqeval.versions": _versions(OPENL3_OPSET),
            "pqeval.verify": json.dumps(check),
        },
    )
    return out


def write_tiny_models(out_dir: str | Path, seed: int = SEED) -> Path:
    """A models directory holding the tiny VGGish and the tiny default OpenL3; returns it."""
    out_dir = Path(out_dir)
    write_tiny_vggish(out_dir, seed)
    write_tiny_openl3(out_dir, seed)
    return out_dir
