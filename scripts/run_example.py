#!/usr/bin/env python3
"""The main job on a fresh machine: install the best models available, make an example pair, score it.

With a model source configured (``$PQEVAL_MODEL_SOURCE`` or the package's default bundle), the
models come from it (``pqeval models install``): no TensorFlow or torch needed. Otherwise, best
first: real upstream weights (VGGish: ``$PQEVAL_VGGISH_WEIGHTS`` directory, else a download of the
pinned files; OpenL3: ``$PQEVAL_OPENL3_WEIGHTS`` .h5 file, else the weights inside
an installed openl3 package), and only when none can be had, seeded random weights, which every
output then labels "not a perceptual measurement". An installed pretrained model is kept.

Example pair: a real clean recording (``$PQEVAL_EXAMPLE`` or the project's shared speech recording
next to the checkout; a synthetic vowel if neither exists) and the same recording degraded by this
project (Gaussian noise, level "high"), both in ``out/example/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "example"
SHARED_SPEECH = ROOT.parent / "shared" / "audio" / "speech_libri_198_f.wav"


def pqeval(*args: str, check: bool = False) -> int:
    print("$ pqeval " + " ".join(args), flush=True)
    return subprocess.run(["pqeval", *args], check=check).returncode


def installed_weights(key: str) -> str | None:
    from pqeval.errors import ModelError
    from pqeval.session import OnnxModel, find_model

    try:
        return OnnxModel(find_model(key)).weights
    except ModelError:
        return None


def ensure_vggish() -> None:
    if (installed_weights("vggish") or "").startswith("pretrained:"):
        return
    local = os.environ.get("PQEVAL_VGGISH_WEIGHTS")
    if local and pqeval("export", "vggish", "--weights", local) == 0:
        return
    if pqeval("export", "vggish", "--download") == 0:
        return
    if installed_weights("vggish") is None:
        print("!! real VGGish weights unavailable here: exporting SEEDED weights (scores are not perceptual)")
        pqeval("export", "vggish", "--seeded", "0", check=True)


def ensure_openl3() -> None:
    from pqeval.registry import OPENL3

    key = OPENL3.default_key
    if (installed_weights(key) or "").startswith("pretrained:"):
        return
    local = os.environ.get("PQEVAL_OPENL3_WEIGHTS")
    if local and pqeval("export", "openl3", "--weights", local) == 0:
        return
    if pqeval("export", "openl3") == 0:  # weights inside an installed openl3 package
        return
    if installed_weights(key) is None:
        print("!! real OpenL3 weights unavailable here: exporting SEEDED weights (scores are not perceptual)")
        pqeval("export", "openl3", "--seeded", "0", check=True)


def example_pair() -> tuple[Path, Path]:
    from pqeval.audio import load_audio
    from pqeval.study.degrade import degrade

    OUT.mkdir(parents=True, exist_ok=True)
    src = Path(os.environ.get("PQEVAL_EXAMPLE", SHARED_SPEECH))
    clean = OUT / "clean.wav"
    if src.is_file():
        a = load_audio(src)
        x, sr = a.samples, a.sr
    else:  # a synthetic vowel: 120 Hz glottal pulse train through three formant resonances
        from scipy.signal import lfilter

        sr = 16000
        n = 3 * sr
        pulses = (np.arange(n) % (sr // 120) == 0).astype(float)
        x = pulses
        for f, bw in ((700, 130), (1220, 70), (2600, 160)):
            r = np.exp(-np.pi * bw / sr)
            x = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f / sr), r * r], x)
        x = 0.9 * x / np.abs(x).max()
    sf.write(str(clean), x, sr, subtype="FLOAT")
    degraded = OUT / "degraded_noise_high.wav"
    sf.write(str(degraded), degrade(x, sr, "noise", "high", seed=0), sr, subtype="FLOAT")
    return clean, degraded


def main() -> int:
    from pqeval.sources import configured_source

    source = configured_source()
    if source is not None:
        print(f"models from the bundle {source.display}", flush=True)
        pqeval("models", "install", check=True)
    else:
        ensure_vggish()
        ensure_openl3()
    pqeval("models")
    clean, degraded = example_pair()
    return pqeval("score", str(clean), str(degraded))


if __name__ == "__main__":
    sys.exit(main())
