"""Export torchvggish 0.2 to ONNX with its PCA + 8-bit postprocessing, and verify it.

torch and torchvggish (the ``export-vggish`` extra) are imported inside the functions; without
them the entry points raise a UsageError naming the extra, and importing this module still works.

Weights come from (a) the upstream files by path, (b) a download of them (pinned URLs; the
8 hex digits in each name are the sha256 prefix that torch.hub checks, and we check them too),
or (c) seeded random weights: the torchvggish module initialised from a seed, saved with
``torch.save`` in the upstream format and loaded back through the same path as (a).

The ONNX graph takes examples [B, 1, 96, 64] float32 (dynamic B) and returns
``embedding_raw`` (pre final ReLU, = Google's TF VGGish), ``embedding`` (torchvggish's output
without postprocessing) and ``postprocessed`` (torchvggish's ``Postprocessor.postprocess``:
PCA, clip to [-2, 2], quantise to 0..255; kept as float32 like torchvggish).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pqeval.errors import ModelError
from pqeval.registry import VGGISH
from pqeval.vggish import FRONTEND_PARAMS, OUTPUTS, VGGishFrontend

from .common import require, versions, write_onnx

if TYPE_CHECKING:
    from collections.abc import Callable

VGGISH_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"
VGGISH_FILE = VGGISH_URL.rsplit("/", 1)[1]
PCA_FILE = PCA_URL.rsplit("/", 1)[1]
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")  # torch.hub's convention
SEEDED_NAME = re.compile(r"-seeded(\d+)-")  # files written by make_seeded_weights
OPSET = 18
MODEL_KEY = VGGISH.default_key
QUANT_MIN, QUANT_MAX = -2.0, 2.0


def hash_prefix(path: str | Path) -> str | None:
    """The sha256 prefix a torch.hub-style file name carries (``name-<hex>.pth``), if any."""
    m = HASH_IN_NAME.search(Path(path).name)
    return m.group(1) if m else None


def verify_file(path: str | Path) -> str:
    """Return the file's sha256; ModelError if missing or if it contradicts the prefix in its name."""
    from pqeval.integrity import sha256_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such weights file")
    digest = sha256_file(path)
    prefix = hash_prefix(path)
    if prefix and not digest.startswith(prefix):
        raise ModelError(
            f"{path}: sha256 {digest[:12]}… does not match the {prefix} in its name (corrupt or wrong file)"
        )
    return digest


def download(dest_dir: str | Path) -> tuple[Path, Path]:
    """Fetch the two upstream files into dest_dir (skipping ones already there), checking hash prefixes."""
    require("VGGish", "torch")
    import torch.hub

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for url in (VGGISH_URL, PCA_URL):
        p = dest / url.rsplit("/", 1)[1]
        if not p.exists():
            try:
                torch.hub.download_url_to_file(url, str(p), hash_prefix=hash_prefix(p), progress=True)
            except Exception as e:  # URLError, RuntimeError (hash), OSError
                raise ModelError(
                    f"cannot download {url} ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                    f"on an offline machine copy {p.name} here and pass --weights {dest}"
                ) from None
        out.append(p)
    return out[0], out[1]


def _torch_load(path: Path) -> dict:
    """torch.load with weights_only=True, allowing the numpy arrays the upstream PCA file holds."""
    import torch

    nd: list[Callable[..., Any] | tuple[Callable[..., Any], str]]
    nd = [np.ndarray, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32))]
    rec = np._core.multiarray._reconstruct  # type: ignore[attr-defined]  # private in numpy's stubs
    allowed = nd + [(rec, "numpy.core.multiarray._reconstruct"), (rec, "numpy._core.multiarray._reconstruct")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelError(f"{path}: not a loadable torch file ({str(e).splitlines()[0][:160]})") from None


def load_weights(vggish_path: str | Path, pca_path: str | Path):
    """Build torchvggish's VGG from the two files; return (model in eval mode, pca dict, provenance)."""
    require("VGGish", "torch", "torchvggish")
    import torchvggish.torchvggish as tv

    digests = {Path(p).name: verify_file(p) for p in (vggish_path, pca_path)}
    state = _torch_load(Path(vggish_path))
    model = tv._vgg(postprocess=False)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ModelError(f"{vggish_path}: not a torchvggish state dict ({str(e).splitlines()[0][:160]})") from None
    pca = _torch_load(Path(pca_path))
    try:
        pca = {
            "pca_eigen_vectors": np.asarray(pca["pca_eigen_vectors"], dtype=np.float64).reshape(128, 128),
            "pca_means": np.asarray(pca["pca_means"], dtype=np.float64).reshape(128),
        }
    except (KeyError, ValueError, TypeError) as e:
        raise ModelError(f"{pca_path}: not torchvggish PCA parameters ({e})") from None
    return model.eval(), pca, provenance(digests)


def provenance(digests: dict[str, str]) -> str:
    """The ``pqeval.weights`` string: pretrained only if both files carry the upstream hash prefixes.

    Seeded files (named by make_seeded_weights) give ``seeded:<seed>``; anything else is
    ``custom:<files>``, which is not presented as VGGish either.
    """
    vggish_prefix, pca_prefix = hash_prefix(VGGISH_FILE), hash_prefix(PCA_FILE)
    assert vggish_prefix is not None and pca_prefix is not None  # the pinned upstream names carry one
    upstream = (vggish_prefix, pca_prefix)
    listing = "; ".join(f"{n} {d}" for n, d in digests.items())
    if sorted(d[:8] for d in digests.values()) == sorted(upstream):
        return f"pretrained:{listing}"
    seeds = {m.group(1) for n in digests if (m := SEEDED_NAME.search(n))}
    if len(seeds) == 1 and len(digests) == 2 and all(SEEDED_NAME.search(n) for n in digests):
        return f"seeded:{seeds.pop()}"
    return f"custom:{listing}"


def torchvggish_postprocessor(pca: dict):
    """torchvggish's own Postprocessor, given the PCA params (its __init__ would download them)."""
    import torch
    import torchvggish.torchvggish as tv

    p = object.__new__(tv.Postprocessor)
    p._pca_matrix = torch.as_tensor(pca["pca_eigen_vectors"]).float()
    p._pca_means = torch.as_tensor(pca["pca_means"].reshape(-1, 1)).float()
    return p


def reference_model(model, pca: dict):
    """torchvggish's VGG with its postprocessing on: the exact original forward path."""
    model.postprocess = True
    model.pproc = torchvggish_postprocessor(pca)
    return model


def synthetic_examples(seed: int, n: int = 8) -> np.ndarray:
    """Deterministic test input: log-mel examples [n, 96, 64] of a chirp plus seeded noise at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * 0.96 * n + 400)) / 16000
    x = 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t) + 0.05 * rng.standard_normal(len(t))
    return np.ascontiguousarray(VGGishFrontend().examples(x, 16000))


def make_seeded_weights(seed: int, dest_dir: str | Path) -> tuple[Path, Path]:
    """Write seeded torchvggish weights in the upstream file formats; return (vggish, pca) paths.

    The network gets He-normal weights and small normal biases under ``torch.manual_seed(seed)``
    (PyTorch's default initialisation shrinks activations ~3x per layer, leaving embeddings near
    1e-5, too small for a meaningful parity test); the PCA is a seeded random rotation, centred and scaled
    on the network's output for synthetic audio so that the 8-bit outputs spread over 0..255 instead of saturating.
    """
    require("VGGish", "torch", "torchvggish")
    import torch
    import torchvggish.torchvggish as tv

    from pqeval.integrity import sha256_file

    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = tv._vgg(postprocess=False).eval()
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            assert m.bias is not None  # torchvggish's conv and linear layers all have biases
            torch.nn.init.normal_(m.bias, std=0.01)
    with torch.no_grad():
        emb = model(torch.from_numpy(synthetic_examples(seed + 1, 16)[:, None].astype(np.float32))).double().numpy()
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    scale = 1.0 / max(float((emb - emb.mean(0)).std()), 1e-12)
    pca = {"pca_eigen_vectors": q * scale, "pca_means": emb.mean(0)}

    paths = []
    for stem, obj in (("vggish", model.state_dict()), ("vggish_pca_params", pca)):
        tmp = dest / f"{stem}-seeded{seed}.pth"
        torch.save(obj, tmp)
        final = dest / f"{stem}-seeded{seed}-{sha256_file(tmp)[:8]}.pth"
        tmp.replace(final)
        paths.append(final)
    return paths[0], paths[1]


def export_module(model, pca: dict):
    """A torch module computing the three ONNX outputs from examples [B, 1, 96, 64]."""
    import torch

    class VGGishExport(torch.nn.Module):
        pca_matrix: torch.Tensor  # buffers, registered in __init__
        pca_means: torch.Tensor

        def __init__(self):
            super().__init__()
            self.features = model.features
            self.fc = model.embeddings[:-1]  # everything up to the final ReLU
            self.register_buffer("pca_matrix", torch.as_tensor(pca["pca_eigen_vectors"]).float())
            self.register_buffer("pca_means", torch.as_tensor(pca["pca_means"].reshape(1, -1)).float())

        def forward(self, x):
            x = self.features(x)
            x = torch.transpose(x, 1, 3)
            x = torch.transpose(x, 1, 2)
            raw = self.fc(x.reshape(x.shape[0], -1))
            emb = torch.relu(raw)
            pca_applied = torch.matmul(emb - self.pca_means, self.pca_matrix.t())
            clipped = torch.clamp(pca_applied, QUANT_MIN, QUANT_MAX)
            quant = torch.round((clipped - QUANT_MIN) * (255.0 / (QUANT_MAX - QUANT_MIN)))
            return quant, emb, raw

    return VGGishExport().eval()


def verify(onnx_path: Path, model, pca: dict, examples: np.ndarray) -> dict:
    """Compare ORT on the exported file with torchvggish's own forward (postprocessing included)."""
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip(OUTPUTS, sess.run(list(OUTPUTS), {"examples": examples[:, None].astype(np.float32)}), strict=True))
    x = torch.from_numpy(examples[:, None].astype(np.float32))
    with torch.no_grad():
        model.postprocess = False
        emb = model(x).numpy()
        ref = reference_model(model, pca)
        post = ref(x).reshape(len(x), -1).numpy()
        model.postprocess = False
    e = got["embedding"]
    cos = (e * emb).sum(1) / np.maximum(np.linalg.norm(e, axis=1) * np.linalg.norm(emb, axis=1), 1e-30)
    return {
        "reference": f"torchvggish {versions('torchvggish').get('torchvggish')} on torch {torch.__version__}",
        "n_examples": int(len(x)),
        "max_abs_diff": float(np.abs(e - emb).max()),
        "max_abs_embedding": float(np.abs(emb).max()),
        "cosine_min": float(cos.min()),
        "postprocessed_differing": int((got["postprocessed"] != post).sum()),
        "postprocessed_total": int(post.size),
    }


def export_vggish(
    weights: str | Path | None = None,
    seeded: int | None = None,
    download_to: str | Path | None = None,
    out_dir: str | Path = "models",
) -> tuple[Path, dict]:
    """Export VGGish to ``out_dir/vggish.onnx``; return (path, verification numbers).

    weights: a directory holding the two upstream files, or the vggish .pth whose PCA file sits
    beside it. seeded: build from seeded random weights instead. download_to: fetch the upstream
    files into this directory first. UsageError naming the ``export-vggish`` extra if torch,
    torchvggish, onnx or onnxscript cannot be imported.
    """
    require("VGGish")
    import torch

    if sum(x is not None for x in (weights, seeded, download_to)) != 1:
        raise ModelError("choose exactly one weight source: --weights PATH, --download or --seeded N")
    with tempfile.TemporaryDirectory() as tmp:
        if seeded is not None:
            vpath, ppath = make_seeded_weights(seeded, tmp)
        elif download_to is not None:
            vpath, ppath = download(download_to)
        else:
            assert weights is not None  # exactly one source is set (checked above)
            vpath, ppath = _locate(Path(weights))
        model, pca, source = load_weights(vpath, ppath)

        out = Path(out_dir) / f"{MODEL_KEY}.onnx"
        raw = Path(tmp) / "vggish.onnx"
        x = torch.zeros(2, 1, 96, 64)
        torch.onnx.export(
            export_module(model, pca),
            (x,),
            str(raw),
            input_names=["examples"],
            output_names=list(OUTPUTS),
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
            external_data=False,
        )
        check = verify(raw, model, pca, synthetic_examples(1234, 6))
        import onnx

        proto = onnx.load(str(raw))
        meta = {
            "pqeval.model_id": MODEL_KEY,
            "pqeval.variant": "torchvggish-0.2",
            "pqeval.weights": source,
            "pqeval.frontend": json.dumps(FRONTEND_PARAMS),
            "pqeval.outputs": json.dumps(
                {
                    "postprocessed": "torchvggish vggish() output: PCA + 8-bit quantised (0..255), default",
                    "embedding": "after the final ReLU (torchvggish, issue #24)",
                    "embedding_raw": "before the final ReLU (Google TF VGGish)",
                }
            ),
            "pqeval.versions": json.dumps(
                {**versions("torch", "torchvggish", "onnx", "onnxscript", "onnxruntime"), "opset": OPSET}
            ),
            "pqeval.verify": json.dumps(check),
        }
        write_onnx(proto, out, meta, external_data=True)  # 289 MB of weights: mapped, not parsed, at load
    return out, check


def _locate(p: Path) -> tuple[Path, Path]:
    """(vggish, pca) files from a directory or from the vggish file (PCA file beside it)."""
    d = p if p.is_dir() else p.parent
    if not d.exists():
        raise ModelError(f"{p}: no such file or directory")
    v = [p] if p.is_file() else sorted(d.glob("vggish-*.pth"))
    c = sorted(d.glob("vggish_pca_params-*.pth"))
    if not v or not c:
        raise ModelError(f"{d}: expected {VGGISH_FILE} and {PCA_FILE} there")
    return v[0], c[0]
