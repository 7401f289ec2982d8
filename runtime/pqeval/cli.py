"""The ``pqeval`` command line (typer). Errors print one line to stderr, never a traceback.

Exit codes: 0 every requested metric computed; 3 some metric (or pair) is NaN, with reasons
shown; 2 could not run (bad input file, missing model, bad option); 130 interrupted.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import PqevalError, UsageError

EXIT_OK, EXIT_PARTIAL, EXIT_ERROR = 0, 3, 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    help="""Score degraded recordings against their clean references: OpenL3 / VGGish embedding
cosine similarity, PESQ and STOI/ESTOI, on numpy + ONNX Runtime.

Examples:

    pqeval score clean.wav degraded.wav
    pqeval score clean.wav degraded.flac --model vggish --metrics vggish,pesq_wb --json
    pqeval models
    pqeval export vggish --weights ~/Downloads/torchvggish/
""",
)
export_app = typer.Typer(no_args_is_help=True, help="Build ONNX models from the original frameworks (needs the `export` extra).")
app.add_typer(export_app, name="export")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def _fmt(v: float) -> str:
    return "NaN" if math.isnan(v) else f"{v:.4f}"


def _split(s: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x.strip() for x in s.split(",") if x.strip()))


def _kinds_levels(kind: str, level: str):
    """--kind / --level as pqeval.degrade takes them ('study', 'all' or comma-separated names)."""
    from . import degrade as dg

    kinds = dg.STUDY_KINDS if kind == "study" else ("all" if kind == "all" else _split(kind))
    return kinds, ("all" if level == "all" else _split(level))


VGGISH_MODEL_HELP = ("Which exported VGGish to use: vggish (default), or a compact variant such as "
                     "vggish-int8fc / vggish-fp16 (`pqeval export vggish --compact`).")


def _parse_models(model: str) -> tuple[str, ...]:
    """--model: embedding models (vggish, openl3), comma-separated."""
    from .scoring import EMBEDDING_METRICS

    models = _split(model)
    bad = [m for m in models if m not in EMBEDDING_METRICS]
    if bad:
        raise UsageError(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(EMBEDDING_METRICS)}")
    return models


def _parse_metrics(metrics: Optional[str], model: Optional[str]) -> tuple[str, ...]:
    """Metrics to compute: --metrics (or the default set), with --model replacing its embedding models."""
    from .scoring import CLASSIC_METRICS, DEFAULT_METRICS

    chosen = _split(metrics) if metrics else DEFAULT_METRICS
    if model:
        chosen = _parse_models(model) + tuple(m for m in chosen if m in CLASSIC_METRICS)
    return chosen


def _print_pair(result, console) -> None:
    from rich.table import Table

    t = Table(title=f"{Path(result.clean).name}  vs  {Path(result.degraded).name}", title_justify="left")
    t.add_column("metric")
    t.add_column("score", justify="right")
    t.add_column("detail")
    for name, m in result.metrics.items():
        if not m.ok:
            detail = f"[red]{m.reason}[/red]"
        elif "min" in m.details:
            detail = f"mean of {len(m.details['frames'])} frames, min {m.details['min']:.4f}"
            if m.details.get("note"):
                name = f"{name} [bold yellow](not perceptual)[/bold yellow]"
        else:
            detail = ""
        t.add_row(name, _fmt(m.value), detail)
    console.print(t)
    for name, m in result.metrics.items():
        if m.details.get("note"):
            console.print(f"[bold yellow]warning: {name}: {m.details['note']} ({m.details['weights']})[/bold yellow]", soft_wrap=True)
    for n in result.notes:
        console.print(f"[dim]note: {n}[/dim]", soft_wrap=True)


@app.command()
def score(
    clean: Path = typer.Argument(..., help="Clean reference recording (wav, flac, ogg, mp3; any rate/channels)."),
    degraded: Path = typer.Argument(..., help="Degraded recording to compare with it."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Embedding model(s): vggish, openl3, or both comma-separated. Default: both."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated from vggish, openl3, pesq_wb, pesq_nb, stoi, estoi. Default: vggish,openl3,pesq_wb,stoi,estoi."),
    hop: float = typer.Option(0.5, "--hop", help="OpenL3 window hop in seconds. Cost grows as 1/hop: each 1 s window is ~20 GFLOP (~0.3 s on 2 cores), so 10 s of audio costs ~20 windows at 0.5 (default) and ~100 at 0.1 (openl3's own default, used by the study)."),
    openl3_model: str = typer.Option("openl3-mel256-music-512", "--openl3-model", help="Which exported OpenL3 variant to use."),
    vggish_output: str = typer.Option("postprocessed", "--vggish-output", help="postprocessed (torchvggish 8-bit PCA output, default), embedding (before PCA) or embedding_raw (before the final ReLU, as Google's TF VGGish)."),
    vggish_model: str = typer.Option("vggish", "--vggish-model", help=VGGISH_MODEL_HELP),
    length: str = typer.Option("trim", "--length", help="When lengths differ: trim both to the shorter (reported) or error."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads (default: all cores, or $PQEVAL_THREADS)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (per-frame scores and timestamps included) instead of a table."),
) -> None:
    """Score DEGRADED against CLEAN with every metric.

    Examples:

        pqeval score clean.wav degraded.wav
        pqeval score clean.wav degraded.wav --model vggish --json > scores.json
    """
    from rich.console import Console

    from .audio import open_audio
    from .scoring import Scorer

    opts = _score_options(metrics, model, hop, openl3_model, vggish_output, length, threads, vggish_model)
    c, d = open_audio(clean), open_audio(degraded)  # read from disk window batch by batch
    result = Scorer(opts).score(c, d)
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, allow_nan=False))
    else:
        _print_pair(result, Console())
    raise typer.Exit(EXIT_PARTIAL if result.failed else EXIT_OK)


@app.command()
def degrade(
    inputs: list[Path] = typer.Argument(..., help="Recordings to degrade (any format/rate; mixed to mono)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    kind: str = typer.Option("all", "--kind", help="noise, bitrate, bitdepth (the study's), clipping, reverb, mp3, vorbis, opus; comma-separated, or 'study' or 'all'."),
    level: str = typer.Option("all", "--level", help="low, high, extreme (comma-separated) or all."),
    seed: int = typer.Option(0, "--seed", help="Seed for noise and reverberation (same seed, same output)."),
    fmt: str = typer.Option("wav", "--format", help="wav (32-bit float, default) or flac (24-bit). Never 16-bit: it shifts PESQ/ESTOI."),
    as_json: bool = typer.Option(False, "--json", help="Print the written files as JSON."),
) -> None:
    """Write degraded copies of each input at every kind × level (each ends with peak normalisation).

    Examples:

        pqeval degrade speech.wav --out degraded/ --kind noise --level high
        pqeval degrade *.wav --out degraded/ --kind study
    """
    import warnings

    from . import degrade as dg

    kinds, levels = _kinds_levels(kind, level)
    written, failed = [], []
    for path in inputs:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", dg.DegradationSkipped)
            try:
                written += [str(p) for p in dg.degrade_file(path, out, kinds, levels, seed=seed, fmt=fmt)]
            except PqevalError as e:
                if len(inputs) == 1 or isinstance(e, UsageError):
                    raise
                failed.append({"file": str(path), "reason": str(e)})
                _stderr(f"pqeval: skipped: {e}")
        for w in caught:
            if issubclass(w.category, dg.DegradationSkipped) and path == inputs[0]:
                _stderr(f"pqeval: note: {w.message}")
    if as_json:
        print(json.dumps({"written": written, "failed": failed}, indent=2))
    else:
        print(f"wrote {len(written)} files to {out}")
    raise typer.Exit(EXIT_PARTIAL if failed else EXIT_OK)


def _score_options(metrics, model, hop, openl3_model, vggish_output, length, threads, vggish_model):
    from .scoring import ScoreOptions

    if hop <= 0:
        raise UsageError(f"--hop must be positive, got {hop}")
    return ScoreOptions(metrics=_parse_metrics(metrics, model), length=length, vggish_output=vggish_output, vggish_model=vggish_model,
                        openl3_model=openl3_model, openl3_hop=hop, threads=threads,
                        require_models=_parse_models(model) if model else ())


class _Progress:
    """A rich progress bar on stderr (silent when stderr is not a terminal)."""

    def __init__(self, label: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          TextColumn("{task.description}"), console=Console(stderr=True), transient=True)
        self.task = None

    def __enter__(self):
        self.p.__enter__()
        return self

    def __exit__(self, *a):
        self.p.__exit__(*a)

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.task is None:
            self.task = self.p.add_task(label, total=total)
        self.p.update(self.task, completed=done, description=label)


def _batch_exit(rows: list[dict], metrics) -> int:
    bad = [r for r in rows if r.get("error") or any(r.get(m, "") == "" for m in metrics)]
    return EXIT_PARTIAL if bad else EXIT_OK


@app.command()
def batch(
    sources: list[Path] = typer.Argument(..., help="PAIRS.csv (columns clean,degraded) or CLEAN_DIR DEGRADED_DIR."),
    out: Path = typer.Option(..., "--out", "-o", help="Output CSV (rewritten atomically every 2 s and at the end; an existing one is resumed)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Embedding model(s): vggish, openl3 or both."),
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Comma-separated metrics (default: vggish,openl3,pesq_wb,stoi,estoi)."),
    hop: float = typer.Option(0.5, "--hop", help="OpenL3 hop in seconds (cost ∝ 1/hop, see `pqeval score --help`)."),
    openl3_model: str = typer.Option("openl3-mel256-music-512", "--openl3-model"),
    vggish_output: str = typer.Option("postprocessed", "--vggish-output"),
    vggish_model: str = typer.Option("vggish", "--vggish-model", help=VGGISH_MODEL_HELP),
    length: str = typer.Option("trim", "--length", help="trim or error when lengths differ."),
    threads: Optional[int] = typer.Option(None, "--threads"),
    as_json: bool = typer.Option(False, "--json", help="Also print the rows as JSON on stdout."),
) -> None:
    """Score many pairs; each clean reference is embedded once; a bad pair gets a row with its reason.

    Pairs in directory mode match by name: `x.wav` in CLEAN_DIR pairs with `x.wav` or
    `x__<anything>.wav` in DEGRADED_DIR (what `pqeval degrade` writes).

    Examples:

        pqeval batch pairs.csv --out results.csv
        pqeval batch clean/ degraded/ --out results.csv --model vggish --json
    """
    from .batch import pairs_from_csv, pairs_from_dirs, run_batch
    from .results import rows_json

    opts = _score_options(metrics, model, hop, openl3_model, vggish_output, length, threads, vggish_model)
    if len(sources) == 1:
        pairs = pairs_from_csv(sources[0])
    elif len(sources) == 2:
        pairs = pairs_from_dirs(*sources)
    else:
        raise UsageError("give PAIRS.csv, or CLEAN_DIR and DEGRADED_DIR")
    with _Progress("scoring") as prog:
        res = run_batch(pairs, out, opts, progress=prog)
    if as_json:
        print(rows_json(res.rows, opts.metrics))
    _stderr(f"pqeval: {len(res.rows)} pairs -> {out}: {res.scored} scored, {res.reused} reused, {res.failed} failed")
    for r in res.rows:
        if r.get("error"):
            _stderr(f"pqeval: failed: {r['degraded']}: {r['error']}")
    raise typer.Exit(_batch_exit(res.rows, opts.metrics))


@app.command()
def study(
    original_dir: Path = typer.Argument(..., help="Folder of clean recordings (any format/rate). Names containing speech/music/env set the content type."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (re-running resumes)."),
    kind: str = typer.Option("study", "--kind", help="Degradations: 'study' (noise, bitrate, bitdepth), 'all', or a comma-separated list."),
    level: str = typer.Option("all", "--level", help="low, high, extreme (comma-separated) or all."),
    seed: int = typer.Option(0, "--seed"),
    sr: str = typer.Option("16000", "--sr", help="Analysis sample rate of the converted inputs, or 'native'."),
    model: Optional[str] = typer.Option(None, "--model", "-m"),
    metrics: Optional[str] = typer.Option(None, "--metrics"),
    hop: float = typer.Option(0.5, "--hop", help="OpenL3 hop in seconds (the study's openl3 default is 0.1; 5x the cost)."),
    openl3_model: str = typer.Option("openl3-mel256-music-512", "--openl3-model"),
    vggish_output: str = typer.Option("postprocessed", "--vggish-output"),
    vggish_model: str = typer.Option("vggish", "--vggish-model", help=VGGISH_MODEL_HELP),
    threads: Optional[int] = typer.Option(None, "--threads"),
    no_figures: bool = typer.Option(False, "--no-figures", help="Write tables and the report without figures."),
) -> None:
    """Reproduce the study: degrade every input at every kind × level, score all pairs, write
    all_metrics.csv, summary and correlation tables, figures and report.md.

    Examples:

        pqeval study originals/ --out study-out/
        pqeval study originals/ --out study-out/ --kind all --hop 0.1
    """
    from .study import run_study

    opts = _score_options(metrics, model, hop, openl3_model, vggish_output, "trim", threads, vggish_model)
    kinds, levels = _kinds_levels(kind, level)
    try:
        rate = None if sr == "native" else int(sr)
    except ValueError:
        raise UsageError(f"--sr must be a rate in Hz or 'native', got {sr!r}") from None
    with _Progress("scoring") as prog:
        res = run_study(original_dir, out, kinds, levels, seed, opts, rate, figures=not no_figures, progress=prog)
    for path, reason in res.skipped_inputs.items():
        _stderr(f"pqeval: skipped input: {reason}")
    rep = res.report
    print(f"{res.pairs} pairs: {res.scored} scored, {res.reused} reused, {res.failed} failed")
    print(f"report: {out / 'report.md'}")
    if getattr(rep, "figures_skipped", None):
        print(f"figures skipped: {rep.figures_skipped}")
    raise typer.Exit(EXIT_PARTIAL if res.skipped_inputs else _batch_exit(res.rows, opts.metrics))


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List installed models and their provenance (weight source, verification at export).

    Example:

        pqeval models --json
    """
    from rich.console import Console
    from rich.table import Table

    from .errors import ModelError
    from .provenance import Provenance
    from .session import installed_models, search_dirs

    rows = []
    for m in installed_models():
        try:
            meta = m.metadata
            weights = m.weights
            status = "ok"
        except ModelError as e:
            meta, weights, status = {}, "unknown", str(e)
        verify = json.loads(meta.get("pqeval.verify", "{}") or "{}")
        ext_size = (m.sidecar.get("external_data") or {}).get("size", 0) if status == "ok" else 0
        rows.append({
            "key": m.key, "path": str(m.path),
            "size_mb": round((m.path.stat().st_size + ext_size) / 1e6, 1),
            "weights": weights, "perceptual": Provenance.parse(weights).perceptual,
            "note": Provenance.parse(weights).note, "variant": meta.get("pqeval.variant", ""),
            "verify": verify, "status": status,
        })
    if as_json:
        print(json.dumps({"search_dirs": [str(d) for d in search_dirs()], "models": rows}, indent=2))
        return
    console = Console()
    if not rows:
        console.print("No models installed. Looked in: " + ", ".join(str(d) for d in search_dirs()))
        console.print("Get one with `pqeval export vggish --weights DIR` (or `--seeded 0` for a test model).")
        return
    t = Table(title="installed models")
    for col in ("model", "weights", "verified at export", "size", "path"):
        t.add_column(col)
    for r in rows:
        w = r["weights"] if r["perceptual"] else f"[bold yellow]{r['weights']}[/bold yellow]"
        v = r["verify"]
        ver = f"max|Δ| {v['max_abs_diff']:.1e}, cos {v['cosine_min']:.6f}" if "max_abs_diff" in v else ""
        if r["status"] != "ok":
            ver = f"[red]{r['status']}[/red]"
        t.add_row(r["key"], w, ver, f"{r['size_mb']} MB", r["path"])
    console.print(t)
    for r in rows:
        if r["note"]:
            console.print(f"[bold yellow]warning: {r['key']}: {r['note']}[/bold yellow]", soft_wrap=True)


def _default_out_dir() -> Path:
    from .session import CHECKOUT_MODELS, user_cache_dir

    return CHECKOUT_MODELS if os.access(CHECKOUT_MODELS, os.W_OK) else user_cache_dir()


def _need_export(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UsageError(f"exporting needs the original frameworks ({e.name} is missing): pip install 'pqeval[export]'") from None


@export_app.command("vggish")
def export_vggish_cmd(
    weights: Optional[Path] = typer.Option(None, "--weights", help="Directory with vggish-10086976.pth and vggish_pca_params-970ea276.pth (or the first file)."),
    download: bool = typer.Option(False, "--download", help="Download the upstream files (pinned URLs, hash-checked) into the user cache first."),
    seeded: Optional[int] = typer.Option(None, "--seeded", help="Use seeded random weights (for tests: scores are NOT perceptual)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Where to write vggish.onnx (default: the checkout's models/ or the user cache)."),
    compact: Optional[str] = typer.Option(None, "--compact", "--quantize", help="Also write a compact variant beside it: int8fc (int8 FC layers: smaller, changes 8-bit outputs) or fp16 (fp16 storage)."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Folder of real recordings to measure the compact variant's accuracy on."),
) -> None:
    """Export torchvggish to ONNX and verify it against torch.

    Examples:

        pqeval export vggish --weights ./torchvggish-weights/
        pqeval export vggish --download
        pqeval export vggish --seeded 0
    """
    mod = _need_export("pqeval_export.vggish")
    from .session import user_cache_dir

    dl = user_cache_dir().parent / "downloads" if download else None
    path, check = mod.export_vggish(weights=weights, seeded=seeded, download_to=dl, out_dir=out_dir or _default_out_dir())
    _report_export(path)
    print("verified against torchvggish: " + json.dumps(check))
    if compact:
        _export_compact(path, compact, audio)


@export_app.command("openl3")
def export_openl3_cmd(
    input_repr: str = typer.Option("mel256", "--input-repr", help="linear, mel128 or mel256."),
    content_type: str = typer.Option("music", "--content-type", help="music or env."),
    embedding_size: int = typer.Option(512, "--embedding-size", help="512 or 6144."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The openl3 .h5 weights file (default: the one inside an installed openl3 package)."),
    seeded: Optional[int] = typer.Option(None, "--seeded", help="Use seeded random weights (for tests: scores are NOT perceptual)."),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Where to write the .onnx (default: the checkout's models/ or the user cache)."),
    compact: Optional[str] = typer.Option(None, "--compact", "--quantize", help="Also write a compact variant: int8qdq (static int8, calibrated on --audio; opt-in, measure its accuracy first)."),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Folder of real recordings to calibrate int8qdq and measure its accuracy on."),
) -> None:
    """Export an OpenL3 audio model (TensorFlow/Keras + kapre) to ONNX via tf2onnx and verify it.

    Examples:

        pqeval export openl3
        pqeval export openl3 --input-repr mel128 --content-type env --embedding-size 6144
        pqeval export openl3 --seeded 0
    """
    mod = _need_export("pqeval_export.openl3")
    path = mod.export_openl3(
        input_repr=input_repr, content_type=content_type, embedding_size=embedding_size,
        weights=str(weights) if weights else None, seeded=seeded, out_dir=out_dir or _default_out_dir(),
    )
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
        print(f"note: {m.provenance.note}")


@app.command("bench")
def bench_cmd(
    model: str = typer.Option("vggish,openl3", "--model", "-m", help="vggish, openl3 or both (comma-separated)."),
    seconds: float = typer.Option(10.0, "--seconds", help="Length of the test signal in seconds."),
    threads: Optional[int] = typer.Option(None, "--threads", help="ONNX Runtime threads (default: all cores, or $PQEVAL_THREADS)."),
    reps: int = typer.Option(5, "--reps", help="Timed runs after one warm-up (median reported)."),
    hop: float = typer.Option(0.5, "--hop", help="OpenL3 window hop in seconds."),
    openl3_model: str = typer.Option("openl3-mel256-music-512", "--openl3-model"),
    audio: Optional[Path] = typer.Option(None, "--audio", help="Time this recording instead of a synthetic 16 kHz signal."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Measure the runtime's latency and memory here (numpy + ONNX Runtime only; no torch/TensorFlow).

    For the side-by-side comparison with the original frameworks run `python bench/run.py` in a checkout.

    Examples:

        pqeval bench
        pqeval bench --model vggish --seconds 60 --threads 1 --json
    """
    from .bench import run_bench

    rows = run_bench(_parse_models(model), seconds, threads, reps, hop, openl3_model, audio)
    if as_json:
        print(json.dumps({"results": rows}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    tab = Table(title=f"pqeval bench: {rows[0]['audio_s']} s of audio, {rows[0]['threads']} threads, {reps} runs")
    for col in ("model", "load s", "median s", "min–max s", "per 10 s audio", "ms per example/window", "GFLOP/s", "peak RSS MB (process)"):
        tab.add_column(col)
    for r in rows:
        tab.add_row(r["model"], f"{r['load_s']:.2f}", f"{r['median_s']:.3f}", f"{r['min_s']:.3f}–{r['max_s']:.3f}",
                    f"{r['per_10s_audio_s']:.3f}", f"{r['per_unit_ms']:.1f}", str(r["gflops_end_to_end"] or "–"), f"{r['peak_rss_mb']:.0f}")
    Console().print(tab)


def main() -> None:
    """Console entry point: run the typer app, turning pqeval's errors into one-line messages."""
    try:
        app()  # click itself reports usage errors (exit 2) and exits with typer.Exit's code
    except PqevalError as e:
        _stderr(f"pqeval: error: {e}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        _stderr("pqeval: interrupted")
        sys.exit(130)
    except Exception as e:  # a bug: one line unless asked for the traceback
        if os.environ.get("PQEVAL_DEBUG"):
            raise
        _stderr(f"pqeval: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (rerun with PQEVAL_DEBUG=1 for a traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
