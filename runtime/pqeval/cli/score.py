"""Scoring commands: ``score``, ``bench``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import render
from ..registry import (
    DEFAULT_ENGINE,
    DEFAULT_HOP,
    DEFAULT_PRECISION,
    EMBEDDING_METRICS,
    OPENL3,
    VGGISH,
    VGGISH_RESAMPLERS,
    check_names,
    parse_list,
)
from .app import EXIT_OK, EXIT_PARTIAL, app, examples
from .options import (
    Align,
    Engine,
    Hop,
    Json,
    Length,
    Metrics,
    Model,
    OpenL3Model,
    Precision,
    Quiet,
    Resampler,
    Threads,
    VGGishModel,
    VGGishOutput,
    score_options,
)


@app.command(
    help="Score DEGRADED against CLEAN with every metric.\n\n"
    + examples(
        "pqeval score clean.wav degraded.wav",
        "pqeval score clean.wav degraded.flac --model vggish --metrics vggish,pesq_wb --json > scores.json",
        "pqeval score clean.wav degraded.wav --hop 0.1 --openl3-model openl3-mel256-env-512",
    )
)
def score(
    clean: Annotated[Path, typer.Argument(help="Clean reference recording (wav, flac, ogg, mp3; any rate/channels).")],
    degraded: Annotated[Path, typer.Argument(help="Degraded recording to compare with it.")],
    model: Model = None,
    metrics: Metrics = None,
    hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key,
    vggish_output: VGGishOutput = "postprocessed",
    vggish_model: VGGishModel = VGGISH.default_key,
    resampler: Resampler = VGGISH_RESAMPLERS[0],
    align: Align = "report",
    length: Length = "trim",
    engine: Engine = DEFAULT_ENGINE,
    precision: Precision = DEFAULT_PRECISION,
    threads: Threads = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON (per-frame scores and timestamps included) instead of a table.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    from ..audio import open_audio
    from ..scoring import Scorer

    opts = score_options(locals())
    result = Scorer(opts).score(open_audio(clean), open_audio(degraded))  # read window batch by batch
    render.pair_json(result) if as_json else render.pair_table(result)
    render.pair_notes(result, quiet)
    raise typer.Exit(EXIT_PARTIAL if result.failed else EXIT_OK)


@app.command(
    "bench",
    help="Measure the runtime's latency and memory here (numpy + ONNX Runtime only; no "
    "torch/TensorFlow). For the side-by-side comparison with the original frameworks run "
    "`python bench/run.py` in a checkout.\n\n"
    + examples("pqeval bench", "pqeval bench --model vggish --seconds 60 --threads 1 --json"),
)
def bench_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedding model(s), comma-separated.")] = ",".join(
        EMBEDDING_METRICS
    ),
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the test signal in seconds.")] = 10.0,
    engine: Engine = DEFAULT_ENGINE,
    precision: Precision = DEFAULT_PRECISION,
    threads: Threads = None,
    reps: Annotated[int, typer.Option("--reps", help="Timed runs after one warm-up (median reported).")] = 5,
    hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key,
    audio: Annotated[
        Optional[Path], typer.Option("--audio", help="Time this recording instead of a synthetic 16 kHz signal.")
    ] = None,
    as_json: Json = False,
) -> None:
    from ..bench import run_bench

    models = check_names(parse_list(model), EMBEDDING_METRICS, "model")
    rows = run_bench(models, seconds, threads, reps, hop, openl3_model, audio, engine, precision)
    if as_json:
        print(render.json_text({"results": rows}))
    else:
        render.bench_table(rows, reps)
