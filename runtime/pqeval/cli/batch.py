"""``pqeval batch``: many pairs into one resumable results table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from .. import render
from ..errors import UsageError
from ..registry import DEFAULT_HOP, OPENL3, VGGISH, VGGISH_RESAMPLERS
from .app import app, examples
from .options import (
    Align,
    Hop,
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
