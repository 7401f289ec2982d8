"""pqeval's perceptual losses in PyTorch: the evaluator's frontends and weights, differentiable.

Needs PyTorch (``pip install 'pqeval[torch]'``); ``import pqeval`` and the rest of the runtime
never import it. ::

    from pqeval.loss import EmbeddingLoss, FeatureLoss

    loss = EmbeddingLoss("vggish", sample_rate=16000)  # 1 - cosine of VGGish embeddings
    value = loss(estimate, reference)  # (B, T) waveforms -> 0-d tensor; value.backward()

``1 - EmbeddingLoss(...)(estimate, reference)`` equals ``pqeval.score(reference, estimate,
vggish_output="embedding").metrics["vggish"].value`` (and the OpenL3 score at the same hop): the
same frames, resampler and ONNX weights. See docs/loss.md.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"pqeval.loss needs PyTorch ({e}); install it with: pip install 'pqeval[torch]'", name=e.name
    ) from None

from .frontends import (
    KapreDB,
    LogMel,
    Mel,
    OpenL3Frontend,
    Resampler,
    STFTMagnitude,
    VGGishFrontend,
)
from .losses import (
    DISTANCES,
    VGGISH_EMBEDDINGS,
    EmbeddingLoss,
    FeatureLoss,
    NotPerceptualWarning,
    cosine_distance,
    resolve_model,
)
from .models import OpenL3CNN, VGGishCNN, load_cnn

__all__ = [
    "DISTANCES",
    "VGGISH_EMBEDDINGS",
    "EmbeddingLoss",
    "FeatureLoss",
    "KapreDB",
    "LogMel",
    "Mel",
    "NotPerceptualWarning",
    "OpenL3CNN",
    "OpenL3Frontend",
    "Resampler",
    "STFTMagnitude",
    "VGGishCNN",
    "VGGishFrontend",
    "cosine_distance",
    "load_cnn",
    "resolve_model",
]
