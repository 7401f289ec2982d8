"""The study, end to end: convert originals -> degrade at every kind × level -> score -> report.

Layout of OUT_DIR::

    clean/<stem>.wav                     inputs as mono 32-bit float WAV at the analysis rate
    degraded/<stem>__<kind>_<level>.wav  degraded copies (32-bit float, peak-normalised)
    all_metrics.csv                      one row per (file, degradation, level), see pqeval.batch
    summary.csv, correlations.csv, figures/*.png, report.md   (pqeval.report)
    study.json                           what was done, with hashes, so a re-run reuses it

Re-running with the same inputs and settings reuses converted, degraded and scored files.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from . import degrade as dg
from .audio import load_audio
from .atomic import atomic_write_audio, atomic_write_text
from .audio import audio_files
from .batch import Pair, run_batch
from .errors import PqevalError, UsageError
from .resample import resample
from .scoring import ScoreOptions
from .integrity import sha256_file

CONTENT_TYPES = ("speech", "music", "env")
STUDY_COLUMNS = ("file", "content", "degradation", "level")


def content_of(stem: str) -> str:
    """speech / music / env from a file name's words (``speech_libri_198_f`` -> speech), else unknown."""
    words = set(re.split(r"[^a-z]+", stem.lower()))
    for c, aliases in (("speech", {"speech", "voice"}), ("music", {"music", "song"}), ("env", {"env", "environment", "environmental"})):
        if words & aliases:
            return c
    return "unknown"


@dataclass
class StudyResult:
    out_dir: Path
    pairs: int
    scored: int
    reused: int
    failed: int
    rows: list[dict] = field(default_factory=list)
    skipped_inputs: dict[str, str] = field(default_factory=dict)
    report: object | None = None


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
) -> StudyResult:
    """Run the whole study on every audio file in ``original_dir``; see the module docstring.

    sr: analysis sample rate for the converted inputs (16 kHz default: PESQ's and VGGish's rate;
    None keeps each file's own rate).
    """
    src, out = Path(original_dir), Path(out_dir)
    if not src.is_dir():
        raise UsageError(f"{src}: not a directory")
    inputs = audio_files(src)
    if not inputs:
        raise UsageError(f"{src}: no audio files ({', '.join(e for e in ('.wav', '.flac', '.ogg', '.mp3'))} …)")
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
            h = sha256_file(path)
            entry = files.get(stem, {})
            clean = out / "clean" / f"{stem}.wav"
            same = entry.get("source_sha256") == h and entry.get("sr") == sr and entry.get("seed") == seed
            if not (same and clean.is_file()):
                a = load_audio(path)
                x = resample(a.samples, a.sr, sr) if sr and a.sr != sr else a.samples
                rate = sr or a.sr
                atomic_write_audio(clean, x.astype(np.float32), rate)
                entry = {"source": str(path), "source_sha256": h, "sr": sr, "seed": seed, "degraded": {}}
            x, rate = sf.read(str(clean), dtype="float64")
            for kind in kind_list:
                for level in level_list:
                    name = f"{stem}__{kind}_{level}.wav"
                    target = out / "degraded" / name
                    if not (target.is_file() and entry["degraded"].get(name)):
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", dg.DegradationSkipped)
                            atomic_write_audio(target, dg.degrade(x, rate, kind, level, seed=seed).astype(np.float32), rate)
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
    from .report import write_report

    rep = write_report(out / "all_metrics.csv", out, figures=figures)
    return StudyResult(out, len(pairs), res.scored, res.reused, res.failed, res.rows, skipped, rep)
