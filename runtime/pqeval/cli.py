"""The ``pqeval`` command line: parse -> call the library -> render (:mod:`pqeval.render`).

Errors print one line to stderr, never a traceback. Exit codes: 0 every requested metric
computed; 3 some metric (or pair) is NaN, with reasons shown; 2 could not run (bad input file,
missing model, bad option); 130 interrupted; 1 a bug (``PQEVAL_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperGroup

from . import render
from .errors import PqevalError, UsageError
from .registry import (
    ALL_METRICS,
    CLASSIC_METRICS,
    DEFAULT_HOP,
    DEFAULT_METRICS,
    EMBEDDING_METRICS,
    OPENL3,
    OPENL3_NATIVE_HOP,
    VGGISH,
    check_names,
    parse_list,
)

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 0, 3, 2, 1, 130


class _Group(TyperGroup):
    """Runs a command and turns pqeval's errors into one line on stderr and an exit code, the same
    in a terminal and in-process (typer's CliRunner)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PqevalError as e:
            render.stderr(f"pqeval: error: {e}")
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            render.stderr("pqeval: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as e:
            if os.environ.get("PQEVAL_DEBUG") or type(e).__module__.startswith(("click", "typer")):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
            render.stderr(f"pqeval: internal error: {type(e).__name__}: {first} (rerun with PQEVAL_DEBUG=1 for a traceback)")
            raise typer.Exit(EXIT_BUG) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Score degraded recordings against their clean references: OpenL3 / VGGish embedding cosine "
    "similarity, PESQ and STOI/ESTOI, on numpy + ONNX Runtime.\n\n"
    "Examples:\n\n"
    "[dim]$[/dim] pqeval score clean.wav degraded.wav\n\n"
    "[dim]$[/dim] pqeval batch clean/ degraded/ --out results.csv\n\n"
    "[dim]$[/dim] pqeval study originals/ --out study/\n\n"
    "[dim]$[/dim] pqeval models",
)
export_app = typer.Typer(cls=_Group, no_args_is_help=True,
                         help="Build ONNX models from the original frameworks (needs the `export` extra).")
app.add_typer(export_app, name="export")


def _examples(*lines: str) -> str:
    """Help text examples, one command per line."""
    return "Examples:\n\n" + "\n\n".join(f"[dim]$[/dim] {ln}" for ln in lines)


def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"pqeval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """pqeval's commands."""


# --- options shared by several commands, declared once ------------------------------------------

Model = Annotated[Optional[str], typer.Option(
    "--model", "-m", help=f"Embedding model(s): {', '.join(EMBEDDING_METRICS)}, comma-separated (default: all). "
    "A model named here must be installed.")]
Metrics = Annotated[Optional[str], typer.Option(
    "--metrics", help=f"Comma-separated from {', '.join(ALL_METRICS)} (default: {','.join(DEFAULT_METRICS)}).")]
Hop = Annotated[float, typer.Option(
    "--hop", help=f"OpenL3 window hop in seconds. Cost grows as 1/hop: one ~20 GFLOP window per hop, so 10 s of "
    f"audio is ~{int(10 / DEFAULT_HOP)} windows at {DEFAULT_HOP} and ~{int(10 / OPENL3_NATIVE_HOP)} at "
    f"{OPENL3_NATIVE_HOP} (openl3's own default, used by the study); see the README for times.")]
OpenL3Model = Annotated[str, typer.Option("--openl3-model", help="Which exported OpenL3 variant to score with.")]
VGGishOutput = Annotated[str, typer.Option(
    "--vggish-output", help="postprocessed (torchvggish's 8-bit PCA output, default), embedding (before PCA) or "
    "embedding_raw (before the final ReLU, as Google's TF VGGish).")]
VGGishModel = Annotated[str, typer.Option(
    "--vggish-model", help=f"Which exported VGGish to use: vggish (default) or a compact variant "
    f"({', '.join(f'vggish-{k}' for k in VGGISH.compact_kinds)}; `pqeval export vggish --compact`).")]
Length = Annotated[str, typer.Option("--length", help="When lengths differ: trim both to the shorter (reported) "
                                     "or error.")]
Threads = Annotated[Optional[int], typer.Option("--threads", help="ONNX Runtime threads (default: all cores, "
                                                "or $PQEVAL_THREADS).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No notes, warnings or progress on stderr (errors "
                                     "still).")]
Kind = Annotated[str, typer.Option(
    "--kind", help="noise, bitrate, bitdepth (the study's), clipping, reverb, mp3, vorbis, opus; comma-separated, "
    "or 'study' or 'all'.")]
Level = Annotated[str, typer.Option("--level", help="low, high, extreme (comma-separated) or all.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for noise and reverberation (same seed, same output).")]


def _score_options(model: str | None, metrics: str | None, hop: float, openl3_model: str, vggish_output: str,
                   vggish_model: str, length: str = "trim", threads: int | None = None):
    """ScoreOptions from the shared options: --model replaces the embedding models of --metrics
    (or of the default set) and makes them required."""
    from .scoring import ScoreOptions

    chosen = parse_list(metrics) if metrics else DEFAULT_METRICS
    required: tuple[str, ...] = ()
    if model:
        required = check_names(parse_list(model), EMBEDDING_METRICS, "model")
        chosen = required + tuple(m for m in chosen if m in CLASSIC_METRICS)
    return ScoreOptions(metrics=chosen, length=length, vggish_output=vggish_output, vggish_model=vggish_model,
                        openl3_model=openl3_model, openl3_hop=hop, threads=threads, require_models=required)


def _kinds_levels(kind: str, level: str) -> tuple[Any, Any]:
    """--kind / --level as pqeval.study.degrade takes them ('study', 'all' or names)."""
    from .study import degrade as dg

    kinds = dg.STUDY_KINDS if kind == "study" else ("all" if kind == "all" else parse_list(kind))
    return kinds, ("all" if level == "all" else parse_list(level))


def _exit_for(rows: list[dict], metrics: tuple[str, ...]) -> int:
    bad = [r for r in rows if r.get("error") or any(r.get(m, "") == "" for m in metrics)]
    return EXIT_PARTIAL if bad else EXIT_OK


# --- commands ---------------------------------------------------------------------------------

@app.command(help="Score DEGRADED against CLEAN with every metric.\n\n" + _examples(
    "pqeval score clean.wav degraded.wav",
    "pqeval score clean.wav degraded.flac --model vggish --metrics vggish,pesq_wb --json > scores.json",
    "pqeval score clean.wav degraded.wav --hop 0.1 --openl3-model openl3-mel256-env-512"))
def score(
    clean: Annotated[Path, typer.Argument(help="Clean reference recording (wav, flac, ogg, mp3; any rate/channels).")],
    degraded: Annotated[Path, typer.Argument(help="Degraded recording to compare with it.")],
    model: Model = None, metrics: Metrics = None, hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key, vggish_output: VGGishOutput = "postprocessed",
    vggish_model: VGGishModel = VGGISH.default_key, length: Length = "trim", threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (per-frame scores and timestamps included) "
                                          "instead of a table.")] = False,
    quiet: Quiet = False,
) -> None:
    from .audio import open_audio
    from .scoring import Scorer

    opts = _score_options(model, metrics, hop, openl3_model, vggish_output, vggish_model, length, threads)
    result = Scorer(opts).score(open_audio(clean), open_audio(degraded))  # read window batch by batch
    render.pair_json(result) if as_json else render.pair_table(result)
    render.pair_notes(result, quiet)
    raise typer.Exit(EXIT_PARTIAL if result.failed else EXIT_OK)


@app.command(help="Write degraded copies of each input at every kind × level (each ends with peak "
             "normalisation).\n\n" + _examples("pqeval degrade speech.wav --out degraded/ --kind noise --level high",
                                              "pqeval degrade *.wav --out degraded/ --kind study"))
def degrade(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings to degrade (any format/rate; mixed to mono).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    kind: Kind = "all", level: Level = "all", seed: Seed = 0,
    fmt: Annotated[str, typer.Option("--format", help="wav (32-bit float, default) or flac (24-bit). Never 16-bit: "
                                     "it shifts PESQ/ESTOI.")] = "wav",
    as_json: Json = False, quiet: Quiet = False,
) -> None:
    from .study import degrade as dg

    kinds, levels = _kinds_levels(kind, level)
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


@app.command(help="Score many pairs; each clean reference is embedded once; a bad pair gets a row with its "
             "reason and the batch goes on.\n\nPairs in directory mode match by name: `x.wav` in CLEAN_DIR pairs "
             "with `x.wav` or `x__<anything>.wav` in DEGRADED_DIR (what `pqeval degrade` writes).\n\n" + _examples(
                 "pqeval batch pairs.csv --out results.csv",
                 "pqeval batch clean/ degraded/ --out results.csv --model vggish --json",
                 "pqeval batch clean/ degraded/ --out - --metrics pesq_wb,stoi > results.csv"))
def batch(
    sources: Annotated[list[Path], typer.Argument(help="PAIRS.csv (columns clean,degraded) or CLEAN_DIR "
                                                  "DEGRADED_DIR.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output CSV (an existing one is resumed; '-' writes the "
                                     "CSV to stdout).")],
    model: Model = None, metrics: Metrics = None, hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key, vggish_output: VGGishOutput = "postprocessed",
    vggish_model: VGGishModel = VGGISH.default_key, length: Length = "trim", threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the rows as JSON on stdout.")] = False,
    quiet: Quiet = False,
) -> None:
    import tempfile

    from .batch import pairs_from_csv, pairs_from_dirs, run_batch
    from .results import rows_json

    opts = _score_options(model, metrics, hop, openl3_model, vggish_output, vggish_model, length, threads)
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
    raise typer.Exit(_exit_for(res.rows, opts.metrics))


@app.command(help="Reproduce the study: degrade every input at every kind × level, score all pairs, write "
             "all_metrics.csv, summary and correlation tables, figures and report.md.\n\n" + _examples(
                 "pqeval study originals/ --out study-out/",
                 f"pqeval study originals/ --out study-out/ --kind all --hop {OPENL3_NATIVE_HOP}"))
def study(
    original_dir: Annotated[Path, typer.Argument(help="Folder of clean recordings (any format/rate). Names containing "
                                                 "speech/music/env set the content type.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (re-running resumes).")],
    kind: Kind = "study", level: Level = "all", seed: Seed = 0,
    sr: Annotated[str, typer.Option("--sr", help="Analysis sample rate of the converted inputs, or 'native'.")] = "16000",
    model: Model = None, metrics: Metrics = None, hop: Hop = DEFAULT_HOP,
    openl3_model: OpenL3Model = OPENL3.default_key, vggish_output: VGGishOutput = "postprocessed",
    vggish_model: VGGishModel = VGGISH.default_key, threads: Threads = None,
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Write tables and the report without "
                                             "figures.")] = False,
    quiet: Quiet = False,
) -> None:
    from .study import run_study

    opts = _score_options(model, metrics, hop, openl3_model, vggish_output, vggish_model, "trim", threads)
    kinds, levels = _kinds_levels(kind, level)
    try:
        rate = None if sr == "native" else int(sr)
    except ValueError:
        raise UsageError(f"--sr must be a rate in Hz or 'native', got {sr!r}") from None
    with render.Progress("scoring", quiet) as prog:
        res = run_study(original_dir, out, kinds, levels, seed, opts, rate, figures=not no_figures, progress=prog)
    for reason in res.skipped_inputs.values():
        render.stderr(f"pqeval: skipped input: {reason}")
    print(f"{res.pairs} pairs: {res.scored} scored, {res.reused} reused, {res.failed} failed")
    print(f"report: {out / 'report.md'}")
    _report_notes(res.report, quiet)
    raise typer.Exit(EXIT_PARTIAL if res.skipped_inputs else _exit_for(res.rows, opts.metrics))


def _report_notes(rep: Any, quiet: bool) -> None:
    if rep is None:
        return
    if rep.figures_skipped:
        render.stderr(f"pqeval: note: figures skipped: {rep.figures_skipped}", quiet)
    for w in [*rep.provenance_warnings[:1], *getattr(rep, "content_warnings", [])]:
        render.stderr(f"pqeval: warning: {w}", quiet)


@app.command(help="Redraw the tables, figures and report.md of a results table: any all_metrics.csv of "
             "`pqeval study` or CSV of `pqeval batch`.\n\n" + _examples(
                 "pqeval report study-out/all_metrics.csv --out study-out/",
                 "pqeval report results.csv --out report/ --format pdf"))
def report(
    results: Annotated[Path, typer.Argument(help="all_metrics.csv or a batch results CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (tables, figures/, report.md).")],
    fmt: Annotated[str, typer.Option("--format", help="Figure formats, comma-separated from png, pdf, svg.")]
    = "png,pdf,svg",
    no_figures: Annotated[bool, typer.Option("--no-figures", help="Tables and report.md only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the files written as JSON.")] = False,
    quiet: Quiet = False,
) -> None:
    from .study import write_report

    formats = check_names(parse_list(fmt), ("png", "pdf", "svg"), "figure format")
    rep = write_report(results, out, figures=not no_figures, formats=formats)
    paths = [str(p) for p in rep.paths]
    if as_json:
        print(render.json_text({"written": paths, "figures_skipped": rep.figures_skipped}))
    else:
        print(f"report: {rep.report} ({len(rep.figures)} figure files)")
    _report_notes(rep, quiet)


@app.command("models", help="List installed models and their provenance (weight source, verification at "
             "export).\n\n" + _examples("pqeval models", "pqeval models --json"))
def models_cmd(as_json: Json = False) -> None:
    from .session import installed_models, search_dirs

    rows = [m.describe() for m in installed_models()]
    dirs = [str(d) for d in search_dirs()]
    if as_json:
        print(render.json_text({"search_dirs": dirs, "models": rows}))
    else:
        render.models_table(rows, dirs)


def _default_out_dir() -> Path:
    from .session import CHECKOUT_MODELS, user_cache_dir

    return CHECKOUT_MODELS if os.access(CHECKOUT_MODELS, os.W_OK) else user_cache_dir()


def _need_export(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UsageError(f"exporting needs the original frameworks ({e.name} is missing): "
                         "pip install 'pqeval[export]'") from None


Seeded = Annotated[Optional[int], typer.Option("--seeded", help="Use seeded random weights (for tests: scores are "
                                               "NOT perceptual).")]
OutDir = Annotated[Optional[Path], typer.Option("--out-dir", help="Where to write the model (default: the "
                                                "checkout's models/ or the user cache).")]
Audio = Annotated[Optional[Path], typer.Option("--audio", help="Folder of real recordings to calibrate / measure "
                                               "the compact variant on.")]


@export_app.command("vggish", help="Export torchvggish to ONNX and verify it against torch.\n\n" + _examples(
    "pqeval export vggish --weights ./torchvggish-weights/", "pqeval export vggish --download",
    "pqeval export vggish --seeded 0 --compact int8fc --audio recordings/"))
def export_vggish_cmd(
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Directory with vggish-10086976.pth and "
                                                    "vggish_pca_params-970ea276.pth (or the first file).")] = None,
    download: Annotated[bool, typer.Option("--download", help="Download the upstream files (pinned URLs, "
                                           "hash-checked) into the user cache first.")] = False,
    seeded: Seeded = None, out_dir: OutDir = None,
    compact: Annotated[Optional[str], typer.Option("--compact", "--quantize", help="Also write a compact variant: "
                                                   "int8fc (int8 FC layers: smaller, changes 8-bit outputs) or fp16 "
                                                   "(fp16 storage).")] = None,
    audio: Audio = None,
) -> None:
    from .session import user_cache_dir

    mod = _need_export("pqeval_export.vggish")
    dl = user_cache_dir().parent / "downloads" if download else None
    path, check = mod.export_vggish(weights=weights, seeded=seeded, download_to=dl, out_dir=out_dir or _default_out_dir())
    _report_export(path)
    print("verified against torchvggish: " + json.dumps(check))
    if compact:
        _export_compact(path, compact, audio)


@export_app.command("openl3", help="Export an OpenL3 audio model (TensorFlow/Keras + kapre) to ONNX via tf2onnx "
                    "and verify it.\n\n" + _examples(
                        "pqeval export openl3", "pqeval export openl3 --input-repr mel128 --content-type env "
                        "--embedding-size 6144", "pqeval export openl3 --seeded 0"))
def export_openl3_cmd(
    input_repr: Annotated[str, typer.Option("--input-repr", help="linear, mel128 or mel256.")] = "mel256",
    content_type: Annotated[str, typer.Option("--content-type", help="music or env.")] = "music",
    embedding_size: Annotated[int, typer.Option("--embedding-size", help="512 or 6144.")] = 512,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="The openl3 .h5 weights file (default: the one "
                                                    "inside an installed openl3 package).")] = None,
    seeded: Seeded = None, out_dir: OutDir = None,
    compact: Annotated[Optional[str], typer.Option("--compact", "--quantize", help="Also write a compact variant: "
                                                   "int8qdq (static int8, calibrated on --audio).")] = None,
    audio: Audio = None,
) -> None:
    mod = _need_export("pqeval_export.openl3")
    path = mod.export_openl3(input_repr=input_repr, content_type=content_type, embedding_size=embedding_size,
                             weights=str(weights) if weights else None, seeded=seeded,
                             out_dir=out_dir or _default_out_dir())
    _report_export(path)
    if compact:
        _export_compact(path, compact, audio)


def _export_compact(path: Path, kind: str, audio: Optional[Path]) -> None:
    mod = _need_export("pqeval_export.compact")
    cpath, acc = mod.export_compact(path, kind, audio)
    _report_export(cpath)
    print("accuracy vs fp32: " + (json.dumps(acc) if acc else "not measured (pass --audio DIR)"))


def _report_export(path: Path) -> None:
    from .session import OnnxModel

    m = OnnxModel(path)
    print(f"wrote {path} (weights {m.weights})")
    if m.provenance.note:
        render.stderr(f"note: {m.provenance.note}")


@app.command("bench", help="Measure the runtime's latency and memory here (numpy + ONNX Runtime only; no "
             "torch/TensorFlow). For the side-by-side comparison with the original frameworks run "
             "`python bench/run.py` in a checkout.\n\n" + _examples(
                 "pqeval bench", "pqeval bench --model vggish --seconds 60 --threads 1 --json"))
def bench_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Embedding model(s), comma-separated.")]
    = ",".join(EMBEDDING_METRICS),
    seconds: Annotated[float, typer.Option("--seconds", help="Length of the test signal in seconds.")] = 10.0,
    threads: Threads = None,
    reps: Annotated[int, typer.Option("--reps", help="Timed runs after one warm-up (median reported).")] = 5,
    hop: Hop = DEFAULT_HOP, openl3_model: OpenL3Model = OPENL3.default_key,
    audio: Annotated[Optional[Path], typer.Option("--audio", help="Time this recording instead of a synthetic "
                                                  "16 kHz signal.")] = None,
    as_json: Json = False,
) -> None:
    from .bench import run_bench

    models = check_names(parse_list(model), EMBEDDING_METRICS, "model")
    rows = run_bench(models, seconds, threads, reps, hop, openl3_model, audio)
    if as_json:
        print(render.json_text({"results": rows}))
    else:
        render.bench_table(rows, reps)


def main() -> None:
    """Console entry point (``pqeval``); errors are handled inside the app (:class:`_Group`)."""
    app()


if __name__ == "__main__":
    main()
