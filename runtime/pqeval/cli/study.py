"""Study commands: ``degrade``, ``study``, ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import render
from ..errors import PqevalError, UsageError
from ..registry import (
    DEFAULT_ENGINE,
    DEFAULT_HOP,
    DEFAULT_PRECISION,
    OPENL3,
    OPENL3_NATIVE_HOP,
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
    Kind,
    Level,
    Metrics,
    Model,
    OpenL3Model,
    Precision,
    Quiet,
    Resampler,
    Seed,
    Threads,
    VGGishModel,
    VGGishOutput,
    exit_for,
    kinds_levels,
    score_options,
)


@app.command(
    help="Write degraded copies of each input at every kind × level (each ends with peak "
    "normalisation).\n\n"
    + examples(
        "pqeval degrade speech.wav --out degraded/ --kind noise --level high",
        "pqeval degrade *.wav --out degraded/ --kind study",
    )
)
def degrade(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings to degrade (any format/rate; mixed to mono).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    kind: Kind = "all",
    level: Level = "all",
    seed: Seed = 0,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="wav (32-bit float, default) or flac (24-bit). Never 16-bit: it shifts PESQ/ESTOI."
        ),
    ] = "wav",
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    from ..study import degrade as dg

    kinds, levels = kinds_levels(kind, level)
    written: list[str] = []
    failed: list[dict] = []
    for i, path in enumerate(inputs):
        try:
            res = dg.degrade_file(path, out, kinds, levels, seed=seed, fmt=fmt)
        except PqevalError as e:
            if len(inputs) == 1 or isinstance(e, UsageError):
                raise
            failed.append({"file": str(path), "reason": str(e)})
            render.stderr(f"pqeval: skipped: {e}")
            continue
        written += [str(p) for p in res.written]
        if i == 0:  # the same codecs are missing for every input: say it once
            for n in res.notes:
                render.stderr(f"pqeval: note: {n}", quiet)
    if as_json:
        print(render.json_text({"written": written, "failed": failed}))
    else:
        render.stderr(f"wrote {len(written)} files to {out}", quiet)
    raise typer.Exit(EXIT_PARTIAL if failed else EXIT_OK)


@app.command(
    help="Reproduce the study: degrade every input at every kind × level, score all pairs, write "
    "all_metrics.csv, summary and correlation tables, figures and report.md.\n\n"
    + examples(
        "pqeval study originals/ --out study-out/",
        f"pqeval study originals/ --out study-out/ --kind all --hop {OPENL3_NATIVE_HOP}",
    )
)
def study(
    original_dir: Annotated[
        Path,
        typer.Argument(
            help="Folder of clean recordings (any format/rate). Names containing speech/music/env set the content type."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (re-running resumes).")],
    kind: Kind = "study",
    level: Level = "all",
    seed: Seed = 0,
    sr: Annotated[
        str, typer.Option("--sr", help="Analysis sample rate of the converted inputs, or 'native'.")
    ] = "16000",
    model: Model = None,
    metrics: Metrics = None,
    hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key,
    vggish_output: VGGishOutput = "postprocessed",
    vggish_model: VGGishModel = VGGISH.default_key,
    resampler: Resampler = VGGISH_RESAMPLERS[0],
    align: Align = "report",
    engine: Engine = DEFAULT_ENGINE,
    precision: Precision = DEFAULT_PRECISION,
    threads: Threads = None,
    no_figures: Annotated[
        bool, typer.Option("--no-figures", help="Write tables and the report without figures.")
    ] = False,
    quiet: Quiet = False,
) -> None:
    from ..study import run_study

    opts = score_options(locals())
    kinds, levels = kinds_levels(kind, level)
    try:
        rate = None if sr == "native" else int(sr)
    except ValueError:
        rate = 0
    if rate is not None and not 1000 <= rate <= 384000:
        raise UsageError(f"--sr must be a rate in Hz (1000..384000) or 'native', got {sr!r}")
    with render.Progress("scoring", quiet) as prog:
        res = run_study(original_dir, out, kinds, levels, seed, opts, rate, figures=not no_figures, progress=prog)
    for reason in res.skipped_inputs.values():
        render.stderr(f"pqeval: skipped input: {reason}")
    print(f"{res.pairs} pairs: {res.scored} scored, {res.reused} reused, {res.failed} failed")
    print(f"report: {out / 'report.md'}")
    _report_notes(res.report, quiet)
    raise typer.Exit(EXIT_PARTIAL if res.skipped_inputs else exit_for(res.rows, opts.metrics))


def _report_notes(rep: Any, quiet: bool) -> None:
    if rep is None:
        return
    if rep.figures_skipped:
        render.stderr(f"pqeval: note: figures skipped: {rep.figures_skipped}", quiet)
    for w in [*rep.provenance_warnings[:1], *getattr(rep, "content_warnings", [])]:
        render.stderr(f"pqeval: warning: {w}", quiet)


@app.command(
    help="Redraw the tables, figures and report.md of a results table: any all_metrics.csv of "
    "`pqeval study` or CSV of `pqeval batch`.\n\n"
    + examples(
        "pqeval report study-out/all_metrics.csv --out study-out/",
        "pqeval report results.csv --out report/ --format pdf",
    )
)
def report(
    results: Annotated[Path, typer.Argument(help="all_metrics.csv or a batch results CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tables, figures/, report.md).")],
    fmt: Annotated[
        str, typer.Option("--format", help="Figure formats, comma-separated from png, pdf, svg.")
    ] = "png,pdf,svg",
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Tables and report.md only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files written as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    from ..study import write_report

    formats = check_names(parse_list(fmt), ("png", "pdf", "svg"), "figure format")
    rep = write_report(results, out, figures=not no_figures, formats=formats)
    paths = [str(p) for p in rep.paths]
    if as_json:
        print(render.json_text({"written": paths, "figures_skipped": rep.figures_skipped}))
    else:
        print(f"report: {rep.report} ({len(rep.figures)} figure files)")
    _report_notes(rep, quiet)
