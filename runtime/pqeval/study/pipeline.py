"""The study, end to end: convert originals -> degrade at every kind × level -> score -> report.

Layout of OUT_DIR::

    clean/<stem>.wav                     inputs as mono 32-bit float WAV at the analysis rate
    degraded/<stem>__<kind>_<level>.wav  degraded copies (32-bit float, peak-normalised)
    all_metrics.csv                      one row per (file, degradation, level), see pqeval.results
    summary.csv, correlations.csv, figures/*.{png,pdf,svg}, report.md   (pqeval.study.report)
    study.json                           what was done, with hashes, so a re-run reuses it

Re-running with the same inputs and settings reuses converted, degraded and scored files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..atomic import atomic_write_audio, atomic_write_text
from ..audio import audio_files, load_audio
from ..batch import Pair, run_batch
from ..content import content_of
from ..errors import PqevalError, UsageError
from ..integrity import sha256_file
from ..resample import resample
from ..results import STUDY_COLUMNS
from ..scoring import ScoreOptions
from . import degrade as dg
from .report import FORMATS, ReportResult, write_report


@dataclass
class StudyResult:
    """What run_study did: pairs in the table, how many were scored now / reused / failed, the
    table's rows, inputs that could not be used (path -> reason) and the report."""

    out_dir: Path
    pairs: int
    scored: int
    reused: int
    failed: int
    rows: list[dict] = field(default_factory=list)
    skipped_inputs: dict[str, str] = field(default_factory=dict)
    report: ReportResult | None = None


def _clean_copy(path: Path, clean: Path, entry: dict, h: str, sr: int | None, seed: int) -> dict:
    """Write the converted clean copy unless the manifest entry says it is current; the entry."""
    same = entry.get("source_sha256") == h and entry.get("sr") == sr and entry.get("seed") == seed
    if same and clean.is_file():
        return entry
    a = load_audio(path)
    x = np.asarray(a.samples, dtype=np.float64)
    x = resample(x, a.sr, sr) if sr and a.sr != sr else x
    atomic_write_audio(clean, x.astype(np.float32), sr or a.sr)
    return {"source": str(path), "source_sha256": h, "sr": sr, "seed": seed, "degraded": {}}


def run_study(
    original_dir: str | Path,
    out_dir: str | Path,
    kinds: str | tuple[str, ...] = dg.STUDY_KINDS,
    levels: str | tuple[str, ...] = "all",
    seed: int = 0,
    options: ScoreOptions | None = None,
    sr: int | None = 16000,
    figures: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    formats: str | Sequence[str] = FORMATS,
) -> StudyResult:
    """Run the whole study on every audio file in ``original_dir``; see the module docstring.

    sr: analysis sample rate in Hz for the converted inputs (16 kHz default: PESQ's and VGGish's
    rate; None keeps each file's own rate). formats: figure formats of the report.
    """
    src, out = Path(original_dir), Path(out_dir)
    if not src.is_dir():
        raise UsageError(f"{src}: not a directory")
    inputs = audio_files(src)
    if not inputs:
        raise UsageError(f"{src}: no audio files (.wav, .flac, .ogg, .mp3 …)")
    if sr is not None and sr <= 0:
        raise UsageError(f"the analysis sample rate must be positive (or None for each file's own), got {sr}")
    by_stem: dict[str, list[str]] = {}
    for p in inputs:
        by_stem.setdefault(p.stem, []).append(p.name)
    clashes = ["/".join(names) for names in by_stem.values() if len(names) > 1]
    if clashes:  # outputs are named by stem: the second would overwrite the first's
        raise UsageError(f"{src}: files share a name apart from the extension ({'; '.join(clashes)}); rename them")
    kind_list, skipped_kinds = dg.expand_kinds(kinds)
    level_list = dg.expand_levels(levels)
    manifest_path = out / "study.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    files = manifest.setdefault("files", {})
    manifest.update(seed=seed, sr=sr, kinds=kind_list, levels=level_list, skipped_kinds=skipped_kinds)

    pairs: list[Pair] = []
    skipped: dict[str, str] = {}
    for path in inputs:
        stem = path.stem
        try:
            clean = out / "clean" / f"{stem}.wav"
            entry = _clean_copy(path, clean, files.get(stem, {}), sha256_file(path), sr, seed)
            x, rate = sf.read(str(clean), dtype="float64")
            for kind in kind_list:
                for level in level_list:
                    name = f"{stem}__{kind}_{level}.wav"
                    target = out / "degraded" / name
                    if not (target.is_file() and entry["degraded"].get(name)):
                        y = dg.degrade(x, rate, kind, level, seed=seed)
                        atomic_write_audio(target, y.astype(np.float32), rate)
                        entry["degraded"][name] = True
                    extra = {"file": stem, "content": content_of(stem), "degradation": kind, "level": level}
                    pairs.append(Pair(clean, target, extra))
            files[stem] = entry
        except PqevalError as e:
            skipped[str(path)] = str(e)
        atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")
    manifest["skipped_inputs"] = skipped
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")

    res = run_batch(pairs, out / "all_metrics.csv", options, extra_columns=STUDY_COLUMNS, progress=progress)
    rep = write_report(out / "all_metrics.csv", out, figures=figures, formats=formats)
    return StudyResult(out, len(pairs), res.scored, res.reused, res.failed, res.rows, skipped, rep)
