"""Scoring commands: ``score``, ``batch``, ``bench``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import render
from ..errors import UsageError
from ..registry import (
    DEFAULT_HOP,
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
    Hop,
    Json,
    Length,
    Metrics,
    Model,
    OpenL3Model,
    Quiet,
    Resampler,
    Threads,
    VGGishModel,
    VGGishOutput,
    exit_for,
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
    help="Score many pairs; each clean reference is embedded once; a bad pair gets a row with its "
    "reason and the batch goes on.\n\nPairs in directory mode match by name: `x.wav` in CLEAN_DIR pairs "
    "with `x.wav` or `x__<anything>.wav` in DEGRADED_DIR (what `pqeval degrade` writes).\n\n"
    + examples(
        "pqeval batch pairs.csv --out results.csv",
        "pqeval batch clean/ degraded/ --out results.csv --model vggish --json",
        "pqeval batch clean/ degraded/ --out - --metrics pesq_wb,stoi > results.csv",
    )
)
def batch(
    sources: Annotated[
        list[Path], typer.Argument(help="PAIRS.csv (columns clean,degraded) or CLEAN_DIR DEGRADED_DIR.")
    ],
    out: Annotated[
        str, typer.Option("--out", "-o", help="Output CSV (an existing one is resumed; '-' writes the CSV to stdout).")
    ],
    model: Model = None,
    metrics: Metrics = None,
    hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key,
    vggish_output: VGGishOutput = "postprocessed",
    vggish_model: VGGishModel = VGGISH.default_key,
    resampler: Resampler = VGGISH_RESAMPLERS[0],
    align: Align = "report",
    length: Length = "trim",
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the rows as JSON on stdout.")] = False,
    quiet: Quiet = False,
) -> None:
    import tempfile

    from ..batch import pairs_from_csv, pairs_from_dirs, run_batch
    from ..results import rows_json

    opts = score_options(locals())
    if len(sources) == 1:
        pairs = pairs_from_csv(sources[0])
    elif len(sources) == 2:
        pairs = pairs_from_dirs(*sources)
    else:
        raise UsageError("give PAIRS.csv, or CLEAN_DIR and DEGRADED_DIR")
    if out == "-" and as_json:
        raise UsageError("--out - and --json both write to stdout: choose one")
    with tempfile.TemporaryDirectory(prefix="pqeval-") as tmp:
        path = Path(tmp) / "results.csv" if out == "-" else Path(out)
        with render.Progress("scoring", quiet) as prog:
            res = run_batch(pairs, path, opts, progress=prog)
        if out == "-":
            sys.stdout.write(path.read_text(encoding="utf-8"))
    if as_json:
        print(rows_json(res.rows, opts.metrics))
    render.batch_summary(res.rows, "stdout" if out == "-" else out, res.scored, res.reused, res.failed, quiet)
    raise typer.Exit(exit_for(res.rows, opts.metrics))


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
    rows = run_bench(models, seconds, threads, reps, hop, openl3_model, audio)
    if as_json:
        print(render.json_text({"results": rows}))
    else:
        render.bench_table(rows, reps)
