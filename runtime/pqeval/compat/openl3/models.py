"""``openl3.models`` on exported ONNX files: the model objects ``get_audio_embedding`` accepts.

openl3 returns a Keras model; these return an :class:`AudioEmbeddingModel` wrapping the exported
model ``openl3-<input_repr>-<content_type>-<embedding_size>`` (:func:`pqeval.registry.openl3_key`),
found where pqeval finds models (:mod:`pqeval.session`).
"""

from __future__ import annotations

import json
import os
from numbers import Real
from pathlib import Path

from ...errors import ModelError
from ...registry import OPENL3, OPENL3_CONTENT_TYPES, OPENL3_EMBEDDING_SIZES, OPENL3_INPUT_REPRS, openl3_key
from ...session import OnnxModel, open_model
from .exceptions import OpenL3Error

VALID_FRONTENDS = ("librosa", "kapre")  # openl3's; only "kapre" is reproduced
VALID_INPUT_REPRS = OPENL3_INPUT_REPRS
VALID_CONTENT_TYPES = OPENL3_CONTENT_TYPES
VALID_AUDIO_EMBEDDING_SIZES = OPENL3_EMBEDDING_SIZES


class AudioEmbeddingModel:
    """An exported OpenL3 model where openl3 has a Keras model.

    Attributes: ``onnx`` (:class:`~pqeval.session.OnnxModel`), ``input_repr`` ("linear",
    "mel128", "mel256"), ``embedding_size`` (512 or 6144, values per 1 s window), ``frontend``
    ("kapre", as openl3 sets on its models), ``key`` (the model file's stem), ``weights`` (the
    recorded provenance string).
    """

    frontend = "kapre"

    def __init__(self, onnx: OnnxModel, input_repr: str, embedding_size: int) -> None:
        self.onnx = onnx
        self.input_repr = input_repr
        self.embedding_size = int(embedding_size)

    @property
    def key(self) -> str:
        return self.onnx.key

    @property
    def weights(self) -> str:
        return self.onnx.weights

    def __repr__(self) -> str:
        return f"AudioEmbeddingModel({self.key!r}, path={str(self.onnx.path)!r}, weights={self.weights!r})"


def validate_frontend(frontend: str, input_repr: str | None) -> str:
    """``input_repr`` as openl3 resolves it (None -> "mel256"), or OpenL3Error."""
    if frontend not in VALID_FRONTENDS:
        raise OpenL3Error(f'Invalid frontend "{frontend}". Must be one of {VALID_FRONTENDS}')
    if frontend != "kapre":
        raise OpenL3Error(
            'frontend "librosa" is not reproduced by pqeval (it differs from openl3\'s default "kapre"); '
            'use frontend="kapre"'
        )
    if input_repr is None:
        input_repr = "mel256"
    if str(input_repr) not in VALID_INPUT_REPRS:
        raise OpenL3Error(f'Invalid input representation "{input_repr}". Must be one of {VALID_INPUT_REPRS}')
    return str(input_repr)


def validate_embedding_size(embedding_size) -> int:
    """512 or 6144 as an int, or OpenL3Error."""
    if isinstance(embedding_size, bool) or not isinstance(embedding_size, Real):
        raise OpenL3Error(f'Invalid embedding size "{embedding_size}". Must be one of {VALID_AUDIO_EMBEDDING_SIZES}')
    if embedding_size not in VALID_AUDIO_EMBEDDING_SIZES:
        raise OpenL3Error(f'Invalid embedding size "{embedding_size}". Must be one of {VALID_AUDIO_EMBEDDING_SIZES}')
    return int(float(embedding_size))


def validate_content_type(content_type: str) -> str:
    """ "music" or "env", or OpenL3Error."""
    if str(content_type) not in VALID_CONTENT_TYPES:
        raise OpenL3Error(f'Invalid content type "{content_type}". Must be one of {VALID_CONTENT_TYPES}')
    return str(content_type)


def _checked(onnx: OnnxModel, input_repr: str, embedding_size: int) -> AudioEmbeddingModel:
    """Load ``onnx`` now (integrity, provenance, ORT) and check it is the OpenL3 variant asked for."""
    onnx.check(OPENL3.name)
    try:
        exported_repr = json.loads(onnx.metadata.get("pqeval.frontend") or "{}").get("input_repr")
        exported_size = json.loads(onnx.metadata.get("pqeval.io") or "{}").get("embedding_size", embedding_size)
    except (ValueError, AttributeError):
        raise ModelError(
            f"{onnx.path}: unreadable OpenL3 metadata (pqeval.frontend, pqeval.io); re-export it"
        ) from None
    if exported_repr != input_repr or exported_size != embedding_size:
        raise ModelError(
            f"{onnx.path}: an OpenL3 {exported_repr}/{exported_size} model, not the {input_repr}/{embedding_size} "
            "asked for"
        )
    return AudioEmbeddingModel(onnx, input_repr, embedding_size)


def load_audio_embedding_model(
    input_repr: str, content_type: str, embedding_size: int, frontend: str = "kapre"
) -> AudioEmbeddingModel:
    """The exported model ``openl3-<input_repr>-<content_type>-<embedding_size>``, loaded and checked.

    Parameters
    ----------
    input_repr : {"linear", "mel128", "mel256"}
        Spectrogram the model was trained on.
    content_type : {"music", "env"}
        Training content.
    embedding_size : {512, 6144}
        Values per 1 s window.
    frontend : {"kapre"}
        openl3's default; "librosa" is refused (pqeval reproduces only the kapre frontend).

    Returns
    -------
    AudioEmbeddingModel
        For ``get_audio_embedding(..., model=...)``. Raises OpenL3Error for invalid arguments and
        :class:`~pqeval.errors.ModelError` if the model is not installed or not that variant.
    """
    input_repr = validate_frontend(frontend, input_repr)
    content_type = validate_content_type(content_type)
    embedding_size = validate_embedding_size(embedding_size)
    return _checked(open_model(openl3_key(input_repr, content_type, embedding_size)), input_repr, embedding_size)


def load_audio_embedding_model_from_path(
    model_path: str | os.PathLike, input_repr: str, embedding_size: int, frontend: str = "kapre"
) -> AudioEmbeddingModel:
    """An exported OpenL3 ``.onnx`` file (with its ``.onnx.json`` sidecar) by path.

    openl3 takes a Keras ``.h5`` weights file here; pqeval runs the ONNX file ``pqeval export
    openl3 --weights FILE.h5`` writes from it. Parameters and result as
    :func:`load_audio_embedding_model`.
    """
    input_repr = validate_frontend(frontend, input_repr)
    embedding_size = validate_embedding_size(embedding_size)
    path = Path(model_path)
    if path.suffix != ".onnx":
        raise ModelError(
            f"{path}: not an exported model; pqeval runs ONNX files: `pqeval export openl3 --input-repr {input_repr} "
            f"--content-type music|env --embedding-size {embedding_size} --weights {path}` writes one"
        )
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return _checked(OnnxModel(path), input_repr, embedding_size)
