"""``openl3`` (0.4.2) for audio, on numpy + ONNX Runtime: ``from pqeval.compat import openl3``.

``openl3.get_audio_embedding``, ``openl3.models.load_audio_embedding_model`` (and
``..._from_path``, which takes an exported ``.onnx`` file), ``openl3.OpenL3Error`` and
``OpenL3Warning`` with openl3's signatures and defaults. Image and video embeddings, the
librosa frontend and the file-processing helpers are not provided. See :mod:`pqeval.compat`.
"""

from __future__ import annotations

from . import models
from .core import get_audio_embedding
from .exceptions import OpenL3Error, OpenL3Warning
from .models import AudioEmbeddingModel, load_audio_embedding_model, load_audio_embedding_model_from_path

__all__ = [
    "AudioEmbeddingModel",
    "OpenL3Error",
    "OpenL3Warning",
    "get_audio_embedding",
    "load_audio_embedding_model",
    "load_audio_embedding_model_from_path",
    "models",
]
