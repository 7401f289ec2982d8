"""Model commands: ``models`` (list, install, verify, remove, pack) and ``export vggish|openl3|graph``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import render
from ..errors import ModelError, UsageError
from ..provenance import Provenance
from ..registry import FAMILIES
from .app import _Group, app, examples, export_app
from .options import Json, Quiet

models_app = typer.Typer(
    cls=_Group,
    invoke_without_command=True,
    help="Installed models: list (the default), install a bundle, verify, remove, pack.\n\n"
    + examples(
        "pqeval models",
        "pqeval models --available",
        "pqeval models install pqeval-models.zip",
        "pqeval models install https://example.org/pqeval-models.zip --sha256 HEX",
        "pqeval models verify",
        "pqeval models pack vggish openl3-mel256-music-512 --out pqeval-models.zip",
    ),
)
app.add_typer(models_app, name="models")


@models_app.callback()
def models_cmd(
    ctx: typer.Context,
    as_json: Json = False,
    available: Annotated[
        bool, typer.Option("--available", help="List every model pqeval can export, and whether it is installed.")
    ] = False,
) -> None:
    """List installed models and their provenance (weight source, verification at export)."""
    if ctx.invoked_subcommand is None:
        _list(as_json, available)


@models_app.command("list", help="List installed models (the same as `pqeval models`).")
def list_cmd(
    as_json: Json = False,
    available: Annotated[bool, typer.Option("--available", help="List every model pqeval can export.")] = False,
) -> None:
    _list(as_json, available)


def _list(as_json: bool, available: bool) -> None:
    from ..registry import available as registry_models
    from ..session import installed_models, search_dirs

    rows = [m.describe() for m in installed_models()]
    dirs = [str(d) for d in search_dirs()]
    if available:
        installed = {r["key"] for r in rows}
        known = [{**m, "installed": m["key"] in installed} for m in registry_models()]
        print(render.json_text({"models": known})) if as_json else render.available_table(known)
    elif as_json:
        print(render.json_text({"search_dirs": dirs, "models": rows}))
    else:
        render.models_table(rows, dirs, _install_hint())


def _install_hint() -> str:
    from ..sources import configured_source

    source = configured_source()
    if source is not None:
        return f"Install the default models with `pqeval models install` ({source.display})."
    return (
        "Install a model bundle with `pqeval models install BUNDLE.zip|URL`, or export one with "
        "`pqeval export vggish --weights DIR` (`--seeded 0` for a test model)."
    )


TargetDir = Annotated[
    Optional[Path],
    typer.Option(
        "--dir",
        help="Models directory to work in (default: the first $PQEVAL_MODELS directory, else the user models "
        "directory; see `pqeval models --json` for the search path).",
    ),
]


@models_app.command(
    "install",
    help="Install models from a bundle file, a directory, or an http(s):// / file:// URL of a bundle. "
    "Every file is checked against the bundle's sha256 list and its own provenance before any model "
    "becomes visible; a failed install changes nothing. Without SOURCE: $PQEVAL_MODEL_SOURCE (or the "
    "package's default bundle). A URL may pin the bundle with #sha256=HEX.\n\n"
    + examples(
        "pqeval models install pqeval-models.zip",
        "pqeval models install https://example.org/pqeval-models.zip --sha256 HEX",
        "pqeval models install ./exported-models/ --model vggish",
        "PQEVAL_MODEL_SOURCE=https://example.org/pqeval-models.zip pqeval models install",
    ),
)
def install_cmd(
    source: Annotated[Optional[str], typer.Argument(help="Bundle file, directory, or URL.", show_default=False)] = None,
    sha256: Annotated[
        Optional[str], typer.Option("--sha256", help="The bundle file's expected sha256 (refused if different).")
    ] = None,
    keys: Annotated[
        Optional[list[str]], typer.Option("--model", "-m", help="Install only this model (repeatable).")
    ] = None,
    target: TargetDir = None,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    from .. import bundle
    from ..session import install_dir, search_dirs
    from ..sources import configured_source, local_copy, parse_source

    if source is None:
        configured = configured_source()
        if configured is None:
            raise UsageError(
                "no SOURCE given and no default source: pass a bundle file, directory or URL, "
                "or set PQEVAL_MODEL_SOURCE"
            )
        src = parse_source(configured.location, sha256 or configured.sha256)
    else:
        src = parse_source(source, sha256)
    dest = (target or install_dir()).expanduser()
    path = local_copy(src, quiet=quiet or as_json)
    done = bundle.install(path, dest, keys)
    rows = [{"key": d.key, "path": str(d.path), "weights": d.weights, "replaced": d.replaced} for d in done]
    if as_json:
        print(render.json_text({"source": src.display, "dir": str(dest), "installed": rows}))
    else:
        for r in rows:
            print(
                f"installed {r['key']} -> {r['path']} (weights {r['weights']}{', replaced' if r['replaced'] else ''})"
            )
    for d in done:
        note = Provenance.parse(d.weights).note
        if note:
            render.stderr(f"note: {d.key}: {note}", quiet)
    if dest.resolve() not in [d.resolve() for d in search_dirs()]:
        render.stderr(f"warning: {dest} is not on the model search path (set PQEVAL_MODELS={dest} to use it)")


@models_app.command(
    "verify",
    help="Re-check every file of the installed models against its recorded sha256 (hashing again, "
    "whatever was verified before) and its provenance. Exit 2 if any fails.\n\n"
    + examples("pqeval models verify", "pqeval models verify vggish --json"),
)
def verify_cmd(
    keys: Annotated[Optional[list[str]], typer.Argument(help="Models to check (default: all installed).")] = None,
    as_json: Json = False,
) -> None:
    from .. import bundle
    from ..session import OnnxModel, find_model, installed_models, search_dirs

    models = [OnnxModel(find_model(k)) for k in dict.fromkeys(keys)] if keys else installed_models()
    rows = bundle.verify(models)
    stale = [str(p) for p in bundle.leftovers(search_dirs())]
    if as_json:
        print(render.json_text({"models": rows, "interrupted_installs": stale}))
    else:
        for r in rows:
            print(f"{r['key']}: {r['status']} ({r['path']})")
        if not rows:
            print("No models installed.")
    for p in stale:
        render.stderr(f"note: {p}: left by an interrupted install; safe to delete")
    bad = [r["key"] for r in rows if r["status"] != "ok"]
    if bad:
        raise ModelError(f"{len(bad)} of {len(rows)} models failed verification: {', '.join(bad)}")


@models_app.command(
    "remove",
    help="Delete installed models (from the directory where the lookup finds them, or --dir).\n\n"
    + examples("pqeval models remove vggish", "pqeval models remove openl3-mel256-music-512 --dir ./models"),
)
def remove_cmd(
    keys: Annotated[list[str], typer.Argument(help="Model keys to delete.", show_default=False)],
    target: TargetDir = None,
) -> None:
    from .. import bundle

    for key in dict.fromkeys(keys):
        gone = bundle.remove(key, target)
        print(f"removed {key}: {', '.join(str(p) for p in gone)}")


@models_app.command(
    "pack",
    help="Write installed models into one bundle (a zip archive with manifest.json: per file its key, size, "
    "sha256, weight source, frontend parameters, pqeval version and weights licence) for "
    "`pqeval models install` on another machine.\n\n"
    + examples(
        "pqeval models pack vggish openl3-mel256-music-512 --out pqeval-models.zip",
        "pqeval models pack vggish --out vggish.zip --json",
    ),
)
def pack_cmd(
    keys: Annotated[list[str], typer.Argument(help="Model keys to pack.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (.zip).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing bundle at --out.")] = False,
    as_json: Json = False,
    quiet: Quiet = False,
) -> None:
    from .. import bundle
    from ..integrity import sha256_file

    manifest = bundle.pack(keys, out, force=force)
    digest = sha256_file(out)
    models = sorted({e["key"] for e in manifest["files"]})
    size_mb = out.stat().st_size / 1e6
    if as_json:
        print(render.json_text({"bundle": str(out), "sha256": digest, "size_mb": round(size_mb, 1), **manifest}))
    else:
        print(f"wrote {out} ({', '.join(models)}; {size_mb:.1f} MB; sha256 {digest})")
    for e in manifest["files"]:
        note = Provenance.parse(e["weights"]).note
        if e["role"] == "graph" and note:
            render.stderr(f"note: {e['key']}: {note}", quiet)


def _need_export(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise UsageError(
            f"exporting needs the original frameworks ({e.name} is missing): pip install 'pqeval[export]'"
        ) from None


Seeded = Annotated[
    Optional[int], typer.Option("--seeded", help="Use seeded random weights (for tests: scores are NOT perceptual).")
]
OutDir = Annotated[
    Optional[Path],
    typer.Option(
        "--out",
        "--out-dir",
        help="Models directory to write to (default: the first $PQEVAL_MODELS directory, else the user models "
        "directory).",
    ),
]
Audio = Annotated[
    Optional[Path],
    typer.Option("--audio", help="Folder of real recordings to calibrate / measure the compact variant on."),
]
Compact = Annotated[
    Optional[str],
    typer.Option(
        "--compact",
        "--quantize",
        help="Also write a compact variant: "
        + "; ".join(f"{f.name}: {', '.join(f.compact_kinds)}" for f in FAMILIES.values())
        + " (int8fc: int8 FC layers, smaller, changes 8-bit outputs; fp16: fp16 storage; "
        "int8qdq: static int8 calibrated on --audio).",
    ),
]


@export_app.command(
    "vggish",
    help="Export torchvggish to ONNX and verify it against torch.\n\n"
    + examples(
        "pqeval export vggish --weights ./torchvggish-weights/",
        "pqeval export vggish --download",
        "pqeval export vggish --seeded 0 --compact int8fc --audio recordings/",
    ),
)
def export_vggish_cmd(
    weights: Annotated[
        Optional[Path],
        typer.Option(
            "--weights",
            help="Directory with vggish-10086976.pth and vggish_pca_params-970ea276.pth (or the first file).",
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(
            "--download", help="Download the upstream files (pinned URLs, hash-checked) into the user cache first."
        ),
    ] = False,
    seeded: Seeded = None,
    out_dir: OutDir = None,
    compact: Compact = None,
    audio: Audio = None,
) -> None:
    from ..session import install_dir
    from ..sources import downloads_dir

    mod = _need_export("pqeval_export.vggish")
    dl = downloads_dir() if download else None
    path, check = mod.export_vggish(weights=weights, seeded=seeded, download_to=dl, out_dir=out_dir or install_dir())
    _report_export(path)
    print("verified against torchvggish: " + json.dumps(check))
    if compact:
        _export_compact(path, compact, audio)


@export_app.command(
    "openl3",
    help="Export an OpenL3 audio model (TensorFlow/Keras + kapre) to ONNX via tf2onnx "
    "and verify it.\n\n"
    + examples(
        "pqeval export openl3",
        "pqeval export openl3 --input-repr mel128 --content-type env --embedding-size 6144",
        "pqeval export openl3 --seeded 0",
    ),
)
def export_openl3_cmd(
    input_repr: Annotated[str, typer.Option("--input-repr", help="linear, mel128 or mel256.")] = "mel256",
    content_type: Annotated[str, typer.Option("--content-type", help="music or env.")] = "music",
    embedding_size: Annotated[int, typer.Option("--embedding-size", help="512 or 6144.")] = 512,
    weights: Annotated[
        Optional[Path],
        typer.Option(
            "--weights", help="The openl3 .h5 weights file (default: the one inside an installed openl3 package)."
        ),
    ] = None,
    seeded: Seeded = None,
    out_dir: OutDir = None,
    compact: Compact = None,
    audio: Audio = None,
) -> None:
    from ..session import install_dir

    mod = _need_export("pqeval_export.openl3")
    path = mod.export_openl3(
        input_repr=input_repr,
        content_type=content_type,
        embedding_size=embedding_size,
        weights=str(weights) if weights else None,
        seeded=seeded,
        out_dir=out_dir or install_dir(),
    )
    _report_export(path)
    if compact:
        _export_compact(path, compact, audio)


@export_app.command(
    "graph",
    help="Write one ONNX file from a mono waveform at the model's rate (VGGish 16 kHz, OpenL3 48 kHz) to "
    "embeddings per frame: pqeval's frontend in ONNX ops around an installed model, for C/C++, Java, JS or "
    "a web page with ONNX Runtime (input `waveform` [samples]; outputs `embedding` [frames, D], "
    "`timestamps` [frames] s, VGGish also `postprocessed`). Weights inside the one file; checked against "
    "pqeval's own path before it is written. Needs only the onnx package. See docs/graph.md.\n\n"
    + examples(
        "pqeval export graph vggish --out vggish-graph.onnx",
        "pqeval export graph openl3-mel256-music-512 --out openl3-graph.onnx --hop 0.5 --resample-from 44100",
    ),
)
def export_graph_cmd(
    key: Annotated[str, typer.Argument(help="Installed model: vggish or openl3-<repr>-<content>-<size>.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The graph file to write (.onnx; its sidecar .onnx.json).")],
    hop: Annotated[
        Optional[float],
        typer.Option("--hop", help="OpenL3 only: seconds between windows (default: pqeval's, 0.5)."),
    ] = None,
    resample_from: Annotated[
        Optional[list[int]],
        typer.Option(
            "--resample-from",
            help="Also write FILE-resample-RATE.onnx: pqeval's resampler from RATE Hz to the model's rate as a "
            "small graph (`waveform` -> `resampled`), for the rate pairs where it is exact (e.g. 8000, 16000, "
            "22050, 44100 -> 48000 for OpenL3). Repeatable.",
        ),
    ] = None,
    as_json: Json = False,
) -> None:
    from ..session import OnnxModel

    mod = _need_export("pqeval_export.graph")
    path, check = mod.export_graph(key, out, hop, resample_from=resample_from or ())
    written = OnnxModel(path).metadata  # from the sidecar just written
    meta, weights = json.loads(written.get("pqeval.graph", "{}")), written.get("pqeval.weights", "unknown")
    size_mb = path.stat().st_size / 1e6
    resamplers = [str(mod.resampler_path(path, r)) for r in dict.fromkeys(resample_from or ())]
    if as_json:
        info = {"graph": str(path), "size_mb": round(size_mb, 1), **meta, "verify": check, "resamplers": resamplers}
        print(render.json_text(info))
    else:
        print(f"wrote {path} ({size_mb:.1f} MB; from {meta.get('source_model')}, weights {weights})")
        print("checked against pqeval's numpy path: " + json.dumps(check))
        for r in resamplers:
            print(f"wrote {r}")
    note = Provenance.parse(weights).note
    if note:
        render.stderr(f"note: {note}")


def _export_compact(path: Path, kind: str, audio: Optional[Path]) -> None:
    mod = _need_export("pqeval_export.compact")
    cpath, acc = mod.export_compact(path, kind, audio)
    _report_export(cpath)
    print("accuracy vs fp32: " + (json.dumps(acc) if acc else "not measured (pass --audio DIR)"))


def _report_export(path: Path) -> None:
    from ..session import OnnxModel

    m = OnnxModel(path)
    print(f"wrote {path} (weights {m.weights})")
    if m.provenance.note:
        render.stderr(f"note: {m.provenance.note}")
