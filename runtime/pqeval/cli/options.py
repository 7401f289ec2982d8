"""Options shared by several commands, declared once, and what they become (ScoreOptions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from ..registry import (
    ALL_METRICS,
    CLASSIC_METRICS,
    DEFAULT_HOP,
    DEFAULT_METRICS,
    EMBEDDING_METRICS,
    OPENL3_NATIVE_HOP,
    VGGISH,
    VGGISH_RESAMPLERS,
    check_names,
    parse_list,
)
from .app import EXIT_OK, EXIT_PARTIAL

if TYPE_CHECKING:
    from ..scoring import ScoreOptions

Model = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help=f"Embedding model(s): {', '.join(EMBEDDING_METRICS)}, comma-separated (default: all). "
        "A model named here must be installed.",
    ),
]
Metrics = Annotated[
    Optional[str],
    typer.Option(
        "--metrics", help=f"Comma-separated from {', '.join(ALL_METRICS)} (default: {','.join(DEFAULT_METRICS)})."
    ),
]
Hop = Annotated[
    float,
    typer.Option(
        "--hop",
        help=f"OpenL3 window hop in seconds. Cost grows as 1/hop: one ~20 GFLOP window per hop, so 10 s of "
        f"audio is ~{int(10 / DEFAULT_HOP)} windows at {DEFAULT_HOP} and ~{int(10 / OPENL3_NATIVE_HOP)} at "
        f"{OPENL3_NATIVE_HOP} (openl3's own default, used by the study); see the README for times.",
    ),
]
OpenL3Model = Annotated[str, typer.Option("--openl3-model", help="Which exported OpenL3 variant to score with.")]
VGGishOutput = Annotated[
    str,
    typer.Option(
        "--vggish-output",
        help="postprocessed (torchvggish's 8-bit PCA output, default), embedding (before PCA) or "
        "embedding_raw (before the final ReLU, as Google's TF VGGish).",
    ),
]
VGGishModel = Annotated[
    str,
    typer.Option(
        "--vggish-model",
        help=f"Which exported VGGish to use: vggish (default) or a compact variant "
        f"({', '.join(f'vggish-{k}' for k in VGGISH.compact_kinds)}; `pqeval export vggish --compact`).",
    ),
]
Resampler = Annotated[
    str,
    typer.Option(
        "--resampler",
        help=f"VGGish's resampler: {VGGISH_RESAMPLERS[0]} (torchvggish beside resampy 0.2.x, what openl3 0.4.2 "
        f"pins and the study ran; default) or {VGGISH_RESAMPLERS[1]} (beside resampy >= 0.3, a plain "
        "`pip install torchvggish`).",
    ),
]
Align = Annotated[
    str,
    typer.Option(
        "--align",
        help="report (default): a constant delay between the files is measured and reported in the notes and "
        "JSON; delay: a reliable delay (up to ±1 s) is compensated before scoring.",
    ),
]
Length = Annotated[
    str, typer.Option("--length", help="When lengths differ: trim both to the shorter (reported) or error.")
]
Threads = Annotated[
    Optional[int], typer.Option("--threads", help="ONNX Runtime threads (default: all cores, or $PQEVAL_THREADS).")
]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Inference engine: ort (ONNX Runtime, default; the parity reference) or openvino "
        "(pip install 'pqeval[openvino]'). `pqeval engines` lists what this machine runs.",
    ),
]
Precision = Annotated[
    str,
    typer.Option(
        "--precision",
        help="fp32 (default, exact to the original models), bf16 (openvino on CPUs with AVX512_BF16 or "
        "AMX-BF16) or int8 (each model's int8 compact variant). Refused where this CPU cannot run it "
        "natively; the change in scores is measured in docs/engines.md.",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No notes, warnings or progress on stderr (errors still).")]
Kind = Annotated[
    str,
    typer.Option(
        "--kind",
        help="noise, bitrate, bitdepth (the study's), clipping, reverb, mp3, vorbis, opus; comma-separated, "
        "or 'study' or 'all'.",
    ),
]
Level = Annotated[str, typer.Option("--level", help="low, high, extreme (comma-separated) or all.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for noise and reverberation (same seed, same output).")]


def score_options(params: Mapping[str, Any]) -> ScoreOptions:
    """ScoreOptions from a command's parameters (its ``locals()``, named as the option aliases
    above): --model replaces the embedding models of --metrics (or of the default set)."""
    from ..scoring import ScoreOptions
    from ..session import default_threads

    if params["threads"] is None:
        default_threads()  # a bad $PQEVAL_THREADS is a usage error before any work
    model, metrics = params["model"], params["metrics"]
    chosen = parse_list(metrics) if metrics else DEFAULT_METRICS
    if model:
        chosen = check_names(parse_list(model), EMBEDDING_METRICS, "model") + tuple(
            m for m in chosen if m in CLASSIC_METRICS
        )
    return ScoreOptions(
        metrics=chosen,
        length=params.get("length", "trim"),
        align=params["align"],
        vggish_output=params["vggish_output"],
        vggish_model=params["vggish_model"],
        vggish_resampler=params["resampler"],
        openl3_model=params["openl3_model"],
        openl3_hop=params["hop"],
        engine=params["engine"],
        precision=params["precision"],
        threads=params["threads"],
    )


def kinds_levels(kind: str, level: str) -> tuple[Any, Any]:
    """--kind / --level as pqeval.study.degrade takes them ('study', 'all' or names)."""
    from ..study import degrade as dg

    kinds = dg.STUDY_KINDS if kind == "study" else ("all" if kind == "all" else parse_list(kind))
    return kinds, ("all" if level == "all" else parse_list(level))


def exit_for(rows: list[dict], metrics: tuple[str, ...]) -> int:
    bad = [r for r in rows if r.get("error") or any(r.get(m, "") == "" for m in metrics)]
    return EXIT_PARTIAL if bad else EXIT_OK
