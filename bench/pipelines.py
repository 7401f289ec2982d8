"""The pipelines compared: the original frameworks and pqeval's runtime, behind one interface.

Each pipeline has ``imports()`` (what a user's process imports), ``load()`` (model build / file
load), ``embed(x, sr)`` (waveform -> embeddings, the full pipeline) and ``inference_only(x, sr)``
(returns (seconds spent in the network, number of examples/windows)). pqeval's pipelines also
have ``stages(x, sr)`` (seconds in resampling, frontend and inference).

Originals, as their users call them:
* torchvggish 0.2: ``vggish_input.waveform_to_examples(x, sr)`` then the VGG module with
  torchvggish's PCA + 8-bit postprocessing (weights from the seeded ``.pth`` files by torch.load).
* openl3 0.4.2: ``openl3.get_audio_embedding(x, sr, model=..., hop_size=h)`` (kapre frontend,
  centre padding, batch 32) with the model from ``load_audio_embedding_model_from_path``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def now() -> float:
    return time.perf_counter()


class Pipeline:
    """Common interface; ``kind`` is "vggish" or "openl3", ``family`` "original" or "ours"."""

    kind = ""
    family = ""

    def __init__(self, work: Path, threads: int, hop: float, variant: str = "") -> None:
        self.work, self.threads, self.hop, self.variant = Path(work), threads, hop, variant
        self.load_detail: dict = {}


# --- originals ---------------------------------------------------------------------------------


class TorchVGGish(Pipeline):
    kind, family = "vggish", "original"

    def imports(self) -> None:
        import torch
        import torchvggish.torchvggish
        import torchvggish.vggish_input  # noqa: F401

        torch.set_num_threads(self.threads)

    def load(self) -> None:
        import torch
        import torchvggish.torchvggish as tv

        wdir = self.work / "weights"
        vpath = next(wdir.glob("vggish-seeded*.pth"))
        ppath = next(wdir.glob("vggish_pca_params-seeded*.pth"))
        nd = [np.ndarray, np.dtype, type(np.dtype(np.float64)), type(np.dtype(np.float32))]
        rec = np._core.multiarray._reconstruct
        with torch.serialization.safe_globals(
            nd + [(rec, "numpy.core.multiarray._reconstruct"), (rec, "numpy._core.multiarray._reconstruct")]
        ):
            state = torch.load(str(vpath), map_location="cpu", weights_only=True)
            pca = torch.load(str(ppath), map_location="cpu", weights_only=True)
        model = tv._vgg(postprocess=False)
        model.load_state_dict(state)
        p = object.__new__(tv.Postprocessor)
        p._pca_matrix = torch.as_tensor(np.asarray(pca["pca_eigen_vectors"]).reshape(128, 128)).float()
        p._pca_means = torch.as_tensor(np.asarray(pca["pca_means"]).reshape(-1, 1)).float()
        model.postprocess, model.pproc = True, p
        self.model = model.eval()

    def embed(self, x: np.ndarray, sr: int) -> np.ndarray:
        import torch
        from torchvggish.vggish_input import waveform_to_examples

        ex = waveform_to_examples(x, sr, return_tensor=True)
        with torch.no_grad():
            return self.model(ex).numpy()

    def inference_only(self, x: np.ndarray, sr: int) -> tuple[float, int]:
        import torch
        from torchvggish.vggish_input import waveform_to_examples

        ex = waveform_to_examples(x, sr, return_tensor=True)
        t = now()
        with torch.no_grad():
            self.model(ex)
        return now() - t, len(ex)


class KerasOpenL3(Pipeline):
    kind, family = "openl3", "original"

    def imports(self) -> None:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(self.threads)
        import openl3
        import openl3.models  # noqa: F401

    def load(self) -> None:
        import openl3

        h5 = next((self.work / "weights").glob("openl3_audio_mel256_music-seeded*.h5"))
        self.model = openl3.models.load_audio_embedding_model_from_path(str(h5), "mel256", 512, frontend="kapre")

    def embed(self, x: np.ndarray, sr: int) -> np.ndarray:
        import openl3

        emb, _ = openl3.get_audio_embedding(x, sr, model=self.model, hop_size=self.hop, verbose=False)
        return emb

    def inference_only(self, x: np.ndarray, sr: int) -> tuple[float, int]:
        """model.predict on windows (kapre spectrogram + CNN, batch 32 as openl3), after resampling."""
        from pqeval.openl3 import cut_windows, num_windows, resample_to_48k

        x48 = resample_to_48k(x, sr)
        n = num_windows(len(x48), self.hop)
        w = cut_windows(x48, 0, n, self.hop)[:, None, :]
        t = now()
        self.model.predict(w, batch_size=32, verbose=0)
        return now() - t, n


# --- ours --------------------------------------------------------------------------------------


def blas_single_thread():
    from pqeval.threads import blas_single_thread as limit

    return limit()


class Ours(Pipeline):
    """pqeval; ``variant`` is a compact variant (``int8fc``) or ``@ENGINE-PRECISION``
    (``@openvino-bf16``; int8 runs the family's int8 compact variant, as ``--precision int8``)."""

    family = "ours"
    key = ""

    @property
    def engine_precision(self) -> tuple[str, str]:
        if self.variant.startswith("@"):
            engine, precision = self.variant[1:].split("-")
            return engine, precision
        return "ort", "fp32"

    def model_path(self) -> Path:
        from pqeval.registry import FAMILIES

        variant = self.variant
        if variant.startswith("@"):
            variant = FAMILIES[self.kind].int8_kind if self.engine_precision[1] == "int8" else ""
        stem = self.key + (f"-{variant}" if variant else "")
        return self.work / "models" / f"{stem}.onnx"

    def load(self) -> None:
        """As ``pqeval score``: check the file's sha256 against its sidecar, then create the session."""
        from pqeval.session import OnnxModel

        engine, precision = self.engine_precision
        self.model = OnnxModel(self.model_path(), self.threads, verify=False, engine=engine, precision=precision)
        t = now()
        self.model.check_integrity()
        t1 = now()
        self.model.session  # noqa: B018 - the lazy session is what costs
        self.load_detail = {"verify_sha256_s": t1 - t, "session_s": now() - t1}
        self.embedder = self.make_embedder()

    def embed(self, x: np.ndarray, sr: int) -> np.ndarray:
        return self.embedder.embed(x, sr).frames

    def stages(self, x: np.ndarray, sr: int) -> dict:
        """Seconds in resampling, frontend and inference (and the unit count), timed apart."""
        with blas_single_thread():  # as the embedders run them
            return self._stages(x, sr)

    def inference_only(self, x: np.ndarray, sr: int) -> tuple[float, int]:
        s = self.stages(x, sr)
        return s["inference"], s["units"]


class OursVGGish(Ours):
    kind, key = "vggish", "vggish"

    def imports(self) -> None:
        import pqeval.audio
        import pqeval.session
        import pqeval.vggish  # noqa: F401

    def make_embedder(self):
        from pqeval.vggish import VGGishEmbedder

        return VGGishEmbedder(self.model)

    def _stages(self, x: np.ndarray, sr: int) -> dict:
        from pqeval.resample import resample
        from pqeval.vggish import SAMPLE_RATE

        e = self.embedder
        t0 = now()
        x16 = resample(x, sr, SAMPLE_RATE, filter=e.frontend.resampler) if sr != SAMPLE_RATE else x
        t1 = now()
        ex = e.frontend.examples(x16, SAMPLE_RATE)
        t2 = now()
        e.run_examples(ex)
        t3 = now()
        return {"resample": t1 - t0, "frontend": t2 - t1, "inference": t3 - t2, "units": len(ex)}


class OursOpenL3(Ours):
    kind, key = "openl3", "openl3-mel256-music-512"

    def imports(self) -> None:
        import pqeval.audio
        import pqeval.openl3
        import pqeval.session  # noqa: F401

    def make_embedder(self):
        from pqeval.openl3 import OpenL3Embedder

        return OpenL3Embedder(self.model, hop=self.hop)

    def _stages(self, x: np.ndarray, sr: int) -> dict:
        from pqeval.openl3 import INPUT_NAME, cut_windows, num_windows, resample_to_48k

        e = self.embedder
        t_fe = t_inf = 0.0
        t = now()
        x48 = resample_to_48k(x, sr)
        t_res = now() - t
        n = num_windows(len(x48), e.hop)
        for first in range(0, n, e.batch_size):
            t = now()
            spec = e.frontend(cut_windows(x48, first, min(e.batch_size, n - first), e.hop))
            t1 = now()
            e.model.run({INPUT_NAME: spec})
            t_fe += t1 - t
            t_inf += now() - t1
        return {"resample": t_res, "frontend": t_fe, "inference": t_inf, "units": n}


PIPELINES = {
    "torchvggish": TorchVGGish,
    "openl3-tf": KerasOpenL3,
    "pqeval-vggish": OursVGGish,
    "pqeval-openl3": OursOpenL3,
}


BLAS1 = "blas1"  # an original run with numpy's OpenBLAS held to one thread (run.py sets the env)


def make(name: str, work: Path, threads: int, hop: float) -> Pipeline:
    """``pqeval-vggish-int8fc`` -> OursVGGish with variant int8fc, ``pqeval-openl3@openvino-bf16``
    -> OursOpenL3 on OpenVINO in bf16; originals by their names, and ``torchvggish-blas1`` /
    ``openl3-tf-blas1`` for them with OPENBLAS_NUM_THREADS=1."""
    for base, cls in PIPELINES.items():
        if cls.family == "ours" and name.startswith(base + "@"):
            return cls(work, threads, hop, name[len(base) :])
        if name == base or (name.startswith(base + "-") and (cls.family == "ours" or name == f"{base}-{BLAS1}")):
            return cls(work, threads, hop, name[len(base) + 1 :])
    raise ValueError(f"unknown pipeline {name!r}")
