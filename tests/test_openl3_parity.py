"""OpenL3 parity: pqeval (numpy frontend + ONNX CNN) against openl3 0.4.2 itself, in this run.

Needs the export stack (tensorflow + tf-keras, kapre 0.3.7, resampy 0.2.2, tf2onnx, openl3 0.4.2
source from ``scripts/get_openl3.py``): marked ``parity``. Weights are seeded random weights in
openl3's architecture, saved by Keras to ``.h5`` and loaded through
``openl3.models.load_audio_embedding_model_from_path`` by both sides.

OpenL3 costs ~20 GFLOP per 1 s window in both frameworks, so the clips are 2-3 s excerpts.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.parity

AUDIO = Path(__file__).resolve().parents[2] / "shared" / "audio"
SEED = 20240
COSINE_MIN = 0.99999
REL_MAX_ABS = 1e-3  # max |ours - openl3| as a fraction of max |openl3 embedding|
# openl3 itself is only defined to within its float32 noise: scaling the input by a constant
# changes nothing in exact arithmetic (the dB spectrogram is relative to its maximum) but moves
# TF's embeddings of resampled (band-limited) audio by up to ~1e-2 of max |embedding| (linear
# input) : the empty band above the source's Nyquist sits at TF's float32 FFT noise, inside the
# 80 dB range (8 decades of magnitude). Where that self-noise exceeds the targets, the bounds are
# NOISE_FACTOR times it, measured in this run. (A gain of 0.7 re-rounds every float32 sample, so
# the two noise realisations are independent; 1 + 2**-22 left them correlated.) Ours deviates
# from openl3 a little more than openl3 from itself: TF's float32 FFT noise also adds a bias
# (noise power) to near-empty bins, which both openl3 runs share and pqeval's float64 lacks.
NOISE_GAIN = 0.7
NOISE_FACTOR = 3.0  # measured ours/self-noise ratios: up to 2.4 (rel) and 1.8 (1 - cosine)


def read(name: str, start: float = 0.0, dur: float | None = None) -> tuple[np.ndarray, int]:
    """(audio float64 [n] or [n, ch], sr) excerpt of a shared recording."""
    import soundfile as sf

    path = AUDIO / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the shared test recordings are missing")
    x, sr = sf.read(str(path), dtype="float64", always_2d=False)
    a = int(start * sr)
    b = len(x) if dur is None else a + int(dur * sr)
    return x[a:b], sr


def synthetic(sr: int, dur: float, seed: int) -> np.ndarray:
    """Chirp + amplitude-modulated tones + noise floor + a silent gap + clicks, float64 at ``sr``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * dur)) / sr
    nyq = sr / 2
    f0, f1 = 80.0, 0.9 * nyq
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * dur)))
    tones = (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * min(3100.0, 0.7 * nyq) * t)) * (
        0.6 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    )
    x = 0.3 * chirp + 0.2 * tones + 0.01 * rng.standard_normal(len(t))
    gap = (t > 0.4 * dur) & (t < 0.5 * dur)
    x[gap] = 0.001 * rng.standard_normal(gap.sum())
    x[(np.arange(len(t)) % max(1, int(0.37 * sr))) == 0] += 0.9
    return x


def to_rate(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Make a real recording into an input at another rate (any resampler: it is just an input)."""
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g)


@pytest.fixture(scope="session")
def ol3(tmp_path_factory):
    """Seeded mel256/music/512: a Keras-written .h5, exported through the by-path loader, and openl3's model."""
    from pqeval.session import OnnxModel
    from pqeval_export import openl3 as X  # sets TF_USE_LEGACY_KERAS=1 before TensorFlow loads

    openl3 = X.import_openl3()
    d = tmp_path_factory.mktemp("openl3")
    h5 = X.make_seeded_weights(SEED, "mel256", d, "music")
    path = X.export_openl3("mel256", "music", 512, weights=h5, out_dir=d / "models")
    keras_model = openl3.models.load_audio_embedding_model_from_path(str(h5), "mel256", 512, frontend="kapre")
    return SimpleNamespace(X=X, openl3=openl3, h5=h5, path=path, keras=keras_model, onnx=OnnxModel(path))


def reference(ol3, audio: np.ndarray, sr: int, hop: float):
    """openl3 0.4.2's own pipeline (resampy -> kapre frontend -> CNN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ol3.openl3.get_audio_embedding(
            audio, sr, model=ol3.keras, frontend="kapre", center=True, hop_size=hop, batch_size=16, verbose=False
        )


def diff_stats(ours: np.ndarray, ref: np.ndarray) -> dict:
    """Smallest per-frame cosine, max abs diff and its ratio to max |ref|."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    a, b = ref.astype(np.float64), ours.astype(np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    mad = float(np.abs(a - b).max())
    return {"cosine_min": float(cos.min()), "max_abs_diff": mad, "rel": mad / float(np.abs(a).max()), "n": len(a)}


def noise_bounds(self_noise: dict) -> tuple[float, float]:
    """(cosine bound, rel bound): the targets, or NOISE_FACTOR times openl3's own float32 noise if larger."""
    cos_bound = min(COSINE_MIN, 1.0 - NOISE_FACTOR * (1.0 - self_noise["cosine_min"]))
    return cos_bound, max(REL_MAX_ABS, NOISE_FACTOR * self_noise["rel"])


def assert_close(
    ours: np.ndarray, ref: np.ndarray, cos_bound: float = COSINE_MIN, rel_bound: float = REL_MAX_ABS
) -> dict:
    stats = diff_stats(ours, ref)
    print(stats, f"bounds: cosine {cos_bound:.7f}, rel {rel_bound:.2e}")
    assert stats["cosine_min"] >= cos_bound, (stats, cos_bound)
    assert stats["rel"] <= rel_bound, (stats, rel_bound)
    return stats


CASES = {
    # name: (loader -> (audio as given to openl3, sr), hop)
    "48k-synthetic-hop0.1": (lambda: (synthetic(48000, 2.0, 1), 48000), 0.1),
    "48k-real-hop0.5": (lambda: (to_rate(read("music_brahms_hungarian5.wav", 2.0, 2.5)[0], 16000, 48000), 48000), 0.5),
    "44k-stereo-trumpet-hop0.5": (lambda: read("music_trumpet_sorohan_44k_stereo.flac", 0.5, 2.5), 0.5),
    "44k-stereo-brahms-hop0.1": (lambda: read("music_brahms_hungarian5_44k_stereo.flac", 4.0, 1.5), 0.1),
    "16k-speech-hop0.1": (lambda: read("speech_libri_198_f.wav", 1.0, 2.0), 0.1),
    "16k-synthetic-hop0.5": (lambda: (synthetic(16000, 2.5, 2), 16000), 0.5),
    "8k-robin-hop0.5": (lambda: (to_rate(read("env_robin_inspectorj.wav", 0.0, 2.5)[0], 16000, 8000), 8000), 0.5),
    "8k-synthetic-hop0.1": (lambda: (synthetic(8000, 1.5, 3), 8000), 0.1),
    "16k-sub-second-hop0.1": (lambda: read("speech_cmu_goforward.wav", 0.8, 0.6), 0.1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_embedding_parity_with_openl3(ol3, case):
    from pqeval.openl3 import OpenL3Embedder

    load, hop = CASES[case]
    audio, sr = load()
    ref, ref_ts = reference(ol3, audio, sr, hop)
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio  # the caller's down-mix (openl3: np.mean(axis=1))
    emb = OpenL3Embedder(ol3.onnx, hop=hop, batch_size=8)
    got = emb.embed(mono, sr)
    if "sub-second" in case:  # padded as openl3 pads, and said so as data (a note), not a warning
        assert any("shorter than OpenL3's 1 s window" in n for n in got.notes)
    else:
        assert got.notes == ()
    np.testing.assert_array_equal(got.times, ref_ts)
    # how far openl3 moves under a change that is invisible in exact arithmetic
    ref2, _ = reference(ol3, audio * NOISE_GAIN, sr, hop)
    self_noise = diff_stats(ref2, ref)
    print("openl3 self-noise", self_noise)
    cos_bound, rel_bound = noise_bounds(self_noise)
    assert cos_bound == COSINE_MIN  # on the default mel256 model openl3 itself is that stable
    assert_close(got.frames, ref, cos_bound, rel_bound)
    assert got.weights == f"seeded:{SEED}"


@pytest.mark.parametrize("sr", [48000, 44100, 16000, 8000])
@pytest.mark.parametrize("hop, center", [(0.1, True), (0.5, True), (0.25, False), (0.96, True)])
def test_frame_count_and_windows_around_boundaries(ol3, sr, hop, center):
    """Window count, timestamps and window contents equal openl3's _preprocess_audio_batch."""
    from pqeval.openl3 import cut_windows, num_windows, resample_to_48k

    rng = np.random.default_rng(sr)
    for target in (24000, 48000, 48000 + int(hop * 48000), 72000, 100_000):
        base = int(round(target * sr / 48000))
        for n in (base - 1, base, base + 1):
            x = rng.standard_normal(n)
            ref = ol3.openl3.core._preprocess_audio_batch(x, sr, center=center, hop_size=hop)[:, 0, :]
            x48 = resample_to_48k(x, sr)
            count = num_windows(len(x48), hop, center)
            assert count == ref.shape[0], (sr, n, hop, center)
            got = cut_windows(x48, 0, count, hop, center)
            # ours are float32 (what the model receives); resampy 0.2 accumulates its time register
            # in float64, so its phase drifts from the exact polyphase one by ~1e-12 s per sample
            np.testing.assert_allclose(got, ref.astype(np.float32), rtol=0, atol=1e-5 if sr != 48000 else 0)


VARIANTS = [(r, c, s) for r in ("linear", "mel128", "mel256") for c in ("music", "env") for s in (512, 6144)]


@pytest.fixture(scope="module")
def windows():
    """[4, 48000] float32: two full-band synthetic windows, then two of resampled real recordings."""
    from pqeval.openl3 import cut_windows, resample_to_48k

    syn = cut_windows(synthetic(48000, 2.0, 11), 0, 2, 0.7)
    x, sr = read("music_trumpet_sorohan_44k_stereo.flac", 0.0, 2.0)
    trumpet = cut_windows(resample_to_48k(x.mean(axis=1), sr), 1, 1, 0.9)
    y, sr = read("speech_libri_3436_m.wav", 2.0, 1.5)
    speech = cut_windows(resample_to_48k(y, sr), 1, 1, 0.5)
    return np.concatenate([syn, trumpet, speech])


@pytest.mark.parametrize("input_repr, content_type, size", VARIANTS, ids=["-".join(map(str, v)) for v in VARIANTS])
def test_every_variant_exports_and_matches_tf(ol3, tmp_path, windows, input_repr, content_type, size):
    """Export (seeded) and compare ORT on pqeval's spectrogram with openl3's kapre model in TF.

    Full-band windows must meet the targets; resampled ones the targets or twice openl3's own
    float32 noise (the linear input keeps every bin of the empty band above the source's Nyquist).
    """
    import tensorflow as tf

    from pqeval.openl3 import OpenL3Embedder
    from pqeval.session import OnnxModel

    X = ol3.X
    seed = 1 + VARIANTS.index((input_repr, content_type, size))
    path = X.export_openl3(input_repr, content_type, size, seeded=seed, out_dir=tmp_path)
    assert path.name == f"openl3-{input_repr}-{content_type}-{size}.onnx"
    model = OnnxModel(path, threads=2)
    md = model.metadata
    assert md["pqeval.weights"] == f"seeded:{seed}"
    assert md["pqeval.model_id"] == "openl3" and md["pqeval.variant"] == f"{input_repr}-{content_type}-{size}"
    for key in ("pqeval.frontend", "pqeval.versions", "pqeval.verify"):
        assert key in md
    # openl3's own model with the same seeded weights, written by Keras and loaded by openl3
    h5 = X.make_seeded_weights(seed, input_repr, tmp_path, content_type)
    keras_model = ol3.openl3.models.load_audio_embedding_model_from_path(str(h5), input_repr, size, frontend="kapre")
    ref = keras_model.predict(windows[:, None, :], verbose=0, batch_size=len(windows))
    ref2 = keras_model.predict((windows * NOISE_GAIN)[:, None, :], verbose=0, batch_size=len(windows))
    got = OpenL3Embedder(model).run_windows(windows)
    assert got.shape == (len(windows), size)
    assert_close(got[:2], ref[:2])
    self_noise = diff_stats(ref2[2:], ref[2:])
    print("openl3 self-noise", self_noise)
    assert_close(got[2:], ref[2:], *noise_bounds(self_noise))
    del keras_model
    tf.keras.backend.clear_session()


def test_h5_by_path_records_provenance(ol3, tmp_path):
    """The fixture's export went through the by-path loader; real files get pretrained:<name> <sha256>."""
    import h5py

    X = ol3.X
    assert ol3.onnx.weights == f"seeded:{SEED}"  # the seed travels inside the Keras-written file
    real_like = tmp_path / "openl3_audio_mel256_music.h5"
    shutil.copy(ol3.h5, real_like)
    with h5py.File(real_like, "a") as f:
        del f.attrs[X.SEED_ATTR]
    prov = X.weights_provenance(real_like)
    assert prov == f"pretrained:openl3_audio_mel256_music.h5 {X.sha256_file(real_like)}"
    X.check_weights_file(real_like, "mel256", "music")  # accepted as is


def test_wrong_architecture_is_refused(ol3, tmp_path):
    import tensorflow as tf

    from pqeval.errors import ModelError

    X = ol3.X
    # openl3's image network: same layer count, 3 input channels -> different shapes
    img = ol3.openl3.models._construct_image_network()
    img_path = tmp_path / "some_weights.h5"
    img.save_weights(str(img_path))
    with pytest.raises(ModelError, match=r"wrong architecture for OpenL3 mel256: layer 0 .* needs \[\(1,\)"):
        X.export_openl3("mel256", "music", 512, weights=img_path, out_dir=tmp_path)
    # an unrelated small Keras model
    small = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(3)])
    small_path = tmp_path / "dense.h5"
    small.save_weights(str(small_path))
    with pytest.raises(ModelError, match="the file has 1 layers with weights, the model 16"):
        X.export_openl3("linear", "music", 512, weights=small_path, out_dir=tmp_path)
    # a file named for another variant (its weights would fit: content type lives only in the name)
    other = tmp_path / "openl3_audio_mel128_env.h5"
    shutil.copy(ol3.h5, other)
    with pytest.raises(ModelError, match="named for the mel128/env OpenL3 model, not mel256/music"):
        X.export_openl3("mel256", "music", 512, weights=other, out_dir=tmp_path)
    # not HDF5 at all
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file")
    with pytest.raises(ModelError, match="cannot read it as a Keras HDF5"):
        X.export_openl3("mel256", "music", 512, weights=junk, out_dir=tmp_path)
    with pytest.raises(ModelError, match="no such weights file"):
        X.export_openl3("mel256", "music", 512, weights=tmp_path / "missing.h5", out_dir=tmp_path)
    assert not list(tmp_path.glob("*.onnx"))


def test_numpy_frontend_matches_kapre_layers(ol3):
    """pqeval's spectrogram vs openl3's kapre layers in TF, for every input representation.

    On full-band 48 kHz windows; on resampled audio the empty band above the source's Nyquist
    holds TF's float32 FFT noise (see NOISE_GAIN) and differs by up to a few dB near -80 dB.
    """
    from pqeval.openl3 import OpenL3Frontend, cut_windows, mel_filterbank

    x = synthetic(48000, 2.0, 7)
    windows = cut_windows(x, 0, 4, 0.5)

    import librosa

    for n in (128, 256):
        np.testing.assert_array_equal(
            mel_filterbank(48000, 2048, n), librosa.filters.mel(sr=48000, n_fft=2048, n_mels=n)
        )
    for input_repr in ("linear", "mel128", "mel256"):
        full = ol3.openl3.models.AUDIO_MODELS[input_repr](include_frontend=True)
        kapre = ol3.X.kapre_spectrogram_model(full).predict(windows[:, None, :], verbose=0)
        ours = OpenL3Frontend(input_repr)(windows)
        assert ours.shape == kapre.shape
        diff = np.abs(ours - kapre)
        print(input_repr, float(diff.max()), float(diff.mean()))
        assert diff.mean() < 1e-4
        assert diff.max() < 0.05  # float32 FFT noise of TF in bins near the -80 dB floor
