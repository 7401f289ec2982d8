"""``openl3.get_audio_embedding`` (openl3 0.4.2) on pqeval's OpenL3 embedder.

Same parameters, defaults, validation order, shapes and dtypes as openl3 0.4.2; the windows,
spectrograms and timestamps are openl3's (:mod:`pqeval.openl3`), the CNN runs in ONNX Runtime.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np

from ...openl3 import SAMPLE_RATE, OpenL3Embedder, hop_samples
from ..notes import warn_once
from .exceptions import OpenL3Error, OpenL3Warning
from .models import (
    AudioEmbeddingModel,
    load_audio_embedding_model,
    validate_content_type,
    validate_embedding_size,
    validate_frontend,
)


def _as_model(model) -> AudioEmbeddingModel | None:
    """``model`` unchanged if it is None or a compat model, else OpenL3Error (as openl3 for a non-Keras model)."""
    if model is None or isinstance(model, AudioEmbeddingModel):
        return model
    raise OpenL3Error(
        "Invalid model provided. Must be a model from pqeval.compat.openl3.models.load_audio_embedding_model "
        f"(pqeval runs exported ONNX models, not Keras models) but got {type(model)}"
    )


def _rate(sr) -> int:
    """A sample rate as openl3 accepts it (a positive real number), as a whole number of Hz."""
    if isinstance(sr, bool) or not isinstance(sr, Real) or not float(sr) > 0:
        raise OpenL3Error(f"Invalid sample rate {sr}")
    if not float(sr).is_integer():
        raise OpenL3Error(f"Invalid sample rate {sr}: pqeval resamples from whole-number rates (Hz) only")
    return int(float(sr))


def _mono(audio) -> np.ndarray:
    """One clip [n] or [n, channels] -> mono float64 [n], checked and down-mixed as openl3 does."""
    x = np.asarray(audio)
    if x.size == 0:
        raise OpenL3Error("Got empty audio")
    if np.all(x == 0):
        warnings.warn("Provided audio is all zeros", OpenL3Warning, stacklevel=3)  # the caller of get_audio_embedding
    if x.ndim > 2:
        raise OpenL3Error(f"Audio array can only be 1D or 2D, got shape {x.shape}")
    x = np.asarray(x, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def get_audio_embedding(
    audio,
    sr,
    model=None,
    input_repr=None,
    content_type="music",
    embedding_size=6144,
    center=True,
    hop_size=0.1,
    batch_size=32,
    frontend="kapre",
    verbose=True,
):
    """OpenL3 embeddings of 1 s windows, as ``openl3.get_audio_embedding`` (0.4.2).

    Parameters
    ----------
    audio : np.ndarray [shape=(n,) or (n, channels)] or list[np.ndarray]
        Samples (channels are averaged); a list gives lists back.
    sr : int or list[int]
        Sample rate(s) in Hz, one for all clips or one per clip; resampled to 48 kHz
        (resampy 0.2 ``kaiser_best``, as openl3 0.4.2). Whole numbers of Hz only.
    model : AudioEmbeddingModel or None
        From :func:`pqeval.compat.openl3.models.load_audio_embedding_model`; then ``input_repr``,
        ``content_type`` and ``embedding_size`` are checked but ignored, as openl3 does. None: the
        exported model ``openl3-<input_repr>-<content_type>-<embedding_size>``.
    input_repr : {"linear", "mel128", "mel256"} or None
        None means "mel256", as in openl3.
    content_type : {"music", "env"}
    embedding_size : {6144, 512}
    center : bool
        Pad the start with 0.5 s so that window i is centred on ``i * hop_size`` seconds.
    hop_size : float
        Seconds between windows (>= 1/48000).
    batch_size : int
        Windows per ONNX Runtime call (memory and speed only: 1 is pqeval's fastest and smallest).
    frontend : {"kapre"}
        openl3's default; "librosa" is refused (not reproduced).
    verbose : bool or {0, 1}
        Accepted and checked as openl3 does, then ignored (no progress bar).

    Returns
    -------
    embedding : np.ndarray [shape=(N, D), dtype=float32] or list of them
        One row per window, D = the model's embedding size.
    timestamps : np.ndarray [shape=(N,)] or list of them
        ``np.arange(N) * hop_size`` seconds, as openl3 computes them.

    Raises OpenL3Error where openl3 raises ``OpenL3Error``, and :class:`~pqeval.errors.ModelError`
    if the model is not installed. Warns :class:`OpenL3Warning` where openl3 warns (audio all
    zeros, clips shorter than 1 s are zero-padded) and
    :class:`~pqeval.compat.NotPerceptualWarning` once per model whose weights are not the published ones.
    """
    model = _as_model(model)
    input_repr = validate_frontend(frontend, input_repr)
    content_type = validate_content_type(content_type)
    embedding_size = validate_embedding_size(embedding_size)
    if verbose not in (0, 1):
        raise OpenL3Error(f"Invalid verbosity level {verbose}")

    if isinstance(audio, np.ndarray):
        audio_list, list_input = [audio], False
    elif isinstance(audio, list):
        audio_list, list_input = audio, True
    else:
        raise OpenL3Error(f"audio must be type list[np.ndarray] or np.ndarray. Got {type(audio)}")
    if isinstance(sr, Real):
        sr_list = [sr] * len(audio_list)
    elif isinstance(sr, list):
        sr_list = sr
    else:
        raise OpenL3Error(f"sr must be type list[numbers.Real] or numbers.Real. Got {type(sr)}")
    if len(audio_list) != len(sr_list):
        raise OpenL3Error(
            f"Mismatch between number of audio inputs ({len(audio_list)}) and number of sample rates ({len(sr_list)})"
        )
    if isinstance(hop_size, bool) or not isinstance(hop_size, Real) or hop_size <= 0:
        raise OpenL3Error(f"Invalid hop size {hop_size}")
    hop = float(hop_size)
    if hop_samples(hop) < 1:
        raise OpenL3Error(f"Invalid hop size {hop_size}: shorter than one sample at {SAMPLE_RATE} Hz")
    if center not in (True, False):
        raise OpenL3Error(f"Invalid center value {center}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise OpenL3Error(f"Invalid batch size {batch_size}")

    clips = []
    for x, r in zip(audio_list, sr_list, strict=True):  # a loop, not a comprehension: warnings' stacklevel
        clips.append((_mono(x), _rate(r)))
    if model is None:
        model = load_audio_embedding_model(input_repr, content_type, embedding_size, frontend=frontend)
    embedder = OpenL3Embedder(model.onnx, hop=hop, batch_size=int(batch_size), center=bool(center))
    embeddings, timestamps = [], []
    for x, rate in clips:
        emb = embedder.embed(x, rate)
        for note in emb.notes:  # a clip under 1 s, zero-padded (openl3 warns too)
            warnings.warn(note, OpenL3Warning, stacklevel=2)
        embeddings.append(emb.frames)
        timestamps.append(np.arange(len(emb.frames)) * hop_size)  # openl3's own expression (and dtype)
    warn_once(model.onnx)
    if not list_input:
        return embeddings[0], timestamps[0]
    return embeddings, timestamps
