"""The unit of work of a batch, the same on every engine: score one group of pairs (one clean
file) and return their rows. Runs in the batch's own process, in a worker process, or on a Dask
worker; models load once per process (:func:`scorer_for`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .audio import Audio, file_identity, open_audio
from .errors import ModelError, PqevalError
from .pairs import Pair
from .registry import EMBEDDING_METRICS
from .results import pair_row
from .scoring import ScoreOptions, Scorer

CLEAN_CACHE_SIZE = 8  # clean embeddings kept per process (a group uses one; an OpenL3 10-min one is ~2.4 MB)
SCORED, REUSED, FAILED = "scored", "reused", "failed"

_SCORERS: dict[tuple[str, int | None], Scorer] = {}


def _model_shas(scorer: Scorer) -> dict[str, str]:
    """``{"<m>_model_sha256": sha256}`` of the models this Scorer scores with (as their sidecars said
    when they were opened)."""
    return {
        f"{m}_model_sha256": str(scorer.embedder(m).model.sidecar.get("sha256", ""))
        for m in scorer.options.metrics
        if m in EMBEDDING_METRICS
    }


def _changed(scorer: Scorer, stamp: dict[str, str]) -> dict[str, tuple[str, str]]:
    """The stamp's model sha256 columns this Scorer's models do not match: column -> (have, want)."""
    have = _model_shas(scorer)
    return {k: (v, stamp[k]) for k, v in have.items() if k in stamp and stamp[k] != v}


def scorer_for(options: ScoreOptions, stamp: dict[str, str] | None = None) -> Scorer:
    """This process's Scorer for ``options`` (models checked and sessions made once per process).

    With ``stamp`` (:func:`pqeval.results.run_stamp`), its models must be the ones the stamp names
    by sha256: a model re-exported since this process opened it is opened afresh, and a model
    that still differs (another file on this machine than where the run was stamped) is a
    ModelError, so no row ever carries a sha256 other than its model's."""
    from .batch import LRUCache

    key = (options.key(), options.threads)
    diff: dict[str, tuple[str, str]] = {}
    for _ in range(2):  # a second time with every model read afresh
        cached = _SCORERS.get(key)
        if cached is not None:
            scorer = cached
        else:
            scorer = Scorer(options, cache=LRUCache(CLEAN_CACHE_SIZE))
            scorer.check_models()
            _SCORERS.clear()  # one set of sessions per process
            _SCORERS[key] = scorer
        if not stamp or not (diff := _changed(scorer, stamp)):
            return scorer
        _forget_models(scorer)
        _SCORERS.clear()
    col, (have, want) = next(iter(diff.items()))
    m = col.removesuffix("_model_sha256")
    raise ModelError(
        f"{scorer.embedder(m).model.path}: sha256 {have[:12]}…, but this run was stamped with "
        f"{options.model_key(m)} sha256 {want[:12]}… (the model differs between machines, or changed during the run)"
    )


def _forget_models(scorer: Scorer) -> None:
    """Drop this process's open models of ``scorer`` so the next lookup reads the files afresh."""
    from . import session

    for m in scorer.options.metrics:
        if m in EMBEDDING_METRICS:
            path = scorer.embedder(m).model.path
            for k in [k for k in session._OPEN if k[0] == str(path)]:
                del session._OPEN[k]


def reusable(prev: dict | None, stamp: dict[str, str], clean_sha: str, degraded_sha: str) -> bool:
    """Whether an earlier row can stand for this pair: same files (sha256), same stamp (settings,
    models), and it did not fail."""
    return (
        prev is not None
        and bool(clean_sha)
        and not prev.get("error")
        and prev.get("clean_sha256") == clean_sha
        and prev.get("degraded_sha256") == degraded_sha
        and all(prev.get(k) == v for k, v in stamp.items())
    )


def score_group(
    pairs: list[Pair], options: ScoreOptions, stamp: dict[str, str], previous: dict[tuple[str, str], dict]
) -> list[tuple[dict, str]]:
    """:func:`iter_group` as a list (what a worker process or a Dask task returns)."""
    return list(iter_group(pairs, options, stamp, previous))


def iter_group(
    pairs: list[Pair], options: ScoreOptions, stamp: dict[str, str], previous: dict[tuple[str, str], dict]
) -> Iterator[tuple[dict, str]]:
    """Score (or reuse from ``previous``) each pair of one group, yielding ``(row, status)`` in
    the group's order, status one of "scored", "reused", "failed". ``stamp``: the columns every
    row of this run carries (:func:`pqeval.results.run_stamp`). A pair whose files cannot be used
    gets a row with every metric empty and ``error`` set; the group goes on."""
    scorer = scorer_for(options, stamp)
    hashes: dict[Path, str] = {}

    def digest(p: Path) -> str:
        if p not in hashes:
            hashes[p] = file_identity(p)  # a stream is read once, shared with open_audio
        return hashes[p]

    clean_audio: Audio | None = None
    for pair in pairs:
        if pair.problem:  # a line of the pairs CSV that names no usable pair
            row = pair_row(pair, None, options.metrics, error=pair.problem)
            row.update(clean_sha256="", degraded_sha256="", **stamp)
            yield row, FAILED
            continue
        try:
            hc, hd = digest(pair.clean), digest(pair.degraded)
        except (OSError, PqevalError):  # the open below reports it in the pair's row
            hc = hd = ""
        prev = previous.get(pair.key)
        if prev is not None and reusable(prev, stamp, hc, hd):
            yield {**prev, **pair.extra}, REUSED
            continue
        try:
            if clean_audio is None or not hc:
                clean_audio = open_audio(pair.clean)  # opened (validated) once for the group
            result = scorer.score(clean_audio, open_audio(pair.degraded), clean_id=hc or None)
            row, status = pair_row(pair, result, options.metrics), SCORED
        except PqevalError as e:
            row, status = pair_row(pair, None, options.metrics, error=str(e)), FAILED
        row.update(clean_sha256=hc, degraded_sha256=hd, **stamp)
        yield row, status
