#!/usr/bin/env python3
"""pqeval.loss: forward + backward time per second of audio, beside ONNX Runtime's forward.

For each loss (EmbeddingLoss and FeatureLoss on VGGish and on OpenL3 mel256) on one (estimate,
reference) pair of real speech at 16 kHz, in one process and one run:

* ``fwd+bwd``: ``loss(estimate, reference).backward()`` (both clips through the frontend and the
  CNN, gradients back to the estimate's waveform; the loss's defaults: float32 CNN, float64
  frontends);
* ``fwd``: the same loss without gradients (``torch.no_grad``);
* ``ORT``: pqeval's evaluator embedding the same two clips (numpy frontend + ONNX Runtime, the
  model file the loss read), i.e. what scoring the pair costs.

Each time is the best of ``--reps`` rounds after a warm-up (the three take turns within a round),
divided by the clip's length. The
weights do not change the cost, so seeded exports measure the same as the published ones.
Writes bench/results/loss.md (``--out`` to change).

    PQEVAL_MODELS=models python bench/loss.py [--reps 3] [--seconds-vggish 8] [--seconds-openl3 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "runtime"))

import torch  # noqa: E402

from pqeval.loss import EmbeddingLoss, FeatureLoss, NotPerceptualWarning  # noqa: E402
from pqeval.openl3 import OpenL3Embedder  # noqa: E402
from pqeval.session import OnnxModel, default_threads  # noqa: E402
from pqeval.vggish import VGGishEmbedder  # noqa: E402

AUDIO = ROOT.parent / "shared" / "audio"
CLIP = "speech_libri_3436_m.wav"  # 9.6 s, 16 kHz
SR = 16000


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "unknown")


def best_of(fs: dict, reps: int) -> dict[str, float]:
    """Best time of each function over ``reps`` rounds after a warm-up; the functions take turns
    within each round, so a load spike from another job hits all of them alike."""
    for f in fs.values():
        f()  # warm-up (constants, allocator, ORT session)
    times: dict[str, list[float]] = {k: [] for k in fs}
    for _ in range(reps):
        for k, f in fs.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: min(v) for k, v in times.items()}


def pair(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    x, sr = sf.read(str(AUDIO / CLIP), dtype="float64")
    assert sr == SR
    clean = x[: int(seconds * SR)]
    noisy = clean + 0.05 * np.random.default_rng(0).standard_normal(len(clean))
    return clean, noisy


def measure(name: str, loss: torch.nn.Module, seconds: float, reps: int, ort_embed) -> dict:
    clean, noisy = pair(seconds)
    ref = torch.tensor(clean[None], dtype=torch.float32)
    est0 = torch.tensor(noisy[None], dtype=torch.float32)

    def fwd_bwd() -> None:
        est = est0.clone().requires_grad_()
        loss(est, ref).backward()

    def fwd() -> None:
        with torch.no_grad():
            loss(est0, ref)

    def ort() -> None:
        ort_embed(clean)
        ort_embed(noisy)

    t = best_of({"fwd_bwd": fwd_bwd, "fwd": fwd, "ort": ort}, reps)
    row = {
        "loss": name,
        "seconds": seconds,
        "frames": loss.n_frames(len(clean)),
        **{k: v / seconds for k, v in t.items()},
    }
    print(
        f"{name:28s} {row['fwd_bwd']:.3f} s/s fwd+bwd  {row['fwd']:.3f} s/s fwd  {row['ort']:.3f} s/s ORT",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds-vggish", type=float, default=8.0)
    ap.add_argument("--seconds-openl3", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "loss.md")
    args = ap.parse_args()
    warnings.simplefilter("ignore", NotPerceptualWarning)  # seeded weights cost the same

    load_before = os.getloadavg()[0]
    rows = []
    for family, seconds in (("vggish", args.seconds_vggish), ("openl3", args.seconds_openl3)):
        emb = EmbeddingLoss(family)
        model = OnnxModel(emb.model_path)
        embedder = VGGishEmbedder(model, output="embedding") if family == "vggish" else OpenL3Embedder(model, hop=0.5)

        def ort_embed(x: np.ndarray, embedder=embedder) -> None:
            embedder.embed(x, SR)

        rows.append(measure(f"EmbeddingLoss({family})", emb, seconds, args.reps, ort_embed))
        del emb
        feat = FeatureLoss(family)
        rows.append(
            measure(f"FeatureLoss({family}, {len(feat.layers)} conv layers)", feat, seconds, args.reps, ort_embed)
        )
        del feat

    cmd = "PQEVAL_MODELS=<dir> python bench/loss.py " + " ".join(sys.argv[1:])
    lines = [
        "# pqeval.loss: forward + backward time per second of audio (`python bench/loss.py`)",
        "",
        f"Measured {date.today().isoformat()} in one run of `{cmd.strip()}` on {cpu_name()} "
        f"({os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {default_threads()} ONNX Runtime "
        f"threads; 1-minute load average {load_before:.1f} before and {os.getloadavg()[0]:.1f} after: a machine "
        f"shared with other jobs, so each time is the best of {args.reps} rounds after a warm-up, the three "
        f"measurements taking turns within a round), torch {torch.__version__}, Python {platform.python_version()}.",
        "",
        "One (estimate, reference) pair of speech at 16 kHz (LibriSpeech 3436, white noise added), batch 1. "
        "Seconds of compute per second of audio: **fwd+bwd** = `loss(estimate, reference).backward()` "
        "(both clips through frontend and CNN, gradient to the estimate's waveform; float32 CNN, float64 "
        "frontends: the defaults); **fwd** = the loss under `torch.no_grad()`; **ORT** = pqeval's evaluator "
        "embedding the same two clips (numpy frontend + ONNX Runtime, the same model file), i.e. scoring the "
        "pair. VGGish: one 0.96 s example per 0.96 s; OpenL3: hop 0.5 s (pqeval's default), one 1 s window "
        "(~20 GFLOP) per 0.5 s.",
        "",
        "| loss | clip s | frames | fwd+bwd s per s | fwd s per s | ORT fwd s per s | fwd+bwd / ORT |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['loss']} | {r['seconds']:g} | {r['frames']} | {r['fwd_bwd']:.3f} | {r['fwd']:.3f} | "
            f"{r['ort']:.3f} | {r['fwd_bwd'] / r['ort']:.1f}× |"
        )
    lines += [
        "",
        "FeatureLoss runs the CNN up to its deepest chosen layer only (default: every conv layer, so "
        "VGGish skips its fully connected layers and OpenL3 its embedding conv).",
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
