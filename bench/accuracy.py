"""Accuracy of every engine × precision against ONNX Runtime fp32 (the parity reference), and
openl3's own float32 noise (openl3/TensorFlow vs ONNX Runtime fp32) measured in the same run.

    python bench/accuracy.py [--work DIR] [--out bench/results] [--seconds 5]

Signals: each recording in ../shared/audio (its first ``--seconds``, mono, at its own rate: 16 and
44.1 kHz) against two degradations of it (white noise sigma 0.01, reverberation rt60 0.5 s), and a
synthetic tone + noise against a noisier copy at 8, 16, 44.1 and 48 kHz. Per engine × precision
and family: per-frame cosine against fp32, the largest relative difference of a frame
(max |a - b| / max |a|), the change in the clean-vs-degraded score, and for VGGish the share of
changed 8-bit (postprocessed) values. A fast path is *within noise* when its largest score change is
below openl3's own float32 noise (the largest |score(openl3/TF) - score(ORT fp32)| over the same
pairs). Models use seeded weights (``bench/run.py`` prepares them in ``--work``): agreement on the
same random weights, not a perceptual measurement. Writes ``accuracy.json`` and ``accuracy.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for sub in ("runtime", "export", "bench"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

SYNTH_RATES = (8000, 16000, 44100, 48000)
DEGRADATIONS = (("noise", "high"), ("reverb", "high"))
HOP = 0.5
KEYS = {"vggish": "vggish", "openl3": "openl3-mel256-music-512"}
#: The fixed clip of tests/test_precision.py: one real recording against its noisy copy.
FIXED_CLIP = ("speech_libri_3436_m.wav", "noise", "high")


def signals(audio_dir: Path, seconds: float) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, clean, degraded, rate) pairs: real recordings and synthetic signals (see the module doc)."""
    from pqeval.bench import synthetic_signal
    from pqeval.study.degrade import degrade, read_mono

    out = []
    for p in sorted(audio_dir.iterdir()):
        if p.suffix.lower() not in (".wav", ".flac"):
            continue
        x, sr = read_mono(p)
        x = x[: int(seconds * sr)]
        for kind, level in DEGRADATIONS:
            out.append((f"{p.name} {kind}-{level}", x, degrade(x, sr, kind, level, seed=0), sr))
    for sr in SYNTH_RATES:
        x = synthetic_signal(seconds, sr)
        noisy = x + 0.05 * np.random.default_rng(1).standard_normal(len(x))
        out.append((f"synthetic {sr} Hz", x, noisy, sr))
    return out


def fixed_clip(audio_dir: Path, seconds: float = 5.0) -> tuple[np.ndarray, np.ndarray, int]:
    """The clean and degraded signals of :data:`FIXED_CLIP`."""
    from pqeval.study.degrade import degrade, read_mono

    name, kind, level = FIXED_CLIP
    x, sr = read_mono(audio_dir / name)
    x = x[: int(seconds * sr)]
    return x, degrade(x, sr, kind, level, seed=0), sr


def embedders(models: Path, family: str, engine: str, precision: str, threads: int) -> dict:
    """The embedders one measurement needs: VGGish's float ``embedding`` and 8-bit
    ``postprocessed`` outputs, or OpenL3 at :data:`HOP`."""
    from pqeval.openl3 import OpenL3Embedder
    from pqeval.registry import FAMILIES
    from pqeval.session import OnnxModel
    from pqeval.vggish import VGGishEmbedder

    key = KEYS[family] + (f"-{FAMILIES[family].int8_kind}" if precision == "int8" else "")
    model = OnnxModel(models / f"{key}.onnx", threads, engine=engine, precision=precision)
    if family == "vggish":
        return {"float": VGGishEmbedder(model, output="embedding"), "score": VGGishEmbedder(model)}
    e = OpenL3Embedder(model, hop=HOP)
    return {"float": e, "score": e}


def embed_pairs(emb: dict, pairs: list) -> list[dict]:
    """Per pair: float frames of clean and degraded, and the score (postprocessed for VGGish)."""
    from pqeval.similarity import embedding_similarity

    out = []
    for _, clean, degraded, sr in pairs:
        f = [emb["float"].embed(s, sr) for s in (clean, degraded)]
        s = f if emb["score"] is emb["float"] else [emb["score"].embed(x, sr) for x in (clean, degraded)]
        out.append(
            {
                "frames": [e.frames for e in f],
                "score_frames": [e.frames for e in s],
                "score": embedding_similarity(*s).value,
            }
        )
    return out


def compare(ref: list[dict], got: list[dict]) -> dict:
    """Per-frame cosine, largest relative frame difference, score change and 8-bit changes of
    ``got`` against ``ref`` (both from :func:`embed_pairs` on the same pairs)."""
    cos, rel, dscore, changed, values = [], [], [], 0, 0
    for r, g in zip(ref, got, strict=True):
        for a, b in zip(r["frames"], g["frames"], strict=True):
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            na, nb = np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1)
            ok = (na > 0) & (nb > 0)
            cos += list((a64 * b64).sum(1)[ok] / (na * nb)[ok])
            rel += list(np.abs(a64 - b64).max(1)[ok] / np.abs(a64).max(1)[ok])
        for a, b in zip(r["score_frames"], g["score_frames"], strict=True):
            changed += int((a != b).sum())
            values += a.size
        dscore.append(abs(g["score"] - r["score"]))
    return {
        "frames": len(cos),
        "cosine_min": float(min(cos)),
        "cosine_mean": float(np.mean(cos)),
        "max_rel_diff": float(max(rel)),
        "score_delta_max": float(max(dscore)),
        "score_delta_mean": float(np.mean(dscore)),
        "changed_8bit_share": changed / values,
    }


def tf_openl3_pairs(work: Path, pairs: list, threads: int) -> list[dict]:
    """openl3 0.4.2 on TensorFlow with the same seeded weights, on the same pairs."""
    from pipelines import KerasOpenL3
    from pqeval.embedding import Embedding
    from pqeval.openl3 import window_times
    from pqeval.similarity import embedding_similarity

    tf = KerasOpenL3(work, threads, HOP)
    tf.imports()
    tf.load()
    out = []
    for _, clean, degraded, sr in pairs:
        f = [tf.embed(s, sr).astype(np.float32) for s in (clean, degraded)]
        e = [Embedding(x, window_times(len(x), HOP), "openl3", "seeded:0") for x in f]
        out.append({"frames": f, "score_frames": f, "score": embedding_similarity(*e).value})
    return out


def measure(work: Path, audio_dir: Path, seconds: float, threads: int, log=print) -> dict:
    """Every engine × precision this machine runs, both families; refused ones with their reason."""
    from pqeval import cpu
    from pqeval.inference import refusal
    from pqeval.registry import ENGINES, PRECISIONS

    pairs = signals(audio_dir, seconds)
    models = work / "models"
    res: dict = {
        "cpu": cpu.name(),
        "instruction_sets": cpu.summary(),
        "pairs": [p[0] for p in pairs],
        "seconds": seconds,
        "hop": HOP,
        "paths": [],
    }
    ref = {}
    for family in KEYS:
        t = time.perf_counter()
        ref[family] = embed_pairs(embedders(models, family, "ort", "fp32", threads), pairs)
        log(f"  {family} ort fp32 (reference) {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    res["noise"] = {"openl3": compare(ref["openl3"], tf_openl3_pairs(work, pairs, threads))}
    log(f"  openl3 TensorFlow (float32 noise) {time.perf_counter() - t:.1f} s")
    noise = res["noise"]["openl3"]["score_delta_max"]
    for engine in ENGINES:
        for precision in PRECISIONS:
            if (engine, precision) == ("ort", "fp32"):
                continue
            for family in KEYS:
                row: dict = {"family": family, "engine": engine, "precision": precision}
                why = refusal(engine, precision)
                if why is None:
                    t = time.perf_counter()
                    try:
                        got = embed_pairs(embedders(models, family, engine, precision, threads), pairs)
                    except Exception as e:  # a model the engine refuses (pqeval.inference): recorded
                        why = str(e)
                    else:
                        row.update(compare(ref[family], got))
                        row["within_noise"] = row["score_delta_max"] < noise
                        log(f"  {family} {engine} {precision} {time.perf_counter() - t:.1f} s")
                row["refused"] = why or ""
                res["paths"].append(row)
    return res


def write(res: dict, out: Path, command: str) -> None:
    """accuracy.json and accuracy.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(res, indent=1) + "\n")
    n = res["noise"]["openl3"]
    lines = [
        "# Accuracy of each engine × precision against ONNX Runtime fp32",
        "",
        f"Command: `{command}`. CPU: {res['cpu']} ({' '.join(res['instruction_sets'])}).",
        "",
        f"{len(res['pairs'])} clean-vs-degraded pairs ({res['seconds']:g} s each): every recording in ../shared/audio "
        "against white noise (sigma 0.01) and reverberation (rt60 0.5 s), and a synthetic tone + noise at "
        f"{', '.join(str(r) for r in SYNTH_RATES)} Hz. OpenL3 hop {res['hop']} s. Seeded weights: agreement on "
        "the same random weights, not a perceptual measurement.",
        "",
        f"openl3's own float32 noise (openl3/TensorFlow vs ORT fp32, same pairs): score change max "
        f"{n['score_delta_max']:.2e} (mean {n['score_delta_mean']:.2e}), per-window cosine min {n['cosine_min']:.8f}, "
        f"largest relative difference {n['max_rel_diff']:.2e}.",
        "",
        "| family | engine | precision | cosine min / mean | max rel diff | score change max / mean "
        "| 8-bit changed | within noise |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["paths"]:
        if r["refused"]:
            lines.append(f"| {r['family']} | {r['engine']} | {r['precision']} | refused: {r['refused']} | | | | |")
            continue
        bits = f"{100 * r['changed_8bit_share']:.2f} %" if r["family"] == "vggish" else "–"
        lines.append(
            f"| {r['family']} | {r['engine']} | {r['precision']} | {r['cosine_min']:.6f} / {r['cosine_mean']:.6f} | "
            f"{r['max_rel_diff']:.2e} | {r['score_delta_max']:.2e} / {r['score_delta_mean']:.2e} | {bits} | "
            f"{'yes' if r['within_noise'] else 'no'} |"
        )
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    from clips import audio_dir
    from run import DEFAULT_WORK, SEED, VARIANTS, cpu_dir, run_worker

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="seeded models (made by bench/run.py's prepare)")
    ap.add_argument("--out", type=Path, default=None, help="default bench/results/<cpu>/")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each signal")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    adir = audio_dir()
    prep = {"work": str(a.work), "audio_dir": str(adir), "seconds": 2.0, "seed": SEED, "variants": VARIANTS}
    run_worker("prepare", prep, a.threads, print)
    res = measure(a.work, adir, a.seconds, a.threads)
    out = a.out or cpu_dir()
    write(res, out, f"python bench/accuracy.py --seconds {a.seconds:g} --threads {a.threads}")
    print(f"wrote {out / 'accuracy.md'}")


if __name__ == "__main__":
    main()
