"""Export an openl3 0.4.2 audio model's CNN to ONNX with tf2onnx, verify it, record provenance.

The model is built by openl3's own code (``openl3.models.load_audio_embedding_model_from_path``,
which calls ``_construct_<input_repr>_audio_network`` and ``load_weights``), from

(a) a real weight file by path (``openl3_audio_<input_repr>_<content_type>.h5``), or the one
    inside an installed openl3 package when no path is given;
(b) ``seeded``: random weights drawn from a numpy seed into the same Keras model, saved by
    Keras to ``.h5`` and loaded back through (a)'s path. Such files carry
    ``pqeval.weights = "seeded:<seed>"`` and are not perceptual.

openl3's kapre model is [B, 1, 48000] waveform -> kapre spectrogram -> CNN -> max-pool ->
flatten. Only the CNN goes through tf2onnx (the STFT does not convert faithfully, see DESIGN);
it is openl3's ``frontend='librosa'`` variant of the same network, whose input is the dB
spectrogram [B, F, T, 1] (F = 257/128/256, T = 197/199) that ``pqeval.openl3.OpenL3Frontend``
computes in numpy. The export checks ORT(CNN)(kapre spectrogram) and pqeval's numpy frontend
against openl3's full kapre model in TF on a batch of windows, and refuses to write a file that
disagrees.

The frameworks (TensorFlow, tf-keras, kapre, resampy, tf2onnx: the ``export-openl3`` extra) and
openl3 are imported inside the functions, so importing this module needs none of them; without a
framework the entry points raise a UsageError naming the extra. openl3 is not pip-installable
offline: run ``scripts/get_openl3.py`` first (this module also looks in
``<repo>/.cache/openl3-src`` and ``$PQEVAL_OPENL3_SRC``). tf-keras is required: this module sets
``TF_USE_LEGACY_KERAS=1`` before TensorFlow is imported.
"""

from __future__ import annotations

import os
import warnings

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # openl3 0.4.2 / kapre 0.3.7 need tf-keras (Keras 2)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # CPU-only machines: no CUDA-probe noise
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)  # resampy 0.2.2

# E402: these imports must follow the environment setup above (TF reads TF_USE_LEGACY_KERAS at import).
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from pqeval.errors import ModelError, UsageError  # noqa: E402
from pqeval.integrity import sha256_file  # noqa: E402
from pqeval.openl3 import (  # noqa: E402
    CONTENT_TYPES,
    EMBEDDING_SIZES,
    FRAME_LENGTH,
    INPUT_NAME,
    INPUT_REPRS,
    OUTPUT_NAME,
    OpenL3Frontend,
    frontend_params,
)
from pqeval.registry import openl3_key  # noqa: E402

from .common import require, versions, write_onnx  # noqa: E402

OPSET = 17
MODEL_ID = "openl3"
OPENL3_VERSION = "0.4.2"
REPO_ROOT = Path(__file__).resolve().parents[2]
OPENL3_SRC_DIRS = (REPO_ROOT / ".cache" / "openl3-src",)
VERIFY_WINDOWS = 4  # waveform windows checked TF vs ORT at export
VERIFY_COSINE_MIN = 0.99999
VERIFY_REL_TOL = 1e-3  # max abs diff allowed, as a fraction of max |embedding|
SEED_ATTR = "pqeval_seeded"  # HDF5 root attribute marking a file written by make_seeded_weights
_WEIGHTS_NAME = re.compile(r"_(linear|mel128|mel256)_(music|env)(?:-[^/]*)?\.h5$")


model_key = openl3_key  # file stem of an exported model, e.g. ``openl3-mel256-music-512``


def weights_filename(input_repr: str, content_type: str) -> str:
    """Name openl3 gives the weight file of a variant (the content type is only in the name)."""
    return f"openl3_audio_{input_repr}_{content_type}.h5"


def _check_variant(input_repr: str, content_type: str, embedding_size: int) -> None:
    if input_repr not in INPUT_REPRS:
        raise UsageError(f"input_repr must be one of {', '.join(INPUT_REPRS)}, got {input_repr!r}")
    if content_type not in CONTENT_TYPES:
        raise UsageError(f"content_type must be one of {', '.join(CONTENT_TYPES)}, got {content_type!r}")
    if int(embedding_size) not in EMBEDDING_SIZES:
        raise UsageError(f"embedding_size must be one of {EMBEDDING_SIZES}, got {embedding_size!r}")


def import_openl3():
    """Import openl3 0.4.2 (and TensorFlow with tf-keras).

    UsageError naming the ``export-openl3`` extra if a framework is missing; ModelError with the
    fix if openl3 itself is not importable or is another version.
    """
    require("OpenL3", "tensorflow", "tf_keras")  # UsageError naming the export-openl3 extra
    import tensorflow as tf

    if not tf.keras.layers.Layer.__module__.startswith("tf_keras"):
        # tf.keras resolved to Keras 3: TensorFlow was imported before TF_USE_LEGACY_KERAS was set.
        raise ModelError(
            "tf.keras is Keras 3 here; openl3 needs tf-keras: install tf-keras and import "
            "pqeval_export.openl3 before tensorflow (it sets TF_USE_LEGACY_KERAS=1)"
        )
    require("OpenL3")  # the rest of the extra: kapre, resampy, h5py, scikit-learn, tf2onnx, onnx
    extra = [os.environ.get("PQEVAL_OPENL3_SRC", ""), *map(str, OPENL3_SRC_DIRS)]
    try:
        import openl3
    except ImportError:
        for d in extra:
            if d and (Path(d) / "openl3" / "__init__.py").is_file() and d not in sys.path:
                sys.path.append(d)
        try:
            import openl3
        except ImportError as e:
            raise ModelError(
                f"openl3 {OPENL3_VERSION} is not importable ({e}); run `python scripts/get_openl3.py` "
                "(pip cannot install it offline: its setup.py downloads weights)"
            ) from None
    import openl3.models

    if openl3.__version__ != OPENL3_VERSION:
        raise ModelError(f"openl3 {openl3.__version__} found, pqeval reproduces {OPENL3_VERSION}")
    return openl3


# --- weights ----------------------------------------------------------------------------------


def packaged_weights(input_repr: str, content_type: str) -> Path:
    """The weight file inside the installed openl3 package (exists only after a full install)."""
    openl3 = import_openl3()
    return Path(openl3.models.get_audio_embedding_model_path(input_repr, content_type))


def _h5_weight_shapes(path: Path) -> list[tuple[str, list[tuple[int, ...]]]]:
    """[(layer name, [weight shapes])] of the layers with weights in a Keras HDF5 weight/model file."""
    require("OpenL3", "h5py")
    import h5py

    def _s(v):
        return v.decode("utf8") if isinstance(v, bytes) else str(v)

    try:
        with h5py.File(path, "r") as f:
            # an h5py File, not a dict: keep the explicit membership test rather than File.get
            g = f["model_weights"] if "model_weights" in f else f  # noqa: SIM401
            if "layer_names" not in g.attrs:
                raise ModelError(f"{path}: not a Keras HDF5 weight file (no layer_names)")
            out = []
            for name in map(_s, g.attrs["layer_names"]):
                wn = [_s(w) for w in g[name].attrs.get("weight_names", [])]
                if wn:
                    out.append((name, [tuple(g[name][w].shape) for w in wn]))
            return out
    except ModelError:
        raise
    except (OSError, KeyError) as e:
        raise ModelError(f"{path}: cannot read it as a Keras HDF5 weight file ({e})") from None


def check_weights_file(path: str | Path, input_repr: str, content_type: str) -> None:
    """Refuse a weight file that is not an openl3 audio model of this variant, with the reason.

    Checks the openl3 naming convention (the content type is only recorded there) and every
    layer's weight shapes against ``_construct_<input_repr>_audio_network``.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    m = _WEIGHTS_NAME.search(path.name)
    if m and (m.group(1), m.group(2)) != (input_repr, content_type):
        raise ModelError(
            f"{path}: named for the {m.group(1)}/{m.group(2)} OpenL3 model, not {input_repr}/{content_type} "
            f"(expected a file named like {weights_filename(input_repr, content_type)})"
        )
    got = _h5_weight_shapes(path)
    openl3 = import_openl3()
    model = openl3.models.AUDIO_MODELS[input_repr](include_frontend=False)
    want = [(layer.name, [tuple(w.shape) for w in layer.weights]) for layer in model.layers if layer.weights]
    if len(got) != len(want):
        raise ModelError(
            f"{path}: wrong architecture for OpenL3 {input_repr}: the file has {len(got)} layers with "
            f"weights, the model {len(want)} (is it an OpenL3 audio model?)"
        )
    # strict: the lengths were checked equal just above
    for i, ((gname, gshapes), (wname, wshapes)) in enumerate(zip(got, want, strict=True)):
        if gshapes != wshapes:
            raise ModelError(
                f"{path}: wrong architecture for OpenL3 {input_repr}: layer {i} ({gname}) has weight shapes "
                f"{gshapes}, the model's {wname} needs {wshapes}"
            )


def make_seeded_weights(seed: int, input_repr: str, dest_dir: str | Path, content_type: str = "music") -> Path:
    """Random weights in openl3's architecture from a numpy seed, saved by Keras as ``.h5``.

    Conv kernels He-normal, biases and batch-norm parameters small random, the first batch
    norm's moving statistics set for a dB input in [-80, 0]. Returns the file path (named
    ``openl3_audio_<input_repr>_<content_type>-seeded<seed>.h5``, openl3's naming convention).
    """
    openl3 = import_openl3()
    rng = np.random.default_rng(seed)
    model = openl3.models.AUDIO_MODELS[input_repr](include_frontend=True)
    first_bn = True
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            k, b = layer.get_weights()
            fan_in = int(np.prod(k.shape[:3]))
            layer.set_weights(
                [
                    rng.normal(0.0, np.sqrt(2.0 / fan_in), k.shape).astype(np.float32),
                    rng.normal(0.0, 0.01, b.shape).astype(np.float32),
                ]
            )
        elif kind == "BatchNormalization":
            shape = layer.get_weights()[0].shape
            gamma = 1.0 + 0.1 * rng.standard_normal(shape)
            beta = 0.1 * rng.standard_normal(shape)
            if first_bn:
                mean, var = -40.0 + rng.normal(0, 2, shape), 400.0 * rng.uniform(0.8, 1.2, shape)
                first_bn = False
            else:
                mean, var = 0.1 * rng.standard_normal(shape), rng.uniform(0.5, 1.5, shape)
            layer.set_weights([a.astype(np.float32) for a in (gamma, beta, mean, var)])
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"openl3_audio_{input_repr}_{content_type}-seeded{seed}.h5"
    model.save_weights(str(path))
    import h5py

    with h5py.File(path, "a") as f:  # provenance travels with the file: see seed_of()
        f.attrs[SEED_ATTR] = int(seed)
    return path


def seed_of(path: str | Path) -> int | None:
    """The seed recorded by :func:`make_seeded_weights` in a weight file, or None (e.g. real weights)."""
    require("OpenL3", "h5py")
    import h5py

    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get(SEED_ATTR)
    except OSError:
        return None
    return None if v is None else int(v)


def weights_provenance(path: str | Path) -> str:
    """``seeded:<seed>`` for a file from make_seeded_weights, else ``pretrained:<file name> <sha256>``."""
    seed = seed_of(path)
    return f"seeded:{seed}" if seed is not None else f"pretrained:{Path(path).name} {sha256_file(path)}"


def load_keras_models(weights: str | Path, input_repr: str, content_type: str, embedding_size: int):
    """(kapre model [B,1,48000] -> [B,D], CNN model [B,F,T,1] -> [B,D]) with the file's weights.

    Both through ``openl3.models.load_audio_embedding_model_from_path`` (frontend 'kapre' and
    'librosa'). ModelError if the file does not fit the variant.
    """
    openl3 = import_openl3()
    check_weights_file(weights, input_repr, content_type)
    load = openl3.models.load_audio_embedding_model_from_path
    try:
        full = load(str(weights), input_repr, int(embedding_size), frontend="kapre")
        cnn = load(str(weights), input_repr, int(embedding_size), frontend="librosa")
    except (ValueError, OSError, KeyError) as e:
        raise ModelError(
            f"{weights}: cannot be loaded as OpenL3 {input_repr} weights ({str(e).splitlines()[0]})"
        ) from None
    return full, cnn


def kapre_spectrogram_model(full):
    """The kapre part of openl3's model: [B, 1, 48000] -> [B, F, T, 1] (the CNN's input)."""
    import tensorflow as tf

    return tf.keras.Model(full.input, full.layers[2].input)


# --- conversion and verification --------------------------------------------------------------


def convert_cnn(cnn, input_repr: str):
    """tf2onnx ``from_keras`` of the CNN: input ``spectrogram`` [B, F, T, 1], output ``embedding``."""
    import tensorflow as tf
    import tf2onnx

    shape = frontend_params(input_repr)["input_shape"]
    spec = (tf.TensorSpec((None, *shape), tf.float32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(cnn, input_signature=spec, opset=OPSET)
    graph = proto.graph
    (out,) = graph.output
    old = out.name
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if o == old else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == old else i for i in node.input]
    out.name = OUTPUT_NAME
    proto.graph.name = MODEL_ID
    return proto


def verify_windows(seed: int = 1234, n: int = VERIFY_WINDOWS) -> np.ndarray:
    """[n, 48000] float32 test windows: noise, a tone chord, a decaying click train, quiet noise.

    Each has a noise floor: on a noiseless synthetic tone, TF's float32 FFT noise (~1e-7 of the
    peak magnitude, i.e. about -70 dB on openl3's 10*log10(magnitude) scale) lands inside the
    80 dB range and no float64 frontend can reproduce it (measured: cosine 0.99994, linear).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(FRAME_LENGTH) / 48000.0
    kinds = [
        0.3 * rng.standard_normal(FRAME_LENGTH),
        0.2 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 1330 * t) + np.sin(2 * np.pi * 7000 * t))
        + 1e-3 * rng.standard_normal(FRAME_LENGTH),
        np.where(np.arange(FRAME_LENGTH) % 4800 < 48, 0.8, 0.0) * np.exp(-3 * t)
        + 1e-4 * rng.standard_normal(FRAME_LENGTH),
        1e-3 * rng.standard_normal(FRAME_LENGTH),
    ]
    return np.stack([kinds[i % len(kinds)] for i in range(n)]).astype(np.float32)


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    """max_abs_diff, its ratio to max |a|, and the smallest per-row cosine between a and b."""
    from pqeval.similarity import cosine_per_frame

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = cosine_per_frame(a, b)
    mad = float(np.abs(a - b).max())
    scale = float(np.abs(a).max())
    return {
        "max_abs_diff": mad,
        "max_abs_ref": scale,
        "rel_max_abs_diff": mad / scale if scale else mad,
        "cosine_min": float(cos.min()),
    }


def verify(proto, full, input_repr: str, windows: np.ndarray) -> dict:
    """openl3's kapre model in TF on ``windows`` vs ORT(CNN) on (a) kapre's and (b) pqeval's spectrogram."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = windows[:, None, :]
    ref = full.predict(x, verbose=0, batch_size=len(x))
    kapre_spec = kapre_spectrogram_model(full).predict(x, verbose=0, batch_size=len(x))
    ours_spec = OpenL3Frontend(input_repr)(windows)
    ort_kapre = sess.run([OUTPUT_NAME], {INPUT_NAME: kapre_spec})[0]
    ort_ours = sess.run([OUTPUT_NAME], {INPUT_NAME: ours_spec})[0]
    cnn = compare(ref, ort_kapre)
    end = compare(ref, ort_ours)
    return {
        "reference": f"openl3 {OPENL3_VERSION} kapre model (TF) on waveform windows",
        "n_windows": int(len(windows)),
        "max_abs_diff": cnn["max_abs_diff"],
        "rel_max_abs_diff": cnn["rel_max_abs_diff"],
        "cosine_min": cnn["cosine_min"],
        "frontend_max_abs_diff_db": float(np.abs(kapre_spec - ours_spec).max()),
        "numpy_frontend_cosine_min": end["cosine_min"],
        "numpy_frontend_rel_max_abs_diff": end["rel_max_abs_diff"],
    }


def export_openl3(
    input_repr: str = "mel256",
    content_type: str = "music",
    embedding_size: int = 512,
    weights: str | Path | None = None,
    seeded: int | None = None,
    out_dir: str | Path = "models",
) -> Path:
    """Build, convert, verify and write ``<out_dir>/openl3-<repr>-<content>-<size>.onnx``; return its path.

    weights: path to an openl3 ``.h5`` (default: the one inside the installed openl3 package);
    seeded: build seeded random weights instead (mutually exclusive with ``weights``).
    Raises ModelError for a missing/wrong weight file or a failed verification.
    """
    _check_variant(input_repr, content_type, embedding_size)
    embedding_size = int(embedding_size)
    if weights is not None and seeded is not None:
        raise UsageError("give either weights (a file) or seeded (a seed), not both")
    import_openl3()
    with tempfile.TemporaryDirectory(prefix="pqeval-openl3-") as tmp:
        if seeded is not None:
            path = make_seeded_weights(int(seeded), input_repr, tmp, content_type)
        else:
            path = Path(weights) if weights is not None else packaged_weights(input_repr, content_type)
            if not path.is_file():
                raise ModelError(
                    f"{path}: no such weights file (openl3 installed from source has no weights; pass "
                    f"--weights {weights_filename(input_repr, content_type)} or --seeded SEED)"
                )
        provenance = weights_provenance(path)  # the seed is recorded in a seeded file
        full, cnn = load_keras_models(path, input_repr, content_type, embedding_size)
        proto = convert_cnn(cnn, input_repr)
        check = verify(proto, full, input_repr, verify_windows())
    ok = (
        check["cosine_min"] >= VERIFY_COSINE_MIN
        and check["rel_max_abs_diff"] <= VERIFY_REL_TOL
        and check["numpy_frontend_cosine_min"] >= VERIFY_COSINE_MIN
    )
    if not ok:
        raise ModelError(
            f"OpenL3 {input_repr}/{content_type}/{embedding_size}: ONNX does not match TF ({json.dumps(check)})"
        )
    out = Path(out_dir) / f"{model_key(input_repr, content_type, embedding_size)}.onnx"
    vers = versions("tensorflow", "tf-keras", "kapre", "openl3", "tf2onnx", "onnx", "onnxruntime", "numpy")
    vers["openl3"] = OPENL3_VERSION  # source install: no distribution metadata
    write_onnx(
        proto,
        out,
        {
            "pqeval.model_id": MODEL_ID,
            "pqeval.variant": f"{input_repr}-{content_type}-{embedding_size}",
            "pqeval.weights": provenance,
            "pqeval.frontend": json.dumps(frontend_params(input_repr)),
            "pqeval.io": json.dumps({"input": INPUT_NAME, "output": OUTPUT_NAME, "embedding_size": embedding_size}),
            "pqeval.versions": json.dumps({**vers, "opset": OPSET}),
            "pqeval.verify": json.dumps(check),
        },
    )
    return out
