"""``torchvggish.vggish_input`` (torchvggish 0.2) on pqeval's numpy frontend; numpy out, not torch.

The examples are those of :class:`pqeval.vggish.VGGishFrontend`: bit-identical to torchvggish's at
16 kHz, resampled otherwise with resampy's ``kaiser_best`` (the 0.2.x filter by default, see
:mod:`pqeval.resample`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from numbers import Real

import numpy as np

from ...errors import AudioError, UsageError
from ...resample import DEFAULT_FILTER, FILTERS
from ...vggish import VGGishFrontend


@lru_cache(maxsize=len(FILTERS))
def _frontend(resampler: str) -> VGGishFrontend:
    if resampler not in FILTERS:
        raise UsageError(f"resampler must be one of {', '.join(FILTERS)}, got {resampler!r}")
    return VGGishFrontend(resampler)


def _rate(sample_rate) -> int:
    """A positive whole number of Hz, or UsageError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, Real) or not float(sample_rate) > 0:
        raise UsageError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    if not float(sample_rate).is_integer():
        raise UsageError(f"sample_rate must be a whole number of Hz, got {sample_rate!r}")
    return int(float(sample_rate))


def waveform_to_examples(data, sample_rate, return_tensor=True, *, resampler: str = DEFAULT_FILTER) -> np.ndarray:
    """Log-mel examples of a waveform, as ``torchvggish.vggish_input.waveform_to_examples``.

    Parameters
    ----------
    data : np.ndarray [shape=(n,) or (n, channels)]
        Samples, nominally in [-1, 1]; channels are averaged.
    sample_rate : int
        Hz (a whole number); resampled to 16 kHz unless it is 16 kHz.
    return_tensor : bool
        True: the layout torchvggish's tensor has, [N, 1, 96, 64] float32 (a numpy array here).
        False: [N, 96, 64] float64, as torchvggish.
    resampler : str
        pqeval only (keyword): the resampy filter generation to reproduce,
        ``"kaiser_best_0.2"`` (default) or ``"kaiser_best_0.3"`` (:data:`pqeval.registry.VGGISH_RESAMPLERS`).

    Returns
    -------
    np.ndarray [shape=(N, 1, 96, 64) or (N, 96, 64)]
        N non-overlapping 0.96 s examples (96 frames of 10 ms x 64 mel bands, log(mel + 0.01));
        N = 0 under 0.975 s.
    """
    x = np.asarray(data, dtype=np.float64)
    if x.ndim > 2:
        raise UsageError(f"data must be [samples] or [samples, channels], got shape {x.shape}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    examples = _frontend(resampler).examples(x, _rate(sample_rate))
    if return_tensor:
        return examples[:, None, :, :].astype(np.float32)
    return np.array(examples)  # a writable copy (the frontend returns a framed view)


def wavfile_to_examples(wav_file, return_tensor=True, *, resampler: str = DEFAULT_FILTER) -> np.ndarray:
    """Examples of a file read as 16-bit PCM, as ``torchvggish.vggish_input.wavfile_to_examples``.

    ``wav_file``: a path or a file-like object soundfile can read; samples are read as int16 and
    divided by 32768, as torchvggish does. Returns as :func:`waveform_to_examples`.
    """
    import soundfile as sf

    try:
        wav_data, sr = sf.read(wav_file, dtype="int16")
    except (OSError, RuntimeError) as e:  # soundfile's LibsndfileError is a RuntimeError
        name = os.fspath(wav_file) if isinstance(wav_file, (str, os.PathLike)) else "<file object>"
        raise AudioError(f"{name}: cannot read it as audio ({str(e).splitlines()[0] if str(e) else e!r})") from None
    return waveform_to_examples(wav_data / 32768.0, sr, return_tensor, resampler=resampler)
