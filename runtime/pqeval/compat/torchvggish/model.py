"""``torchvggish.vggish()`` (0.2, and the torch.hub entry's keywords) on the exported VGGish model.

The model object runs examples, waveforms or WAV files through ONNX Runtime and returns numpy
arrays where torchvggish returns tensors: torchvggish's 8-bit PCA output (postprocess=True) or
the 128-d embedding after its final ReLU (postprocess=False).
"""

from __future__ import annotations

import os

import numpy as np

from ...errors import UsageError
from ...registry import VGGISH
from ...resample import DEFAULT_FILTER
from ...session import open_model
from ...vggish import VGGishEmbedder
from ..notes import warn_once
from .vggish_input import waveform_to_examples, wavfile_to_examples

EXAMPLE_SHAPE = (96, 64)  # frames x mel bands


class VGGish:
    """The exported VGGish where torchvggish has its ``VGG`` module (see :func:`vggish`).

    Attributes: ``postprocess`` (bool, read at every call, as torchvggish's), ``preprocess``
    (bool), ``onnx`` (:class:`~pqeval.session.OnnxModel`), ``resampler``, ``batch_size``
    (examples per ONNX Runtime call).
    """

    def __init__(
        self,
        postprocess: bool = True,
        preprocess: bool = True,
        key: str = VGGISH.default_key,
        resampler: str = DEFAULT_FILTER,
        batch_size: int = 16,
    ) -> None:
        self.onnx = open_model(key)
        self.onnx.check(VGGISH.name)
        self.postprocess = postprocess
        self.preprocess = preprocess
        self.resampler = resampler
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"VGGish({self.onnx.key!r}, postprocess={self.postprocess}, weights={self.onnx.weights!r})"

    def eval(self) -> VGGish:
        """Returns self (inference is all there is), so ``model.eval()`` lines keep working."""
        return self

    def to(self, *args, **kwargs) -> VGGish:
        """Returns self: ONNX Runtime runs on the CPU whatever the device."""
        return self

    def __call__(self, x, fs=None) -> np.ndarray:
        return self._run(x, fs)

    def forward(self, x, fs=None) -> np.ndarray:
        """VGGish on examples, a waveform or a WAV file.

        Parameters
        ----------
        x : np.ndarray [shape=(N, 1, 96, 64) or (N, 96, 64)], np.ndarray [shape=(n,) or (n, channels)], or path
            Log-mel examples (``waveform_to_examples``); a waveform, with ``fs``; or a WAV file
            read as 16-bit PCM (``wavfile_to_examples``). The last two need ``preprocess=True``.
        fs : int or None
            Sample rate of a waveform ``x`` in Hz.

        Returns
        -------
        np.ndarray [shape=(N, 128), dtype=float32]
            postprocess=True: 8-bit PCA values 0..255 (float32), squeezed as torchvggish's
            postprocessor does (one example gives shape (128,)); postprocess=False: the embedding
            after the final ReLU.
        """
        return self._run(x, fs)

    def _examples(self, x, fs) -> np.ndarray:
        if isinstance(x, (str, os.PathLike)) or fs is not None:
            if not self.preprocess:
                raise UsageError("this VGGish was made with preprocess=False: pass examples [N, 1, 96, 64]")
            if fs is None:
                return wavfile_to_examples(x, return_tensor=False, resampler=self.resampler)
            return waveform_to_examples(x, fs, return_tensor=False, resampler=self.resampler)
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError, RuntimeError):  # e.g. a torch tensor that requires grad
            raise UsageError(f"VGGish cannot read a {type(x).__name__} as an array; pass a numpy array") from None
        if arr.ndim == 4 and arr.shape[1] == 1 and arr.shape[2:] == EXAMPLE_SHAPE:
            return arr[:, 0]
        if arr.ndim == 3 and arr.shape[1:] == EXAMPLE_SHAPE:
            return arr
        raise UsageError(
            f"VGGish takes examples [N, 1, 96, 64] or [N, 96, 64], a waveform with its rate (model(x, fs)) "
            f"or a WAV path; got an array of shape {arr.shape}"
        )

    def _run(self, x, fs) -> np.ndarray:
        examples = self._examples(x, fs)
        output = "postprocessed" if self.postprocess else "embedding"
        out = VGGishEmbedder(self.onnx, output=output, batch_size=self.batch_size).run_examples(examples)
        warn_once(self.onnx, stacklevel=3)  # the caller of model(...) / model.forward(...)
        return np.squeeze(out) if self.postprocess else out  # torchvggish's Postprocessor squeezes


def vggish(
    postprocess: bool = True,
    *,
    pretrained: bool = True,
    preprocess: bool = True,
    device=None,
    progress: bool = True,
    key: str = VGGISH.default_key,
    resampler: str = DEFAULT_FILTER,
) -> VGGish:
    """The exported VGGish, as ``torchvggish.vggish(postprocess=True)`` (or the torch.hub entry).

    Parameters
    ----------
    postprocess : bool
        True: torchvggish's PCA + 8-bit output (values 0..255, float32); False: the 128-d
        embedding after the final ReLU.
    pretrained : bool
        Must be True: the weights are those of the installed model file (untrained weights for
        training are not available here).
    preprocess : bool
        Whether calls may take waveforms (with ``fs``) and WAV paths besides examples.
    device, progress
        Accepted for the torch.hub entry's signature and ignored (ONNX Runtime on the CPU; nothing
        is downloaded).
    key : str
        pqeval only: the model file (``vggish`` or a compact variant such as ``vggish-fp16``).
    resampler : str
        pqeval only: the resampy filter generation for waveform input (see ``waveform_to_examples``).

    Returns
    -------
    VGGish
        Call it (or ``.forward``) on examples [N, 1, 96, 64]. Raises
        :class:`~pqeval.errors.ModelError` if the model is not installed.
    """
    if not pretrained:
        raise UsageError(
            "pretrained=False (untrained weights) is not available in pqeval.compat: it runs exported models"
        )
    return VGGish(postprocess=postprocess, preprocess=preprocess, key=key, resampler=resampler)
