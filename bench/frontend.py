#!/usr/bin/env python3
"""Resampling + frontend against ORT inference, before and after the bit-identical speed-ups.

For VGGish (16 examples per ORT call) and OpenL3 (mel256, hop 0.5 s, one window per call) on a
10 s clip joined from the shared recordings (../shared/audio), given at 16 kHz and at 44.1 kHz,
this runs each embedder's loop with the three stages timed apart:

* resample: the embedder's ``resample_range`` of each batch (VGGish -> 16 kHz, OpenL3 -> 48 kHz);
* frontend: VGGish ``log_mel`` + examples as float32; OpenL3 ``cut_windows`` + the dB spectrogram;
* inference: the ORT run on those inputs (the seeded exports in $PQEVAL_MODELS, fp32).

"old" is the reference copy of commit 395b361 (tests/frontend_reference.py), "new" the runtime
(pqeval.resample.RangeResampler, VGGishFrontend.log_mel, OpenL3Frontend). Both run in the same
process, alternating round by round (the machine may be shared), inside
``blas_single_thread()`` as the embedders run them; every round checks that old and new feed the
model the same bytes. Reported: the median over rounds of each stage's total per clip, as wall
time and as CPU time (which leaves out waiting for a core that other jobs hold). "new, cold"
clears the resampler's per-rate-pair caches (float time register, flip positions) before each
round: what the first clip at a rate pair costs in a fresh process. A second table times the
resampling and frontend stages alone (no ORT runs in between), old against new.

    PQEVAL_MODELS=/tmp/m PQEVAL_MODELS_ONLY=1 python bench/frontend.py [--rounds 15]

Writes bench/results/frontend.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
for sub in ("runtime", "tests"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

import frontend_reference as ref  # noqa: E402
from pqeval import resample as rs  # noqa: E402
from pqeval.openl3 import OpenL3Frontend, cut_windows, num_windows, window_span  # noqa: E402
from pqeval.session import OnnxModel, find_model  # noqa: E402
from pqeval.threads import blas_single_thread  # noqa: E402
from pqeval.vggish import VGGishFrontend, _frame  # noqa: E402

AUDIO = Path(os.environ.get("PQEVAL_TEST_AUDIO", ROOT.parent / "shared" / "audio"))
OUT = ROOT / "bench" / "results" / "frontend.md"
SECONDS = 10.0
HOP = 0.5
VGGISH_BATCH = 16
TARGETS = {16000: 0.05, 44100: 0.08}  # resample + frontend share of the embedding time
STAGES = ("resample", "frontend", "inference")
FAST_INFERENCE = 5.0  # OpenVINO bf16 on an AMX Xeon ran OpenL3 5.5x, VGGish 3.2x faster than ORT fp32


def clip(sr: int) -> np.ndarray:
    """10 s of real recordings at ``sr`` (16 kHz: speech then music; 44.1 kHz: two music excerpts)."""
    names = (
        ["speech_libri_3436_m.wav", "music_brahms_hungarian5.wav"]
        if sr == 16000
        else ["music_brahms_hungarian5_44k_stereo.flac", "music_trumpet_sorohan_44k_stereo.flac"]
    )
    parts = []
    for name in names:
        x, file_sr = sf.read(str(AUDIO / name), dtype="float64")
        assert file_sr == sr, (name, file_sr)
        parts.append(x.mean(axis=1) if x.ndim == 2 else x)
    return np.concatenate(parts)[: int(SECONDS * sr)]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


class Timer:
    """Wall time per stage, and CPU time: the calling thread's for resample and frontend (numpy
    runs on it alone), the process's divided by ORT's threads for inference (its threads share
    the run). CPU time leaves out the waits for a core that another job on the machine causes."""

    def __init__(self, ort_threads: int) -> None:
        self.ort_threads = ort_threads
        self.t = dict.fromkeys(STAGES, 0.0)
        self.cpu = dict.fromkeys(STAGES, 0.0)

    def __call__(self, stage: str, f, *args):
        clock = time.process_time if stage == "inference" else time.thread_time
        t0, c0 = time.perf_counter(), clock()
        out = f(*args)
        self.t[stage] += time.perf_counter() - t0
        self.cpu[stage] += (clock() - c0) / (self.ort_threads if stage == "inference" else 1)
        return out


# --- one clip through each embedder's loop, stages timed ----------------------------------------


def vggish_run(model: OnnxModel, x: np.ndarray, sr: int, version: str) -> tuple[Timer, list]:
    fe = VGGishFrontend() if version != "old" else ref.VGGishReference()
    timer, feeds = Timer(model.threads), []
    n16 = rs.output_length(len(x), sr, 16000)
    n_examples = (1 + (n16 - fe.window_length) // fe.hop_length) // fe.example_frames
    step = fe.example_frames * fe.hop_length
    ranges = rs.RangeResampler(x, sr, 16000) if version != "old" else None

    def frontend(block):
        return _frame(fe.log_mel(block), fe.example_frames, fe.example_frames)[:, None, :, :].astype(np.float32)

    for first in range(0, n_examples, VGGISH_BATCH):
        count = min(VGGISH_BATCH, n_examples - first)
        lo = first * step
        hi = lo + (count * fe.example_frames - 1) * fe.hop_length + fe.window_length
        if ranges is None:
            block = timer("resample", ref.resample_range, x, sr, 16000, lo, hi)
        else:
            block = timer("resample", ranges.view, lo, hi)
        examples = timer("frontend", frontend, block)
        timer("inference", model.run, {"examples": examples}, ["postprocessed"])
        feeds.append(examples)
    return timer, feeds


def openl3_run(model: OnnxModel, x: np.ndarray, sr: int, version: str, frontends: dict) -> tuple[Timer, list]:
    fe = frontends[version]
    timer, feeds = Timer(model.threads), []
    n48 = rs.output_length(len(x), sr, 48000)
    n = num_windows(n48, HOP)
    ranges = rs.RangeResampler(x, sr, 48000) if version != "old" else None
    cut = ref.cut_windows if version == "old" else cut_windows

    def frontend(block, first, a):
        return fe(cut(block, first, 1, HOP, base=a, total=n48))

    for first in range(n):
        a, b = window_span(first, 1, HOP)
        a, b = max(a, 0), min(b, n48)
        if ranges is None:
            block = timer("resample", ref.resample_range, x, sr, 48000, a, b)
        else:
            block = timer("resample", ranges.view, a, b)
        spec = timer("frontend", frontend, block, first, a)
        timer("inference", model.run, {"spectrogram": spec})
        feeds.append(spec)
    return timer, feeds


def clear_caches() -> None:
    rs._flip_cache.clear()
    rs._register_marks.clear()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    models = {
        "vggish": OnnxModel(find_model("vggish")),
        "openl3": OnnxModel(find_model("openl3-mel256-music-512")),
    }
    frontends = {"old": ref.OpenL3Reference("mel256"), "new": OpenL3Frontend("mel256")}
    frontends["new, cold"] = frontends["new"]
    versions = ["old", "new", "new, cold"]
    runs = {
        "vggish": lambda m, x, sr, v: vggish_run(m, x, sr, v),
        "openl3": lambda m, x, sr, v: openl3_run(m, x, sr, v, frontends),
    }
    clips = {sr: clip(sr) for sr in (16000, 44100)}
    timers: dict = {}
    load = os.getloadavg()
    with blas_single_thread():
        for name, model in models.items():
            for sr, x in clips.items():
                runs[name](model, x, sr, "new")  # warm-up: ORT session, plans, caches
                runs[name](model, x, sr, "old")
                for r in range(args.rounds):
                    feeds = {}
                    order = versions if r % 2 == 0 else versions[::-1]
                    for v in order:
                        if v == "new, cold":
                            clear_caches()
                        t, feeds[v] = runs[name](model, x, sr, v)
                        timers.setdefault((name, sr, v), []).append(t)
                    for v in versions[1:]:  # the same bytes go to the model
                        assert len(feeds[v]) == len(feeds["old"])
                        for a, b in zip(feeds[v], feeds["old"], strict=True):
                            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
                print(f"{name} {sr / 1000:g} kHz: {args.rounds} rounds done", flush=True)
        isolated = isolated_stages(clips, args.rounds)
    load_end = os.getloadavg()

    wall = {k: {s: float(np.median([t.t[s] for t in v])) * 1e3 for s in STAGES} for k, v in timers.items()}
    cpu = {k: {s: float(np.median([t.cpu[s] for t in v])) * 1e3 for s in STAGES} for k, v in timers.items()}
    command = "PQEVAL_MODELS=/tmp/m PQEVAL_MODELS_ONLY=1 python bench/frontend.py" + (
        f" --rounds {args.rounds}" if args.rounds != 15 else ""
    )
    flags = cpu_flags()
    threads = {name: model.threads for name, model in models.items()}
    lines = [
        "# Resampling + frontend vs inference (`bench/frontend.py`)",
        "",
        f"Command: `{command}`. CPU: {cpu_name()}, {os.cpu_count()} cores, AVX2 {'avx2' in flags}, "
        f"AVX-512 {any(f.startswith('avx512') for f in flags)}; load average at start "
        f"{', '.join(f'{v:.2f}' for v in load)}, at end {', '.join(f'{v:.2f}' for v in load_end)} "
        "(above ~1, other jobs shared the 2 cores). Seeded exports, ORT fp32 with "
        f"{threads['vggish']} intra-op threads; a 10 s clip joined from ../shared/audio; medians of "
        f"{args.rounds} rounds, old, new and new-cold alternating in one process, numpy's BLAS at one "
        "thread as the embedders run it. Every round checked that old and new feed the model the same bytes.",
        "",
        "* **old**: the code of commit 395b361 (tests/frontend_reference.py); **new**: the runtime now; "
        "**new, cold**: new with the resampler's per-rate-pair caches (float time register, flip "
        "positions) cleared before the clip, as for the first clip at a rate pair in a fresh process.",
        "* VGGish: 16 examples per ORT call (one call for 10 s); OpenL3 mel256: hop 0.5 s, one window "
        "per call (20 windows), each window's samples resampled as `OpenL3Embedder.embed` asks for them.",
        "* **wall**: elapsed time. **CPU**: resample and frontend in the calling thread's CPU time (numpy "
        "runs there alone), inference as the process's CPU time over the ORT threads: it leaves out the "
        "waits for a core when other jobs share the machine, so it is the better estimate of an idle "
        "machine when the load average is high.",
        f"* share = (resample + frontend) / (resample + frontend + inference); target ≤ "
        f"{TARGETS[16000]:.0%} at 16 kHz, ≤ {TARGETS[44100]:.0%} at 44.1 kHz. The last column "
        f"divides the (CPU) inference time by {FAST_INFERENCE:g} (OpenVINO bf16 ran OpenL3 5.5× and "
        "VGGish 3.2× faster than ORT fp32 on an AMX Xeon) and keeps this CPU's resample and frontend "
        "times: a projection, not a measurement.",
        "",
        "## In the embedding loop",
        "",
        "| model | input | version | resample ms wall / CPU | frontend ms wall / CPU | inference ms wall / CPU "
        f"| share (wall) | share (CPU) | target | share (CPU) if inference {FAST_INFERENCE:g}× faster |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in models:
        for sr in clips:
            for v in versions:
                w, c = wall[(name, sr, v)], cpu[(name, sr, v)]
                share_w = (w["resample"] + w["frontend"]) / sum(w.values())
                pre = c["resample"] + c["frontend"]
                share_c = pre / (pre + c["inference"])
                fast = pre / (pre + c["inference"] / FAST_INFERENCE)
                ok = (
                    "met"
                    if max(share_c, share_w) <= TARGETS[sr]
                    else "met (CPU)"
                    if share_c <= TARGETS[sr]
                    else "**missed**"
                )
                lines.append(
                    f"| {name} | {sr / 1000:g} kHz | {v} | {w['resample']:.2f} / {c['resample']:.2f} | "
                    f"{w['frontend']:.2f} / {c['frontend']:.2f} | {w['inference']:.1f} / {c['inference']:.1f} | "
                    f"{share_w:.1%} | {share_c:.1%} | {ok} | {fast:.1%} |"
                )
    lines += [
        "",
        "## The stages alone",
        "",
        "The same work per 10 s clip without ORT runs in between (no other threads waking): the least "
        f"CPU time of {args.rounds} alternating repeats, ms.",
        "",
        "| stage | old | new | old / new |",
        "|---|---|---|---|",
    ]
    for stage, (old, new) in isolated.items():
        lines.append(f"| {stage} | {old:.2f} | {new:.2f} | {old / new:.2f}× |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


def isolated_stages(clips: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """{stage: (old ms, new ms)}: least thread CPU time per 10 s clip over alternating repeats."""
    vgg_old, vgg_new = ref.VGGishReference(), VGGishFrontend()
    ol3_old, ol3_new = ref.OpenL3Reference("mel256"), OpenL3Frontend("mel256")
    x44 = clips[44100]
    n16 = rs.output_length(len(x44), 44100, 16000)
    x16 = rs.resample_range(x44, 44100, 16000, 0, n16)
    n48 = rs.output_length(len(x44), 44100, 48000)
    windows = cut_windows(rs.resample_range(x44, 44100, 48000, 0, n48), 0, num_windows(n48, HOP), HOP)
    spans = [window_span(i, 1, HOP) for i in range(len(windows))]

    def ol3_resample(version, sr, x):
        n = rs.output_length(len(x), sr, 48000)
        r = rs.RangeResampler(x, sr, 48000)
        for a, b in spans:
            a, b = max(a, 0), min(b, n)
            ref.resample_range(x, sr, 48000, a, b) if version == "old" else r.view(a, b)

    cases = {
        "VGGish resample 44.1 → 16 kHz": (
            lambda: ref.resample_range(x44, 44100, 16000, 0, n16),
            lambda: rs.RangeResampler(x44, 44100, 16000).view(0, n16),
        ),
        "VGGish log-mel (1001 frames)": (lambda: vgg_old.log_mel(x16), lambda: vgg_new.log_mel(x16)),
        "OpenL3 resample 44.1 → 48 kHz, 20 windows": (
            lambda: ol3_resample("old", 44100, x44),
            lambda: ol3_resample("new", 44100, x44),
        ),
        "OpenL3 resample 16 → 48 kHz, 20 windows": (
            lambda: ol3_resample("old", 16000, clips[16000]),
            lambda: ol3_resample("new", 16000, clips[16000]),
        ),
        "OpenL3 spectrograms, 20 windows": (
            lambda: [ol3_old(w[None]) for w in windows],
            lambda: [ol3_new(w[None]) for w in windows],
        ),
    }
    out = {}
    for stage, (old, new) in cases.items():
        best = [np.inf, np.inf]
        old(), new()
        for r in range(rounds):
            for i in (0, 1) if r % 2 == 0 else (1, 0):
                c0 = time.thread_time()
                (old, new)[i]()
                best[i] = min(best[i], time.thread_time() - c0)
        out[stage] = (best[0] * 1e3, best[1] * 1e3)
    return out


if __name__ == "__main__":
    main()
