"""The Python API in two calls: :func:`score` a (clean, degraded) pair, :func:`embed` one clip.

Both are thin: they turn keywords into a :class:`~pqeval.scoring.ScoreOptions` and inputs into
:class:`~pqeval.audio.Audio`, then run the same :class:`~pqeval.scoring.Scorer` as
``pqeval score``, so a pair scored here and on the command line with the same options gives the
same numbers. For many pairs, build one ``Scorer(ScoreOptions(...))`` and reuse it.

An input is a path (``str`` or ``os.PathLike``; ``"-"`` is a file named ``-``, not stdin), an
``(array, sample_rate)`` tuple (what ``soundfile.read`` returns), or an :class:`~pqeval.audio.Audio`
(``pqeval.load_audio`` / ``open_audio`` / ``from_array``). Arrays are ``(n,)`` or
``(n, channels)``, any float or int dtype taken as is (full scale 1.0), at any rate; channels are
averaged to mono, as when reading a file.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import fields, replace
from typing import Any, Union

import numpy as np

from .audio import Audio, from_array, open_audio
from .embedding import Embedding
from .errors import ModelError, UsageError
from .registry import FAMILIES, base_spec, parse_list
from .scoring import PairScore, ScoreOptions, Scorer

#: What :func:`score` and :func:`embed` accept as a recording.
AudioInput = Union[str, "os.PathLike[str]", tuple[Any, Any], Audio]

#: The keywords :func:`score` takes: the fields of :class:`~pqeval.scoring.ScoreOptions`.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ScoreOptions))


def _family_args(family: str) -> dict[str, str]:
    """Embedder keyword -> ScoreOptions field for embedding family ``family`` (``{"hop": "openl3_hop"}``)."""
    return {
        f.metadata["arg"]: f.name
        for f in fields(ScoreOptions)
        if f.metadata.get("family") == family and f.metadata.get("arg")
    }


def _metrics(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return parse_list(value)
    if isinstance(value, (list, tuple)) and all(isinstance(m, str) for m in value):
        return tuple(dict.fromkeys(m.strip() for m in value))
    raise UsageError(f"metrics must be a comma-separated string or a list of names, got {value!r}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name} must be a number, got {value!r}")
    return float(value)


def _whole(name: str, value: Any) -> int:
    """An integer given as int, numpy integer or whole float (16000.0); UsageError otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    whole = float(value)
    if not (math.isfinite(whole) and whole.is_integer()):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    return int(whole)


def make_options(**kwargs: Any) -> ScoreOptions:
    """:class:`~pqeval.scoring.ScoreOptions` from :func:`score`'s keywords, typed as the CLI types them.

    ``metrics`` may be a comma-separated string (``"vggish,pesq_wb"``) or a list/tuple of names
    (duplicates dropped, first kept); ``openl3_hop`` any real number (stored as float seconds);
    ``threads`` a whole number or None; the other options strings. Raises UsageError naming the
    valid options for an unknown keyword, and for a value of the wrong type or out of range.

    Examples
    --------
    >>> make_options(metrics="vggish,stoi", openl3_hop=1).openl3_hop
    1.0
    """
    unknown = sorted(set(kwargs) - set(OPTION_NAMES))
    if unknown:
        near = [o for u in unknown for o in OPTION_NAMES if o.endswith(f"_{u}")]  # the CLI's --hop, --resampler
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise UsageError(f"unknown option(s) {', '.join(unknown)}{hint}; valid options: {', '.join(OPTION_NAMES)}")
    typed: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name == "metrics":
            typed[name] = _metrics(value)
        elif name == "openl3_hop":
            typed[name] = _number(name, value)
        elif name == "threads":
            typed[name] = None if value is None else _whole(name, value)
        elif not isinstance(value, str):
            raise UsageError(f"{name} must be a string, got {value!r}")
        else:
            typed[name] = value
    return ScoreOptions(**typed)


def _audio(x: Any, sample_rate: Any, what: str) -> Audio:
    """An :class:`Audio` from a path (read on demand, as the CLI reads it), an (array, rate) tuple,
    an array with ``sample_rate``, or an Audio as is."""
    if isinstance(x, Audio):
        if sample_rate is not None:
            raise UsageError(f"{what}: sample_rate is given, but an Audio carries its own rate")
        return x
    if isinstance(x, (str, os.PathLike)):
        if sample_rate is not None:
            raise UsageError(f"{what}: sample_rate is for arrays; a file ({os.fspath(x)!r}) has its own rate")
        name = os.fspath(x)
        if not isinstance(name, str):
            raise UsageError(f"{what}: a path must be text, got {name!r}")
        # A path is a file: "-" is a file named "-" here, not stdin (that is the command line's).
        return open_audio(os.path.join(".", name) if name == "-" else name)
    if isinstance(x, tuple):
        if len(x) != 2:
            raise UsageError(f"{what}: a tuple must be (array, sample_rate), got {len(x)} items")
        if sample_rate is not None:
            raise UsageError(f"{what}: the sample rate is given twice (in the tuple and as sample_rate)")
        x, sample_rate = x
    if isinstance(x, (bytes, str)) or not hasattr(x, "__len__"):
        raise UsageError(f"{what}: expected a path, an (array, sample_rate) tuple or an array, got {type(x).__name__}")
    if sample_rate is None:
        raise UsageError(f"{what}: an array needs its sample rate: (array, sample_rate) or sample_rate=")
    return from_array(np.asarray(x), _whole("sample_rate", sample_rate), f"<{what} array>")


def score(clean: AudioInput, degraded: AudioInput, **options: Any) -> PairScore:
    """Score ``degraded`` against ``clean`` with every chosen metric, as ``pqeval score`` does.

    Parameters
    ----------
    clean, degraded : str, os.PathLike, (np.ndarray, int) or Audio
        A recording's path (any format libsndfile reads, any rate and channel count; read from
        disk batch by batch), an ``(array, sample_rate)`` tuple with ``array`` of shape ``(n,)``
        or ``(n, channels)`` at ``sample_rate`` Hz (full scale 1.0), or an
        :class:`~pqeval.audio.Audio`. A degraded recording at another rate is resampled to the
        clean rate.
    **options
        The fields of :class:`~pqeval.scoring.ScoreOptions` (:data:`OPTION_NAMES`):
        ``metrics`` (list or comma string from vggish, openl3, pesq_wb, pesq_nb, stoi, estoi;
        default vggish, openl3, pesq_wb, stoi, estoi), ``length`` ("trim" | "error"),
        ``align`` ("report" | "delay"), ``vggish_model`` (model key), ``vggish_output``
        ("postprocessed" | "embedding" | "embedding_raw"), ``vggish_resampler``
        ("kaiser_best_0.2" | "kaiser_best_0.3"), ``openl3_model`` (model key), ``openl3_hop``
        (seconds between OpenL3 windows, default 0.5), ``engine`` ("ort" default, the parity
        reference | "openvino"), ``precision`` ("fp32" default | "bf16" | "int8"; refused where
        this machine cannot run it natively, ``pqeval engines``), ``threads`` (inference threads;
        does not change the numbers).

    Returns
    -------
    PairScore
        ``.metrics[name].value`` (float; NaN with ``.reason`` when a metric cannot be computed
        for this pair), ``.metrics[name].details`` (for embeddings: per-frame cosines
        ``frames`` and their start ``times`` in seconds, ``weights`` provenance), ``.notes``
        (what was done to align the pair), ``.sr`` (Hz), ``.seconds`` (compared length, s),
        ``.delay``, ``.settings``; ``.as_dict()`` is the CLI's ``--json``.

    Raises
    ------
    UsageError
        An unknown option (the message lists the valid ones), or a value that does not fit.
    AudioError
        An input that cannot be used (missing, unreadable, empty, NaN/inf, lengths differing
        with ``length="error"``).
    ModelError
        A model an embedding metric needs is missing or unusable.

    Examples
    --------
    >>> import pqeval
    >>> pqeval.score("clean.wav", "degraded.wav").as_dict()  # doctest: +SKIP
    >>> r = pqeval.score((x, 16000), (y, 16000), metrics="vggish,stoi", openl3_hop=0.1)  # doctest: +SKIP
    >>> r.metrics["stoi"].value  # doctest: +SKIP
    """
    opts = make_options(**options)
    return Scorer(opts).score(_audio(clean, None, "clean"), _audio(degraded, None, "degraded"))


def _family_of(model: str) -> tuple[str, str]:
    """(family, model key) for a family name or a model key; UsageError if it is neither."""
    if not isinstance(model, str):
        raise UsageError(f"model must be a family or model key (a string), got {model!r}")
    if model in FAMILIES:
        return model, FAMILIES[model].default_key
    spec = base_spec(model)
    if spec is not None:
        return spec.family, model
    from .session import find_model, open_model

    try:  # a model installed under a key the registry does not know: its file says its family
        find_model(model)
    except ModelError:
        raise UsageError(
            f"unknown model {model!r}; give a family ({', '.join(FAMILIES)}) or a model key, e.g. "
            f"{', '.join(f.default_key for f in FAMILIES.values())} or a compact variant such as vggish-int8fc "
            "(`pqeval models` lists the installed ones)"
        ) from None
    family = open_model(model).metadata.get("pqeval.model_id")
    if family not in FAMILIES:
        raise ModelError(f"model {model!r}: its file names no embedding family ({family!r}); re-export it")
    return family, model


def embed(
    audio: AudioInput | np.ndarray, sample_rate: int | None = None, model: str = "vggish", **options: Any
) -> Embedding:
    """Per-frame embeddings of one clip: exactly the frames :func:`score` compares for that signal.

    (:func:`score` embeds each side after aligning the pair: the degraded resampled to the clean
    rate, both trimmed to the common length or shifted by ``align="delay"``; a clip embedded here
    is taken as it is.)

    Parameters
    ----------
    audio : str, os.PathLike, np.ndarray, (np.ndarray, int) or Audio
        A recording's path, or an array of shape ``(n,)`` or ``(n, channels)`` (full scale 1.0)
        with ``sample_rate``, or an ``(array, sample_rate)`` tuple, or an Audio.
    sample_rate : int or None
        Hz of an array; must be None for a path (a file has its own rate).
    model : str
        An embedding family ("vggish", "openl3": its default model) or a model key
        ("openl3-mel256-music-512", "vggish-int8fc", ...).
    **options
        VGGish: ``output`` ("postprocessed" default | "embedding" | "embedding_raw"),
        ``resampler`` ("kaiser_best_0.2" default | "kaiser_best_0.3"). OpenL3: ``hop`` (seconds
        between windows, default 0.5). Both: ``engine``, ``precision`` and ``threads`` (as
        :func:`score`). The defaults are :func:`score`'s.

    Returns
    -------
    Embedding
        ``.frames`` [N, D] float32 (VGGish D = 128, one frame per 0.96 s example; OpenL3 D = 512
        or 6144, one per 1 s window), ``.times`` [N] frame starts in seconds, ``.model``,
        ``.provenance`` (where the weights came from; ``.perceptual`` only for the published
        ones), ``.notes`` (the input's notes, prefixed by its name, then the embedder's, e.g. a
        short clip zero-padded).

    Raises
    ------
    UsageError
        An unknown model or option (the message lists the valid ones), a path with
        ``sample_rate``, an array without it.
    AudioError
        An unusable input, or a clip too short for VGGish (under 0.975 s).
    ModelError
        The model is missing or unusable.

    Examples
    --------
    >>> import pqeval
    >>> e = pqeval.embed("clean.wav", model="openl3", hop=0.1)  # doctest: +SKIP
    >>> e.frames.shape, e.times[:3]  # [N, 512] float32, N about seconds / hop  # doctest: +SKIP
    >>> pqeval.embed(np.zeros(3 * 16000), 16000, output="embedding").frames.shape  # doctest: +SKIP
    (3, 128)
    """
    family, key = _family_of(model)
    args = _family_args(family)
    valid = (*args, "engine", "precision", "threads")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UsageError(
            f"unknown option(s) {', '.join(unknown)} for {family} ({key}); valid options: {', '.join(valid)}"
        )
    named = {args.get(k, k): v for k, v in options.items()}
    scorer = Scorer(make_options(metrics=(family,), **{f"{family}_model": key}, **named))
    scorer.check_models()
    clip = _audio(audio, sample_rate, "audio")
    emb = scorer.embedder(family).embed(clip.samples, clip.sr)
    mixed = (f"{clip.channels} channels mixed to mono",) if clip.channels > 1 else ()
    notes = tuple(f"{clip.path}: {n}" for n in (*clip.notes, *mixed))
    return replace(emb, notes=notes + tuple(emb.notes)) if notes else emb
