"""Model commands: ``models`` and ``export vggish|openl3``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import render
from ..errors import UsageError
from ..registry import FAMILIES
from .app import app, examples, export_app
from .options import Json


@app.command(
    "models",
    help="List installed models and their provenance (weight source, verification at "
    "export).\n\n" + examples("pqeval models", "pqeval models --json", "pqeval models --available"),
)
def models_cmd(
    as_json: Json = False,
    available: Annotated[
        bool, typer.Option("--available", help="List every model pqeval can export, and whether it is installed.")
    ] = False,
) -> None:
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
        render.models_table(rows, dirs)


def _default_out_dir() -> Path:
    from ..session import CHECKOUT_MODELS, user_cache_dir

    return CHECKOUT_MODELS if os.access(CHECKOUT_MODELS, os.W_OK) else user_cache_dir()


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
    typer.Option("--out-dir", help="Where to write the model (default: the checkout's models/ or the user cache)."),
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
    from ..session import user_cache_dir

    mod = _need_export("pqeval_export.vggish")
    dl = user_cache_dir().parent / "downloads" if download else None
    path, check = mod.export_vggish(
        weights=weights, seeded=seeded, download_to=dl, out_dir=out_dir or _default_out_dir()
    )
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
    mod = _need_export("pqeval_export.openl3")
    path = mod.export_openl3(
        input_repr=input_repr,
        content_type=content_type,
        embedding_size=embedding_size,
        weights=str(weights) if weights else None,
        seeded=seeded,
        out_dir=out_dir or _default_out_dir(),
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
    from ..session import OnnxModel

    m = OnnxModel(path)
    print(f"wrote {path} (weights {m.weights})")
    if m.provenance.note:
        render.stderr(f"note: {m.provenance.note}")
