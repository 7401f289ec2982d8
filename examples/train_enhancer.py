#!/usr/bin/env python3
"""Train a small speech enhancer with L1 alone and with L1 + a pqeval perceptual loss, then score both.

A spectral-mask network (two 1-D convolutions over time on the log-magnitude STFT, ~200k
parameters) learns to remove coloured Gaussian noise (0-10 dB SNR) from the LibriSpeech clips in
``../shared/audio`` on CPU. It is trained twice from the same initialisation on the same batches:
with the waveform L1 loss alone, and with L1 + ``weight`` x a ``pqeval.loss`` perceptual loss
(VGGish embedding cosine by default). pqeval then scores the held-out clips (CMU "go forward",
the PESQ test sentence; never trained on) before (the noisy input) and after, with VGGish,
OpenL3, PESQ-WB and STOI through ``pqeval.score`` on arrays.

With seeded model weights (what the tests and a machine without the published weights have) the
perceptual term and the VGGish / OpenL3 scores are not perceptual: the run then demonstrates the
machinery only, and says so.

    PQEVAL_MODELS=models python examples/train_enhancer.py            # a few minutes on 2 cores
    PQEVAL_MODELS=models python examples/train_enhancer.py --quick    # tens of steps (CI)
    python examples/train_enhancer.py --perceptual openl3 --steps 60  # slow: ~1 s per OpenL3 window

Options: ``--steps``, ``--batch``, ``--seconds`` (crop length), ``--weight`` (of the perceptual
term), ``--perceptual vggish|openl3|vggish-features``, ``--json PATH`` (everything printed, as data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "runtime" / "pqeval").is_dir() and str(ROOT / "runtime") not in sys.path:
    sys.path.insert(0, str(ROOT / "runtime"))  # a source checkout

import pqeval  # noqa: E402
from pqeval.loss import EmbeddingLoss, FeatureLoss  # noqa: E402

SR = 16000
AUDIO = Path(os.environ.get("PQEVAL_TEST_AUDIO", ROOT.parent / "shared" / "audio"))
TRAIN = ("speech_libri_198_f.wav", "speech_libri_3436_m.wav", "speech_libri_5703_m.wav")
HELD_OUT = ("speech_cmu_goforward.wav", "pesq_speech.wav")
HELD_OUT_SNR_DB = 5.0
METRICS = "vggish,openl3,pesq_wb,stoi"


def read(name: str) -> np.ndarray:
    x, sr = sf.read(str(AUDIO / name), dtype="float64")
    if sr != SR or x.ndim != 1:
        raise SystemExit(f"{AUDIO / name}: expected 16 kHz mono")
    return x


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gaussian noise through a random one-pole filter (from bright to dark), unit RMS."""
    from scipy.signal import lfilter

    a = rng.uniform(-0.5, 0.95)
    y = lfilter([1.0], [1.0, -a], rng.standard_normal(n + 256))[256:]
    return y / np.sqrt(np.mean(y**2))


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(clean**2) / (10 ** (snr_db / 10))) if np.any(clean) else 0.0
    noisy = clean + gain * noise
    peak = np.max(np.abs(noisy))
    return noisy / peak * 0.9 if peak > 0.9 else noisy


class MaskNet(nn.Module):
    """Noisy waveform (B, T) -> enhanced waveform (B, T): a [0, 1] mask on the STFT."""

    def __init__(self, n_fft: int = 512, hop: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft))
        bins = n_fft // 2 + 1
        self.net = nn.Sequential(
            nn.Conv1d(bins, hidden, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(hidden, bins, 1),
        )
        with torch.no_grad():  # start near the identity: a mask of ~0.9 everywhere
            last = self.net[-1]
            assert isinstance(last, nn.Conv1d) and last.bias is not None
            last.weight.mul_(0.1)
            last.bias.fill_(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = self.get_buffer("window")
        spec = torch.stft(x, self.n_fft, self.hop, window=window, return_complex=True)
        mask = torch.sigmoid(self.net(torch.log1p(100.0 * spec.abs())))
        return torch.istft(spec * mask, self.n_fft, self.hop, window=window, length=x.shape[-1])


def batches(steps: int, batch: int, crop: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches, made once so both runs see the same data: (noisy, clean) (B, crop)."""
    rng = np.random.default_rng(seed)
    clips = [read(n) for n in TRAIN]
    out = []
    for _ in range(steps):
        clean, noisy = [], []
        for _ in range(batch):
            c = clips[rng.integers(len(clips))]
            start = rng.integers(0, len(c) - crop)
            s = c[start : start + crop]
            clean.append(s)
            noisy.append(mix(s, coloured_noise(rng, crop), rng.uniform(0.0, 10.0)))
        out.append(
            (torch.tensor(np.array(noisy), dtype=torch.float32), torch.tensor(np.array(clean), dtype=torch.float32))
        )
    return out


def held_out(seconds: float | None, names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1234)
    out = {}
    for name in names:
        clean = read(name)
        if seconds:
            clean = clean[: int(seconds * SR)]
        out[name] = (clean, mix(clean, coloured_noise(rng, len(clean)), HELD_OUT_SNR_DB))
    return out


def score(clean: np.ndarray, degraded: np.ndarray) -> dict[str, float | None]:
    """pqeval's scores of one pair (VGGish as the 128-d embedding cosine, what the loss optimises)."""
    r = pqeval.score((clean, SR), (degraded, SR), metrics=METRICS, vggish_output="embedding")
    return {m: (None if not v.ok else round(float(v.value), 4)) for m, v in r.metrics.items()}


def enhance(model: MaskNet, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(x[None], dtype=torch.float32))[0].double().numpy()


def train(
    name: str,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    init: dict,
    perceptual: nn.Module | None,
    weight: float,
    check: tuple[torch.Tensor, torch.Tensor],
) -> tuple[MaskNet, dict]:
    """Train a MaskNet from ``init`` on ``data``; the objective on the fixed ``check`` batch before and after."""
    model = MaskNet()
    model.load_state_dict(init)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def objective(noisy: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        est = model(noisy)
        l1 = (est - clean).abs().mean()
        p = perceptual(est, clean) if perceptual is not None else torch.zeros(())
        return l1 + weight * p, float(l1.detach()), float(p.detach())

    with torch.no_grad():
        before = float(objective(*check)[0])
    history = []
    t0 = time.perf_counter()
    every = max(1, len(data) // 10)
    for step, (noisy, clean) in enumerate(data, start=1):
        opt.zero_grad()
        loss, l1, p = objective(noisy, clean)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if step % every == 0 or step == len(data):
            extra = f"  perceptual {p:.4f}" if perceptual is not None else ""
            print(f"  [{name}] step {step:4d}/{len(data)}  loss {history[-1]:.4f}  L1 {l1:.4f}{extra}", flush=True)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        after = float(objective(*check)[0])
    print(f"  [{name}] {seconds:.0f} s; objective on a fixed held-out batch: {before:.4f} -> {after:.4f}")
    return model, {"history": history, "check_before": before, "check_after": after, "seconds": round(seconds, 1)}


def make_perceptual(kind: str) -> nn.Module:
    if kind == "vggish":
        return EmbeddingLoss("vggish", sample_rate=SR)
    if kind == "openl3":
        return EmbeddingLoss("openl3", sample_rate=SR)
    return FeatureLoss("vggish", sample_rate=SR)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="tens of steps on small batches (CI)")
    ap.add_argument("--steps", type=int, default=None, help="training steps per run (default 200; quick 20)")
    ap.add_argument("--batch", type=int, default=None, help="clips per batch (default 6; quick 2)")
    ap.add_argument("--seconds", type=float, default=1.0, help="crop length in s (VGGish needs >= 0.975)")
    ap.add_argument("--weight", type=float, default=1.0, help="weight of the perceptual term")
    ap.add_argument("--perceptual", choices=("vggish", "openl3", "vggish-features"), default="vggish")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = ap.parse_args(argv)
    steps = args.steps or (20 if args.quick else 200)
    batch = args.batch or (2 if args.quick else 6)
    crop = int(round(args.seconds * SR))

    perceptual = make_perceptual(args.perceptual)  # warns when its weights are not the published ones
    prov = perceptual.provenance  # type: ignore[union-attr]
    note = (
        ""
        if prov.perceptual
        else (
            f"NOTE: the models here have {prov.kind} weights ({prov.raw}), not the published ones: the perceptual "
            "term and the VGGish / OpenL3 scores below are not perceptual. This run demonstrates the machinery only."
        )
    )
    if note:
        print(note)
    print(
        f"training 2 x {steps} steps of {batch} x {args.seconds:g} s: L1 vs L1 + {args.weight:g} x "
        f"{type(perceptual).__name__}({args.perceptual})"
    )
    torch.manual_seed(args.seed)
    init = MaskNet().state_dict()
    data = batches(steps, batch, crop, args.seed)
    check = batches(1, 4, crop, args.seed + 1)[0]
    runs = {}
    models = {}
    for name, term in (("L1", None), (f"L1+{args.perceptual}", perceptual)):
        models[name], runs[name] = train(name, data, init, term, args.weight, check)

    clips = held_out(2.0 if args.quick else None, HELD_OUT[:1] if args.quick else HELD_OUT)
    scores: dict[str, dict[str, dict]] = {}
    for clip, (clean, noisy) in clips.items():
        scores[clip] = {"noisy input": score(clean, noisy)}
        for name, model in models.items():
            scores[clip][name] = score(clean, enhance(model, noisy))
    metrics = METRICS.split(",")
    print(f"\nheld-out clips at {HELD_OUT_SNR_DB:g} dB SNR, pqeval scores (VGGish: embedding cosine)")
    print(f"{'clip':28s} {'condition':22s} " + " ".join(f"{m:>8s}" for m in metrics))
    for clip, rows in scores.items():
        for cond, vals in rows.items():
            cells = " ".join(f"{'NaN' if vals[m] is None else f'{vals[m]:.4f}':>8s}" for m in metrics)
            print(f"{clip:28s} {cond:22s} {cells}")
    if note:
        print(note)
    result = {
        "perceptual": args.perceptual,
        "weights": prov.raw,
        "perceptual_weights": prov.perceptual,
        "note": note,
        "steps": steps,
        "batch": batch,
        "runs": runs,
        "scores": scores,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, allow_nan=False, default=_nan_free) + "\n")
    return result


def _nan_free(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(type(v).__name__)


if __name__ == "__main__":
    main()
