"""``pqeval batch``: many pairs into one resumable results table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import render
from ..errors import UsageError
from ..registry import DEFAULT_ENGINE, DEFAULT_HOP, DEFAULT_PRECISION, OPENL3, VGGISH, VGGISH_RESAMPLERS
from .app import app, examples
from .options import (
    Align,
    Engine,
    Hop,
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
    exit_for,
    score_options,
)


@app.command(
    help="Score many pairs; each clean reference is embedded once; a bad pair gets a row with its "
    "reason and the batch goes on.\n\nPAIRS.csv: columns clean and degraded (UTF-8, Excel's BOM is "
    "fine); relative paths resolve against the CSV's folder; its other columns (id, system, …) are "
    "kept in the results.\n\nPairs in directory mode match by name: `x.wav` in CLEAN_DIR pairs "
    "with `x.wav` or `x__<anything>.wav` in DEGRADED_DIR (what `pqeval degrade` writes); with "
    "--recursive, also in subfolders, within the same relative folder.\n\n"
    "The output is appended row by row (a run stopped at any moment keeps what it scored; "
    "rerun to resume) and locked: one batch writes it at a time.\n\n"
    + examples(
        "pqeval batch pairs.csv --out results.csv",
        "pqeval batch clean/ degraded/ --out results.csv --model vggish --json",
        "pqeval batch clean/ degraded/ --recursive --out results.csv",
        "pqeval batch clean/ degraded/ --out - --metrics pesq_wb,stoi > results.csv",
    )
)
def batch(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="PAIRS.csv (columns clean,degraded; relative paths resolve against the CSV's folder) "
            "or CLEAN_DIR DEGRADED_DIR."
        ),
    ],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            "-o",
            help="Output CSV (an existing results CSV is resumed; any other existing file is refused; "
            "'-' writes the CSV to stdout).",
        ),
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
    engine: Engine = DEFAULT_ENGINE,
    precision: Precision = DEFAULT_PRECISION,
    threads: Threads = None,
    recursive: Annotated[
        bool,
        typer.Option(
            "--recursive", "-r", help="Directory mode: also pair the files in subfolders (same relative path)."
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option("--workers", help="Score in N worker processes on this machine (each with cores/N threads)."),
    ] = 1,
    dask: Annotated[
        Optional[str],
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Score on a Dask cluster: a scheduler address (tcp://host:8786), a scheduler file, or "
            "'local' (a cluster on this machine). Needs pip install 'pqeval[dask]'.",
        ),
    ] = None,
    shard: Annotated[
        Optional[str],
        typer.Option(
            "--shard", metavar="I/N", help="Score only part I of N of the pairs (job arrays; join with `pqeval merge`)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the rows as JSON on stdout.")] = False,
    quiet: Quiet = False,
) -> None:
    import tempfile

    from ..batch import pairs_from_csv, pairs_from_dirs, run_batch
    from ..output import check_out
    from ..results import rows_json

    opts = score_options(locals())
    if out == "-" and as_json:
        raise UsageError("--out - and --json both write to stdout: choose one")
    if out != "-":
        check_out(out)  # before any work: never a recording, the pairs file, a device, a link
    if len(sources) == 1:
        if recursive:
            raise UsageError("--recursive is for CLEAN_DIR DEGRADED_DIR, not a pairs CSV")
        pairs = pairs_from_csv(sources[0])
    elif len(sources) == 2:
        pairs = pairs_from_dirs(sources[0], sources[1], recursive=recursive)
    else:
        raise UsageError("give PAIRS.csv, or CLEAN_DIR and DEGRADED_DIR")
    extra = list(dict.fromkeys(k for p in pairs for k in p.extra))  # the pairs CSV's other columns
    with tempfile.TemporaryDirectory(prefix="pqeval-") as tmp:
        path = Path(tmp) / "results.csv" if out == "-" else Path(out)
        with render.Progress("scoring", quiet, unit="pairs") as prog:
            res = run_batch(
                pairs, path, opts, extra_columns=extra, progress=prog, workers=workers, client=dask, shard=shard
            )
        if out == "-":
            sys.stdout.write(path.read_text(encoding="utf-8"))
    if as_json:
        print(rows_json(res.rows, opts.metrics))
    render.batch_summary(res.rows, "stdout" if out == "-" else out, res.scored, res.reused, res.failed, quiet)
    raise typer.Exit(exit_for(res.rows, opts.metrics))
