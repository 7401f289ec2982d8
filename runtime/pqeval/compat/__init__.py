"""Drop-in replacements for the original calls, on numpy + ONNX Runtime (no TensorFlow, no torch).

A study's scripts written for openl3 0.4.2 and torchvggish 0.2 run on pqeval's exported models
by changing only their import lines::

    import openl3                                  ->  from pqeval.compat import openl3
    from openl3 import models                      ->  from pqeval.compat.openl3 import models
    from torchvggish import vggish, vggish_input   ->  from pqeval.compat.torchvggish import vggish, vggish_input
    import torchvggish.vggish_input as vi          ->  import pqeval.compat.torchvggish.vggish_input as vi
    import torchvggish                             ->  from pqeval.compat import torchvggish

The functions keep the originals' names, parameters, defaults, shapes and dtypes
(:mod:`pqeval.compat.openl3`: ``get_audio_embedding``, ``models.load_audio_embedding_model``;
:mod:`pqeval.compat.torchvggish`: ``vggish_input.waveform_to_examples``, ``vggish()``) and return
numpy arrays where torchvggish returns torch tensors. Models are the exported ONNX files pqeval
finds (:mod:`pqeval.session`); a model whose weights are not the published ones (seeded, custom,
unrecorded) says so with a :class:`NotPerceptualWarning`, once per model and process. What differs
from the originals, and the measured parity, is in ``docs/compat.md``.
"""

from __future__ import annotations

from .notes import NotPerceptualWarning

__all__ = ["NotPerceptualWarning"]
