"""The one list of what pqeval can score with: embedding families, their model variants, metrics.

Adding a model means adding an entry here (and its embedder module); the CLI's choices, the
missing-model hint, ``pqeval bench``, scoring and the report read these descriptions.

A *family* is a metric name the user picks (``vggish``, ``openl3``); a *model* is one exported
file of that family, named by its key (``vggish``, ``openl3-mel256-music-512``, and compact
variants ``<key>-<kind>`` such as ``vggish-int8fc``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import product

from .errors import UsageError


@dataclass(frozen=True)
class Family:
    """An embedding family: one metric, one embedder, many exportable variants.

    name: metric and ``--model`` name; default_key: the model file scored unless told otherwise;
    embedder: ``module:Class`` of the embedder (imported on first use); sample_rate: Hz the model
    runs at; min_seconds: shortest clip (at the model's rate) that gives a frame; unit: what one
    embedding frame is; compact_kinds: compact variants ``pqeval export --compact`` can write;
    int8_kind: the compact variant ``--precision int8`` scores with (``<key>-<int8_kind>``).
    """

    name: str
    default_key: str
    embedder: str
    sample_rate: int
    min_seconds: float
    unit: str
    compact_kinds: tuple[str, ...]
    description: str
    weights_license: str
    weights_attribution: str
    int8_kind: str = ""


@dataclass(frozen=True)
class Engine:
    """An inference engine that runs the exported ONNX files.

    name: ``--engine`` value; module: what must be importable; extra: the pip extra that installs
    it; precisions: the ``--precision`` values it offers (others are refused, with why in
    ``refusals``).
    """

    name: str
    module: str
    extra: str
    precisions: tuple[str, ...]
    refusals: dict[str, str]
    description: str


@dataclass(frozen=True)
class ModelSpec:
    """One exportable model file (before any compact variant).

    key: file stem (``<key>.onnx``); export: the ``pqeval export`` arguments that write it;
    gflop_per_unit: inference cost of one example / window counted from the ONNX graph by
    ``bench/flops.py`` (None where not counted).
    """

    key: str
    family: str
    export: str
    gflop_per_unit: float | None = None


# --- embedding families ---------------------------------------------------------------------

VGGISH = Family(
    name="vggish",
    default_key="vggish",
    embedder="pqeval.vggish:VGGishEmbedder",
    sample_rate=16000,
    min_seconds=0.975,
    unit="0.96 s example",
    compact_kinds=("int8fc", "fp16"),
    int8_kind="int8fc",
    description="torchvggish 0.2 (Hershey et al. 2017), 128-d per 0.96 s example",
    weights_license="Apache-2.0 (AudioSet VGGish, tensorflow/models; torchvggish port)",
    weights_attribution=(
        "Source: Google's AudioSet VGGish (https://github.com/tensorflow/models/tree/master/research/audioset/vggish)"
        " as ported to PyTorch by torchvggish (https://github.com/harritaylor/torchvggish), release v0.1 files"
        " vggish-10086976.pth and vggish_pca_params-970ea276.pth.\n"
        "Licence: Apache License 2.0, https://www.apache.org/licenses/LICENSE-2.0\n"
        "Changes: converted to ONNX by pqeval (PCA and 8-bit post-processing in the graph).\n"
        "Cite: S. Hershey et al., CNN Architectures for Large-Scale Audio Classification, ICASSP 2017."
    ),
)
OPENL3 = Family(
    name="openl3",
    default_key="openl3-mel256-music-512",
    embedder="pqeval.openl3:OpenL3Embedder",
    sample_rate=48000,
    min_seconds=1.0,
    unit="1 s window",
    compact_kinds=("int8qdq",),
    int8_kind="int8qdq",
    description="openl3 0.4.2 (Cramer et al. 2019), kapre frontend, 512 or 6144-d per 1 s window",
    weights_license="CC-BY-4.0 (marl/openl3 model weights; attribution: Cramer et al. 2019)",
    weights_attribution=(
        "Creators: A. Cramer, H.-H. Wu, J. Salamon, J. P. Bello, Look, Listen and Learn More: Design Choices"
        " for Deep Audio Embeddings, ICASSP 2019.\n"
        "Source: https://github.com/marl/openl3 (openl3 0.4.2 audio model weights, openl3_audio_<repr>_<content>.h5).\n"
        "Licence: Creative Commons Attribution 4.0 International (CC BY 4.0),"
        " https://creativecommons.org/licenses/by/4.0/ ; provided as is, without warranties.\n"
        "Changes: the audio CNN converted from Keras HDF5 to ONNX with tf2onnx by pqeval; the kapre"
        " spectrogram frontend reimplemented in numpy."
    ),
)
FAMILIES: dict[str, Family] = {f.name: f for f in (VGGISH, OPENL3)}

# --- inference engines and precisions ----------------------------------------------------------

#: ``--precision`` values: fp32 (the exported model as it is), bf16 (OpenVINO's bf16 inference on
#: CPUs with AVX512_BF16 / AMX-BF16), int8 (the family's int8 compact variant, ``<key>-<int8_kind>``).
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
ENGINES: dict[str, Engine] = {
    e.name: e
    for e in (
        Engine(
            name="ort",
            module="onnxruntime",
            extra="",
            precisions=("fp32", "int8"),
            refusals={
                "bf16": "ONNX Runtime's CPU provider has no bf16 kernels for these models; use --engine openvino"
            },
            description="ONNX Runtime, CPU execution provider (MLAS); fp32 is the parity reference",
        ),
        Engine(
            name="openvino",
            module="openvino",
            extra="openvino",
            precisions=("fp32", "bf16", "int8"),
            refusals={},
            description="OpenVINO CPU runtime (oneDNN); reads the same ONNX files, compiled models cached",
        ),
    )
}
DEFAULT_ENGINE = "ort"
DEFAULT_PRECISION = "fp32"


@dataclass(frozen=True)
class Accuracy:
    """The agreement with ONNX Runtime fp32 that a fast path guarantees for one family, checked by
    tests/test_precision.py on a fixed clip: per-frame cosine at least ``cosine_min``, a change in
    the clean-vs-degraded score of at most ``score_delta_max``, and (VGGish) at most
    ``changed_8bit_max`` of the 8-bit postprocessed values changed. Bounds sit a margin outside
    what ``bench/accuracy.py`` measured (bench/results/accuracy.md; docs/engines.md)."""

    cosine_min: float
    score_delta_max: float
    changed_8bit_max: float = 1.0


#: (family, engine, precision) -> its guaranteed accuracy. A pair this machine can run that is
#: missing here is one the engine refuses for that family (OpenVINO runs VGGish's int8fc fully
#: connected layers in fp32, so ``--engine openvino --precision int8`` refuses VGGish).
ACCURACY: dict[tuple[str, str, str], Accuracy] = {
    ("vggish", "openvino", "fp32"): Accuracy(cosine_min=0.99999, score_delta_max=1e-4, changed_8bit_max=0.01),
    ("openl3", "openvino", "fp32"): Accuracy(cosine_min=0.99999, score_delta_max=1e-5),
    ("vggish", "ort", "int8"): Accuracy(cosine_min=0.999, score_delta_max=1e-2, changed_8bit_max=0.8),
    ("openl3", "ort", "int8"): Accuracy(cosine_min=0.99, score_delta_max=1e-2),
    ("openl3", "openvino", "int8"): Accuracy(cosine_min=0.999, score_delta_max=2e-3),
    ("vggish", "openvino", "bf16"): Accuracy(cosine_min=0.9999, score_delta_max=1e-2, changed_8bit_max=0.8),
    ("openl3", "openvino", "bf16"): Accuracy(cosine_min=0.9999, score_delta_max=1e-3),
}

OPENL3_INPUT_REPRS: tuple[str, ...] = ("linear", "mel128", "mel256")
OPENL3_CONTENT_TYPES: tuple[str, ...] = ("music", "env")
OPENL3_EMBEDDING_SIZES: tuple[int, ...] = (512, 6144)
#: Seconds between OpenL3 windows unless told otherwise (openl3's own default, 0.1 s, costs 5×).
DEFAULT_HOP = 0.5
#: openl3's own default hop (s), what the original study used.
OPENL3_NATIVE_HOP = 0.1


def openl3_key(input_repr: str, content_type: str, embedding_size: int) -> str:
    """File stem of an OpenL3 variant, e.g. ``openl3-mel256-music-512``."""
    return f"openl3-{input_repr}-{content_type}-{embedding_size}"


def _openl3_specs() -> list[ModelSpec]:
    gflop = {"mel256": 20.405}  # mel128 / linear not counted
    return [
        ModelSpec(
            openl3_key(r, c, s),
            "openl3",
            f"pqeval export openl3 --input-repr {r} --content-type {c} --embedding-size {s}",
            gflop.get(r),
        )
        for r, c, s in product(OPENL3_INPUT_REPRS, OPENL3_CONTENT_TYPES, OPENL3_EMBEDDING_SIZES)
    ]


MODELS: dict[str, ModelSpec] = {
    m.key: m for m in [ModelSpec("vggish", "vggish", "pqeval export vggish", 1.728), *_openl3_specs()]
}

#: Resampler generations (pqeval.resample.FILTERS) VGGish can reproduce: torchvggish beside resampy
#: 0.2.x (the environment openl3 0.4.2 pins, the study's; default) or beside resampy >= 0.3 (a plain
#: ``pip install torchvggish`` today). OpenL3 always uses 0.2.x, as openl3 0.4.2 requires.
VGGISH_RESAMPLERS: tuple[str, ...] = ("kaiser_best_0.2", "kaiser_best_0.3")

#: VGGish outputs a score can use: torchvggish's 8-bit PCA output (what the study used), the
#: 128-d embedding after the final ReLU that torchvggish adds, and before it (Google's TF VGGish).
VGGISH_OUTPUTS: tuple[str, ...] = ("postprocessed", "embedding", "embedding_raw")

#: Licence recorded for weights that are not the published ones.
SEEDED_WEIGHTS_LICENSE = "MIT (seeded random weights made by pqeval; no third-party weights)"
CUSTOM_WEIGHTS_LICENSE = "unknown (custom weights: as supplied to the exporter)"

#: The model bundle ``pqeval models install`` uses when given no source and ``$PQEVAL_MODEL_SOURCE``
#: is unset, as ``"https://…/bundle.zip#sha256=<hex>"``. None until a bundle of the published
#: weights is released (docs/releasing.md): nothing can be published from a machine without network.
DEFAULT_MODEL_SOURCE: str | None = None

# --- metrics --------------------------------------------------------------------------------

EMBEDDING_METRICS: tuple[str, ...] = tuple(FAMILIES)
CLASSIC_METRICS: tuple[str, ...] = ("pesq_wb", "pesq_nb", "stoi", "estoi")
ALL_METRICS: tuple[str, ...] = EMBEDDING_METRICS + CLASSIC_METRICS
DEFAULT_METRICS: tuple[str, ...] = ("vggish", "openl3", "pesq_wb", "stoi", "estoi")
#: Metrics defined for speech only: a warning goes with them on content classified as music.
SPEECH_METRICS: tuple[str, ...] = CLASSIC_METRICS

METRIC_LABELS: dict[str, str] = {
    "vggish": "VGGish cosine",
    "openl3": "OpenL3 cosine",
    "pesq_wb": "PESQ-WB",
    "pesq_nb": "PESQ-NB",
    "stoi": "STOI",
    "estoi": "ESTOI",
}
METRIC_UNITS: dict[str, str] = {
    "vggish": "cosine similarity (−1…1)",
    "openl3": "cosine similarity (−1…1)",
    "pesq_wb": "MOS-LQO (1…4.64)",
    "pesq_nb": "MOS-LQO (1…4.55)",
    "stoi": "intelligibility (0…1)",
    "estoi": "intelligibility (0…1)",
}
#: The range a metric can take (lower, upper), for axes and sanity checks.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "vggish": (-1.0, 1.0),
    "openl3": (-1.0, 1.0),
    "pesq_wb": (1.0, 4.64),
    "pesq_nb": (1.0, 4.55),
    "stoi": (0.0, 1.0),
    "estoi": (0.0, 1.0),
}

_COMPACT = re.compile(r"^(?P<base>.+)-(?P<kind>[a-z0-9]+)$")


def available() -> list[dict]:
    """Every model the registry can export: key, family, what one frame is, the export command."""
    return [
        {
            "key": m.key,
            "family": m.family,
            "description": FAMILIES[m.family].description,
            "sample_rate": FAMILIES[m.family].sample_rate,
            "frame": FAMILIES[m.family].unit,
            "min_seconds": FAMILIES[m.family].min_seconds,
            "compact_kinds": list(FAMILIES[m.family].compact_kinds),
            "default": m.key == FAMILIES[m.family].default_key,
            "export": m.export,
        }
        for m in MODELS.values()
    ]


def base_spec(key: str) -> ModelSpec | None:
    """The exportable model a key names, itself or as a compact variant (None if neither)."""
    if key in MODELS:
        return MODELS[key]
    m = _COMPACT.match(key)
    if m and m["base"] in MODELS and m["kind"] in FAMILIES[MODELS[m["base"]].family].compact_kinds:
        return MODELS[m["base"]]
    return None


def export_hint(key: str) -> str:
    """The command that writes model ``key`` (with --weights; --seeded for a test model)."""
    spec = base_spec(key)
    if spec is None:
        return f"pqeval export {key.split('-', 1)[0]} --weights FILE"
    weights = "DIR" if spec.family == "vggish" else "FILE"
    cmd = f"{spec.export} --weights {weights}"
    if spec.key != key:
        cmd += f" --compact {key[len(spec.key) + 1 :]}"
    return cmd


def gflop_per_unit(key: str) -> float | None:
    """Inference GFLOP per example / window of model ``key`` (compact variants: their base's)."""
    spec = base_spec(key)
    return spec.gflop_per_unit if spec else None


def parse_list(text: str) -> tuple[str, ...]:
    """``"a, b,a"`` -> ``("a", "b")``: comma-separated, stripped, first occurrence kept."""
    return tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))


def check_names(names: tuple[str, ...], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``names`` unchanged, or UsageError listing the unknown ones and the choices."""
    bad = [n for n in names if n not in allowed]
    if bad:
        raise UsageError(f"unknown {what}(s) {', '.join(bad)}; choose from {', '.join(allowed)}")
    return names
