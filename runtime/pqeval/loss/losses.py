"""Differentiable perceptual losses on pqeval's VGGish / OpenL3 embeddings.

:class:`EmbeddingLoss` is pqeval's embedding score as a loss: the same frames (VGGish 0.96 s
examples, OpenL3 1 s windows every ``hop`` s), the same resampler, the same weights (read from
the exported ONNX file the evaluator runs), so ``1 - EmbeddingLoss(...)(estimate, reference)``
with the cosine distance is ``pqeval.score(reference, estimate, vggish_output="embedding")``'s
VGGish score (or the OpenL3 score at the same hop), up to float rounding. :class:`FeatureLoss`
is the deep-feature loss of Germain, Chen and Koltun (Interspeech 2019): weighted distances
between intermediate CNN activations.

Both are ``torch.nn.Module``s called as ``loss(estimate, reference)`` on waveforms of shape
(B, T) (or (T,)) at ``sample_rate`` Hz, full scale 1.0, and return a 0-d tensor. Their
parameters are frozen (``requires_grad`` False); gradients flow to the waveforms. The module
carries where its weights came from (``.provenance``, ``.weights``, ``.perceptual``) and warns
(:class:`NotPerceptualWarning`) when it is built from weights that are not the published ones.
"""

from __future__ import annotations

import operator
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import ModelError, UsageError
from ..registry import DEFAULT_HOP, FAMILIES, VGGISH_RESAMPLERS
from ..session import OnnxModel, find_model
from .frontends import OpenL3Frontend, VGGishFrontend, describe
from .models import OpenL3CNN, VGGishCNN, load_cnn

#: ``vggish_embedding`` choices -> the VGGish output (``pqeval score --vggish-output``) they equal.
VGGISH_EMBEDDINGS: dict[str, str] = {"relu": "embedding", "raw": "embedding_raw"}
DISTANCES: tuple[str, ...] = ("cosine", "l1", "l2")
FEATURE_DISTANCES: tuple[str, ...] = ("l1", "l2")
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


class NotPerceptualWarning(UserWarning):
    """The loss was built from weights that are not the published ones (seeded, custom, unknown):
    its values and gradients are not perceptual."""


def resolve_model(model: str | os.PathLike[str]) -> Path:
    """The ONNX file of ``model``: a family ("vggish", "openl3": its default model), a model key
    (``pqeval.session.find_model``: the file ``pqeval score`` would use), or a path to a ``.onnx``."""
    if isinstance(model, os.PathLike) or (isinstance(model, str) and model.endswith(".onnx")):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        return path
    if not isinstance(model, str):
        raise UsageError(f"model must be a family, a model key or a path, got {model!r}")
    return find_model(FAMILIES[model].default_key if model in FAMILIES else model)


def _pair(estimate: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    for what, x in (("estimate", estimate), ("reference", reference)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{what}: expected a torch.Tensor, got {type(x).__name__}")
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ in shape")
    if estimate.ndim == 1:
        estimate, reference = estimate[None], reference[None]
    if estimate.ndim != 2:
        raise ValueError(f"expected waveforms of shape (batch, samples) or (samples,), got {tuple(estimate.shape)}")
    return estimate, reference


def _safe_norm(x: Tensor) -> Tensor:
    """Euclidean norm over the last axis, with gradient 0 (not NaN) at the zero vector."""
    sq = (x * x).sum(-1)
    nonzero = sq > 0
    return torch.where(nonzero, torch.sqrt(torch.where(nonzero, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """1 - cosine over the last axis, with pqeval's conventions (``pqeval.similarity``): two zero
    vectors have cosine 1, one zero vector cosine 0 (and no gradient there)."""
    na, nb = _safe_norm(a), _safe_norm(b)
    both = (na > 0) & (nb > 0)
    cos = (a * b).sum(-1) / torch.where(both, na * nb, torch.ones_like(na))
    neither = (na == 0) & (nb == 0)
    cos = torch.where(both, cos, torch.where(neither, torch.ones_like(cos), torch.zeros_like(cos)))
    return 1.0 - cos


class _OnnxBacked(nn.Module):
    """The parts both losses share: model file, frontend, CNN, provenance."""

    cnn: VGGishCNN | OpenL3CNN
    frontend: VGGishFrontend | OpenL3Frontend

    def __init__(
        self,
        model: str | os.PathLike[str],
        sample_rate: int,
        *,
        hop: float | None,
        resampler: str | None,
        center: bool,
        round_windows: bool,
        frontend_dtype: torch.dtype | None,
    ) -> None:
        super().__init__()
        try:
            rate = 0 if isinstance(sample_rate, bool) else operator.index(sample_rate)  # int, numpy integers
        except TypeError:
            rate = 0
        if rate <= 0:
            raise UsageError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        sample_rate = rate
        path = resolve_model(model)
        onnx_model = OnnxModel(path)
        family = onnx_model.metadata.get("pqeval.model_id", "")  # the sidecar (ModelError if it is missing)
        if family == "vggish":
            if hop is not None:
                raise UsageError("hop applies to OpenL3 models; VGGish examples are fixed at 0.96 s")
            resampler = resampler or VGGISH_RESAMPLERS[0]
            if resampler not in VGGISH_RESAMPLERS:
                raise UsageError(f"resampler must be one of {', '.join(VGGISH_RESAMPLERS)}, got {resampler!r}")
        elif resampler is not None:
            raise UsageError("resampler applies to VGGish; OpenL3 always resamples with kaiser_best_0.2")
        onnx_model.check_integrity()  # the file is the one its sidecar (and so the evaluator) describes
        cnn, input_repr = load_cnn(path, family, onnx_model.metadata)
        self.family = family
        if family == "vggish":
            assert resampler is not None  # set above
            self.frontend = VGGishFrontend(sample_rate, resampler)
        else:
            assert input_repr is not None  # load_cnn returns it for OpenL3
            self.frontend = OpenL3Frontend(
                sample_rate, input_repr, DEFAULT_HOP if hop is None else float(hop), center, round_windows
            )
        self.cnn = cnn  # type: ignore[assignment]  # load_cnn built the family's module
        self.sample_rate = sample_rate
        self.frontend_dtype = frontend_dtype
        self.model_path = path
        self.model_key = onnx_model.key
        self.weights = onnx_model.weights
        self.provenance = onnx_model.provenance
        self.requires_grad_(False)
        self.eval()
        if not self.provenance.perceptual:
            warnings.warn(
                f"{path}: {self.provenance.note}; {type(self).__name__} from these weights demonstrates the "
                "machinery only, its values and gradients are not perceptual",
                NotPerceptualWarning,
                stacklevel=3,
            )

    @property
    def perceptual(self) -> bool:
        """True only for the published (pretrained) weights."""
        return self.provenance.perceptual

    @property
    def dtype(self) -> torch.dtype:
        """The CNN's dtype (float32 unless converted, e.g. with ``.double()``)."""
        return next(self.cnn.parameters()).dtype

    def features(self, waveforms: Tensor) -> Tensor:
        """Waveforms (B, T) -> the CNN's input frames, in the CNN's dtype: VGGish log-mel examples
        (B, N, 96, 64) or OpenL3 dB spectrograms (B, N, F, T')."""
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        x = waveforms if self.frontend_dtype is None else waveforms.to(self.frontend_dtype)
        return self.frontend(x).to(self.dtype)

    def n_frames(self, n_samples: int) -> int:
        """Frames (examples / windows) of a clip of ``n_samples`` samples at ``sample_rate``."""
        fe = self.frontend
        return fe.n_examples(n_samples) if isinstance(fe, VGGishFrontend) else fe.n_windows(n_samples)

    def extra_repr(self) -> str:
        return f"model={self.model_key!r} ({self.model_path}), weights={self.weights!r}, {describe(self.frontend)}"


class EmbeddingLoss(_OnnxBacked):
    """Distance between the embeddings of estimate and reference, averaged over frames.

    Parameters
    ----------
    model : str or os.PathLike
        "vggish", "openl3" (its default model, ``openl3-mel256-music-512``), a model key (found as
        ``pqeval score`` finds it: ``pqeval.session.find_model``) or the path of an exported ``.onnx``.
    sample_rate : int
        Hz of the waveforms; resampled to the model's rate (16 kHz / 48 kHz) with resampy's
        ``kaiser_best`` as pqeval does.
    distance : "cosine" | "l1" | "l2"
        Per frame: ``1 - cosine`` (pqeval's score is 1 minus this), the mean absolute difference
        or the mean squared difference over the embedding's dimensions.
    vggish_embedding : "relu" | "raw"
        VGGish only: the 128-d embedding after torchvggish's final ReLU (``--vggish-output
        embedding``, the default) or before it (``embedding_raw``, Google's TF VGGish). The 8-bit
        PCA output pqeval scores by default is not differentiable (rounding) and is not offered.
    hop : float, optional
        OpenL3 only: seconds between 1 s windows; default 0.5, ``pqeval score``'s default.
    resampler : str, optional
        VGGish only: "kaiser_best_0.2" (default) or "kaiser_best_0.3", as ``--resampler``.
    reduction : "mean" | "sum" | "none"
        Over batch and frames; "none" returns the per-frame distances (B, N).
    center, round_windows : bool
        OpenL3 framing as openl3 (see :class:`~pqeval.loss.frontends.OpenL3Frontend`).
    frontend_dtype : torch.dtype or None
        The frontends compute in float64 (default, as the evaluator: this is what makes the value
        equal to pqeval's score); None computes them in the waveforms' dtype (faster in float32,
        not equal to the score at the 1e-5 level for OpenL3). The CNN runs in the module's dtype.

    Shapes: ``loss(estimate, reference)``, both (B, T) or (T,), same shape; returns a 0-d tensor
    (or (B, N) with ``reduction="none"``). N is the number of frames: VGGish
    ``(1 + (T16 - 400) // 160) // 96`` with T16 the 16 kHz length (AudioError under 0.975 s),
    OpenL3 ``pqeval.openl3.num_windows``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "vggish",
        sample_rate: int = 16000,
        distance: str = "cosine",
        vggish_embedding: str = "relu",
        *,
        hop: float | None = None,
        resampler: str | None = None,
        reduction: str = "mean",
        center: bool = True,
        round_windows: bool = True,
        frontend_dtype: torch.dtype | None = torch.float64,
    ) -> None:
        if distance not in DISTANCES:
            raise UsageError(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if vggish_embedding not in VGGISH_EMBEDDINGS:
            raise UsageError(
                f"vggish_embedding must be one of {', '.join(VGGISH_EMBEDDINGS)}, got {vggish_embedding!r}"
            )
        if reduction not in REDUCTIONS:
            raise UsageError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        super().__init__(
            model,
            sample_rate,
            hop=hop,
            resampler=resampler,
            center=center,
            round_windows=round_windows,
            frontend_dtype=frontend_dtype,
        )
        self.distance = distance
        self.vggish_embedding = vggish_embedding
        self.reduction = reduction
        self.output = VGGISH_EMBEDDINGS[vggish_embedding] if self.family == "vggish" else "embedding"

    def embed(self, waveforms: Tensor) -> Tensor:
        """Waveforms (B, T) -> embeddings (B, N, D), the frames pqeval scores (D = 128 VGGish)."""
        f = self.features(waveforms)
        b, n = f.shape[:2]
        *_, (_, emb) = self.cnn.activations(f.reshape(b * n, *f.shape[2:]), self.output)
        return emb.reshape(b, n, -1)

    def frame_distances(self, estimate: Tensor, reference: Tensor) -> Tensor:
        """Per-frame distances (B, N)."""
        estimate, reference = _pair(estimate, reference)
        e = self.embed(estimate)
        with torch.set_grad_enabled(torch.is_grad_enabled() and reference.requires_grad):
            r = self.embed(reference)
        if self.distance == "cosine":
            return cosine_distance(e, r)
        diff = e - r
        return diff.abs().mean(-1) if self.distance == "l1" else (diff * diff).mean(-1)

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        d = self.frame_distances(estimate, reference)
        if self.reduction == "none":
            return d
        return d.mean() if self.reduction == "mean" else d.sum()

    def extra_repr(self) -> str:
        out = f", output={self.output!r}" if self.family == "vggish" else ""
        return f"{super().extra_repr()}, distance={self.distance!r}{out}, reduction={self.reduction!r}"


class FeatureLoss(_OnnxBacked):
    """Deep-feature loss (Germain, Chen & Koltun, "Speech Denoising with Deep Feature Losses",
    Interspeech 2019): ``sum_l weights[l] * distance(Phi_l(estimate), Phi_l(reference))`` over
    the activations ``Phi_l`` of the chosen CNN layers, on the same frames as
    :class:`EmbeddingLoss`.

    layers: names from ``VGGishCNN.LAYERS`` / ``OpenL3CNN.LAYERS`` (activations after each conv's
    ReLU ``conv1``..., VGGish ``fc1``, ``fc2``, the embeddings; OpenL3 ``embedding_conv`` before
    the last pooling); default every conv layer. weights: one per layer, default 1 each; Germain
    et al. set them so that every layer contributes about equally (:meth:`balance` does that
    on a batch). distance: "l1" (mean absolute difference over every activation value, as the
    paper) or "l2" (mean squared difference). The other parameters are :class:`EmbeddingLoss`'s.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = "vggish",
        sample_rate: int = 16000,
        layers: Sequence[str] | None = None,
        weights: Sequence[float] | None = None,
        distance: str = "l1",
        *,
        hop: float | None = None,
        resampler: str | None = None,
        center: bool = True,
        round_windows: bool = True,
        frontend_dtype: torch.dtype | None = torch.float64,
    ) -> None:
        if distance not in FEATURE_DISTANCES:
            raise UsageError(f"distance must be one of {', '.join(FEATURE_DISTANCES)}, got {distance!r}")
        super().__init__(
            model,
            sample_rate,
            hop=hop,
            resampler=resampler,
            center=center,
            round_windows=round_windows,
            frontend_dtype=frontend_dtype,
        )
        known = self.cnn.LAYERS
        chosen = tuple(layers) if layers is not None else tuple(n for n in known if n.startswith("conv"))
        bad = [n for n in chosen if n not in known]
        if bad or not chosen or len(set(chosen)) != len(chosen):
            raise UsageError(
                f"layers must be distinct names from {', '.join(known)}, got {', '.join(map(str, chosen)) or 'none'}"
            )
        self.layers = tuple(sorted(chosen, key=known.index))
        self.distance = distance
        self.layer_weights: dict[str, float] = dict.fromkeys(self.layers, 1.0)
        if weights is not None:
            self.set_weights(weights, chosen)

    def set_weights(self, weights: Sequence[float], layers: Sequence[str] | None = None) -> None:
        """Per-layer weights, in the order of ``layers`` (default: :attr:`layers`)."""
        layers = tuple(layers) if layers is not None else self.layers
        w = [float(v) for v in weights]
        if len(w) != len(layers) or any(not v >= 0 for v in w):
            raise UsageError(f"weights must be {len(layers)} non-negative numbers (one per layer), got {weights!r}")
        self.layer_weights = dict(zip(layers, w, strict=True))

    def _activations(self, waveforms: Tensor) -> dict[str, Tensor]:
        f = self.features(waveforms)
        flat = f.reshape(f.shape[0] * f.shape[1], *f.shape[2:])
        return {n: a for n, a in self.cnn.activations(flat, self.layers[-1]) if n in self.layer_weights}

    def layer_distances(self, estimate: Tensor, reference: Tensor) -> dict[str, Tensor]:
        """Unweighted distance of each layer (0-d tensors), averaged over batch, frames and values."""
        estimate, reference = _pair(estimate, reference)
        e = self._activations(estimate)
        with torch.set_grad_enabled(torch.is_grad_enabled() and reference.requires_grad):
            r = self._activations(reference)
        out = {}
        for n in self.layers:
            diff = e[n] - r[n]
            out[n] = diff.abs().mean() if self.distance == "l1" else (diff * diff).mean()
        return out

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        d = self.layer_distances(estimate, reference)
        return torch.stack([self.layer_weights[n] * d[n] for n in self.layers]).sum()

    @torch.no_grad()
    def balance(self, estimate: Tensor, reference: Tensor) -> dict[str, float]:
        """Set each layer's weight to 1 / its current distance on this batch (so each contributes 1
        to the loss now), Germain et al.'s recipe; returns the weights. A layer at distance 0 keeps 1."""
        d = self.layer_distances(estimate, reference)
        self.layer_weights = {n: (1.0 / float(v) if float(v) > 0 else 1.0) for n, v in d.items()}
        return dict(self.layer_weights)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layers={self.layers}, distance={self.distance!r}"
