"""``torchvggish`` (0.2) on numpy + ONNX Runtime: ``from pqeval.compat.torchvggish import vggish, vggish_input``.

``vggish()`` (the model; also its torch.hub keywords), ``vggish_input.waveform_to_examples`` and
``wavfile_to_examples`` (also at this level, as torchvggish exports them), returning numpy arrays
where torchvggish returns tensors. See :mod:`pqeval.compat`.
"""

from __future__ import annotations

from . import vggish_input
from .model import VGGish, vggish
from .vggish_input import waveform_to_examples, wavfile_to_examples

__all__ = ["VGGish", "vggish", "vggish_input", "waveform_to_examples", "wavfile_to_examples"]
