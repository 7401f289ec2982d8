"""OpenL3 runtime (numpy + ORT only): framing, timestamps, filterbank, spectrograms, embedder plumbing.

No TensorFlow here: the embedder runs a tiny stand-in ONNX model (per-band mean of the spectrogram)
so that framing, batching and metadata handling are tested without the 20-GFLOP CNN. Parity with
openl3 itself is in test_openl3_parity.py (marker ``parity``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import pqeval
from pqeval.errors import AudioError, ModelError, UsageError
from pqeval.openl3 import (
    FRAME_LENGTH,
    INPUT_NAME,
    OUTPUT_NAME,
    OpenL3Embedder,
    OpenL3Frontend,
    cut_windows,
    frontend_params,
    hop_samples,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    num_windows,
    resample_to_48k,
    window_times,
)

BANNED = ("tensorflow", "torch", "librosa", "resampy", "keras", "tf_keras", "kapre", "openl3")


def make_stub_model(path: Path, input_repr: str = "mel256", frontend: dict | None = None) -> Path:
    """A tiny ONNX model with OpenL3's I/O: spectrogram [B, F, T, 1] -> per-band mean [B, F]."""
    import onnx
    from onnx import TensorProto, helper

    from pqeval_export.common import write_onnx

    f, t, _ = frontend_params(input_repr)["input_shape"]
    node = helper.make_node("ReduceMean", [INPUT_NAME], [OUTPUT_NAME], axes=[2, 3], keepdims=0)
    graph = helper.make_graph(
        [node],
        "stub",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["B", f, t, 1])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["B", f])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    write_onnx(
        proto,
        path,
        {
            "pqeval.model_id": "openl3",
            "pqeval.variant": f"{input_repr}-music-stub",
            "pqeval.weights": "seeded:stub",
            "pqeval.frontend": json.dumps(frontend or frontend_params(input_repr)),
        },
    )
    return path


@pytest.fixture(scope="module")
def stub_model(tmp_path_factory):
    from pqeval.session import OnnxModel

    path = make_stub_model(tmp_path_factory.mktemp("openl3stub") / "openl3-mel256-music-stub.onnx")
    return OnnxModel(path, threads=1)


# --- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n48, hop, center, expected",
    [
        (1, 0.1, True, 1),  # shorter than a window: padded to one
        (24000, 0.1, True, 1),  # 24000 centring zeros + 24000 = exactly one window
        (24001, 0.1, True, 2),  # one sample more needs a second window
        (48000, 0.1, True, 6),  # 72000 samples: 1 + 24000/4800
        (48001, 0.1, True, 7),
        (48000, 0.5, True, 2),
        (48000, 0.1, False, 1),
        (48001, 0.1, False, 2),
        (96000, 1.0, False, 1 + 1),
        (480000, 0.1, True, 1 + 95),  # 10 s: 1 + ceil((504000 - 48000) / 4800)
    ],
)
def test_num_windows_known_values(n48, hop, center, expected):
    assert num_windows(n48, hop, center) == expected


@pytest.mark.parametrize("hop", [0.1, 0.25, 0.5, 0.96, 1.0])
def test_windows_cover_every_sample_and_no_window_is_pure_padding(hop):
    h = hop_samples(hop)
    for n48 in [1, 100, 23999, 24000, 24001, 47999, 48000, 48001, 52799, 52800, 52801, 100_000, 333_333]:
        n = num_windows(n48, hop, True)
        padded_len = n48 + FRAME_LENGTH // 2
        last_start = (n - 1) * h
        assert last_start + FRAME_LENGTH >= padded_len
        if n > 1:
            assert last_start < padded_len


def openl3_style_frames(x48: np.ndarray, hop: float, center: bool) -> np.ndarray:
    """The framing of openl3 0.4.2 ``_preprocess_audio_batch`` (pad whole signal, then stride)."""
    frame_len, hop_len = 48000, int(hop * 48000)
    if center:
        x48 = np.pad(x48, (24000, 0))
    n = x48.size
    pad = frame_len - n if n < frame_len else int(np.ceil((n - frame_len) / float(hop_len))) * hop_len - (n - frame_len)
    if pad > 0:
        x48 = np.pad(x48, (0, pad))
    count = 1 + int((len(x48) - frame_len) / float(hop_len))
    return np.lib.stride_tricks.as_strided(
        x48, shape=(frame_len, count), strides=(x48.itemsize, hop_len * x48.itemsize)
    ).T


@pytest.mark.parametrize("n48", [5000, 24001, 48000, 70001, 130000])
@pytest.mark.parametrize("hop, center", [(0.1, True), (0.5, True), (0.1, False), (0.35, True)])
def test_cut_windows_equal_padded_framing(n48, hop, center):
    x = np.random.default_rng(n48).standard_normal(n48).astype(np.float32)
    ref = openl3_style_frames(x, hop, center)
    n = num_windows(n48, hop, center)
    assert ref.shape[0] == n
    got = np.concatenate([cut_windows(x, i, min(3, n - i), hop, center) for i in range(0, n, 3)])
    np.testing.assert_array_equal(got, ref)


def test_window_times_are_index_times_hop():
    np.testing.assert_array_equal(window_times(4, 0.1), np.array([0, 1, 2, 3]) * 0.1)
    np.testing.assert_array_equal(window_times(3, 0.5), [0.0, 0.5, 1.0])
    assert window_times(0, 0.1).shape == (0,)


# --- resampling (resampy 0.2.x kaiser_best, which openl3 0.4.2 pins) ---------------------------


@pytest.mark.parametrize(
    "sr, n_out, total, picks",
    # resampy 0.2.2 ``resample(x, sr, 48000, filter='kaiser_best')`` of x = sin(0.3 n) + 0.1 cos(1.7 n), n < 40;
    # values at output indices 1, 17, n_out // 2, -2. (resampy >= 0.3's kaiser_best differs by ~1e-2 here.)
    [
        (
            16000,
            120,
            2.143589659886552,
            (0.16347811864368864, 0.8961178878905384, -0.3639316289247729, -0.5674534134446371),
        ),
        (
            44100,
            43,
            1.1728804237991077,
            (0.2682889191947201, -0.9853029852180543, -0.4591717064106733, -0.8837727856361683),
        ),
    ],
)
def test_resampling_reproduces_resampy_02(sr, n_out, total, picks):
    n = np.arange(40)
    y = resample_to_48k(np.sin(0.3 * n) + 0.1 * np.cos(1.7 * n), sr)
    assert y.shape == (n_out,) and y.dtype == np.float64
    assert float(y.sum()) == pytest.approx(total, abs=1e-12)
    np.testing.assert_allclose(y[[1, 17, n_out // 2, -2]], picks, rtol=0, atol=1e-12)


def test_resampling_keeps_a_tone_and_passes_48k_through():
    t16 = np.arange(16000) / 16000
    y = resample_to_48k(np.sin(2 * np.pi * 1000 * t16), 16000)
    t48 = np.arange(48000) / 48000
    np.testing.assert_allclose(y[4800:-4800], np.sin(2 * np.pi * 1000 * t48)[4800:-4800], atol=1e-4)
    x = np.random.default_rng(0).standard_normal(1000)
    assert resample_to_48k(x, 48000) is not None and np.array_equal(resample_to_48k(x, 48000), x)
    with pytest.raises(AudioError):
        resample_to_48k(np.zeros(1), 8000 * 10)  # 1 sample at 80 kHz gives no output sample


# --- mel filterbank ----------------------------------------------------------------------------


def test_slaney_mel_scale():
    assert hz_to_mel(0.0) == 0.0
    assert hz_to_mel(1000.0) == pytest.approx(15.0)
    assert hz_to_mel(200.0) == pytest.approx(3.0)
    assert hz_to_mel(6400.0) == pytest.approx(15.0 + 27.0)  # 27 mels per factor 6.4 above 1 kHz
    f = np.array([0.0, 50.0, 999.0, 1000.0, 1001.0, 8000.0, 24000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(
    "n_mels, total, row10_max, row10_arg, last_max, last_arg, nonzero",
    # Values of librosa 0.11 ``librosa.filters.mel(sr=48000, n_fft=2048, n_mels=n)`` (what kapre uses).
    [
        (128, 5.458671569824219, 0.028095563873648643, 15, 0.0013138353824615479, 991, 2014),
        (256, 10.912665367126465, 0.020784689113497734, 7, 0.002528203884139657, 1007, 2031),
    ],
)
def test_filterbank_matches_librosa_values(n_mels, total, row10_max, row10_arg, last_max, last_arg, nonzero):
    fb = mel_filterbank(48000, 2048, n_mels)
    assert fb.shape == (n_mels, 1025) and fb.dtype == np.float32
    assert float(fb.sum()) == pytest.approx(total, rel=1e-6)
    assert float(fb[10].max()) == row10_max and int(fb[10].argmax()) == row10_arg
    assert float(fb[-1].max()) == last_max and int(fb[-1].argmax()) == last_arg
    assert int((fb > 0).sum()) == nonzero


@pytest.mark.parametrize("n_mels", [128, 256])
def test_filterbank_shape_and_slaney_area(n_mels):
    fb = mel_filterbank(48000, 2048, n_mels).astype(np.float64)
    assert (fb >= 0).all()
    assert (fb.max(axis=1) > 0).all()  # no empty band
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # bands ascend in frequency
    # Slaney normalisation: each triangle has unit area in Hz (check bands at least 20 bins wide).
    df = 48000 / 2048
    widths = (fb > 0).sum(axis=1)
    area = fb.sum(axis=1) * df
    wide = widths >= 20
    assert wide.sum() >= 16
    np.testing.assert_allclose(area[wide], 1.0, rtol=0.03)


# --- spectrograms ------------------------------------------------------------------------------


@pytest.mark.parametrize("input_repr, shape", [("linear", (257, 197)), ("mel128", (128, 199)), ("mel256", (256, 199))])
def test_spectrogram_layout_and_db_range(input_repr, shape):
    fe = OpenL3Frontend(input_repr)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(48000)
    w = np.stack([noise, 1e-3 * noise, np.zeros(48000)]).astype(np.float32)
    s = fe(w)
    assert s.shape == (3, *shape, 1) and s.dtype == np.float32
    assert list(s.shape[1:]) == frontend_params(input_repr)["input_shape"]
    np.testing.assert_array_equal(s.max(axis=(1, 2, 3)), 0.0)  # per-window max subtracted
    assert s.min() >= -80.0
    # the dB scale is relative to the window's max: a 60 dB quieter copy gives the same spectrogram
    np.testing.assert_allclose(s[1], s[0], atol=0.02)  # float32 rounding of the quiet copy
    np.testing.assert_array_equal(s[2], 0.0)  # all-zero window: 10 log10(1e-10) minus itself


def test_linear_stft_matches_direct_dft():
    fe = OpenL3Frontend("linear")
    x = np.random.default_rng(2).standard_normal(48000).astype(np.float32)
    mag = fe.magnitude(x[None])[0]  # [197, 257]
    n = np.arange(512)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / 512)
    k = np.arange(257)
    dft = np.exp(-2j * np.pi * np.outer(k, n) / 512)
    for frame in (0, 100, 196):
        seg = x[frame * 242 : frame * 242 + 512].astype(np.float64) * hann
        np.testing.assert_allclose(mag[frame], np.abs(dft @ seg), rtol=1e-9, atol=1e-9)


def test_mel_stft_pads_the_end_to_199_frames():
    fe = OpenL3Frontend("mel256")
    x = np.zeros(48000, np.float32)
    x[-50:] = 1.0  # only the last 50 samples: reached only by frames that run past the window
    mag = fe.magnitude(x[None])[0]
    assert mag.shape == (199, 1025)
    assert mag[198].max() > 0 and mag[:190].max() == 0
    assert (198 * 242 + 2048) > 48000  # the last frame extends into tf.signal.frame's end padding


def test_tone_peaks_in_its_band():
    t = np.arange(48000) / 48000
    f0 = 11 * 48000 / 512  # 1031.25 Hz: exactly linear bin 11
    x = np.sin(2 * np.pi * f0 * t).astype(np.float32)[None]
    lin = OpenL3Frontend("linear")(x)[0, :, :, 0]
    assert int(lin.mean(axis=1).argmax()) == 11
    mel = OpenL3Frontend("mel128")(x)[0, :, :, 0]
    fb = mel_filterbank(48000, 2048, 128)
    assert int(mel.mean(axis=1).argmax()) == int(fb[:, 44].argmax())  # 1031.25 Hz = bin 44 of 2048


# --- the embedder ------------------------------------------------------------------------------


def test_embed_frames_times_and_batching(stub_model):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(int(2.3 * 16000)) * 0.1
    e16 = OpenL3Embedder(stub_model, hop=0.25, batch_size=16).embed(x, 16000)
    e3 = OpenL3Embedder(stub_model, hop=0.25, batch_size=3).embed(x, 16000)
    n = num_windows(int(len(x) * 3), 0.25)
    assert e16.frames.shape == (n, 256) and e16.frames.dtype == np.float32
    np.testing.assert_array_equal(e16.times, np.arange(n) * 0.25)
    np.testing.assert_allclose(e3.frames, e16.frames, rtol=1e-6, atol=1e-5)
    assert e16.model == "openl3-mel256-music-stub" and e16.weights == "seeded:stub" and e16.provenance.kind == "seeded"
    # each frame is the stub applied to the right window
    x48 = resample_to_48k(x, 16000)
    k = n - 1
    want = OpenL3Frontend("mel256")(cut_windows(x48, k, 1, 0.25))[0, :, :, 0].mean(axis=1)
    np.testing.assert_allclose(e16.frames[k], want, rtol=1e-5, atol=1e-4)


def test_48k_input_is_not_resampled(stub_model):
    x = np.random.default_rng(4).standard_normal(60000) * 0.1
    e = OpenL3Embedder(stub_model, hop=0.5).embed(x, 48000)
    want = OpenL3Frontend("mel256")(cut_windows(x, 0, num_windows(60000, 0.5), 0.5))[:, :, :, 0].mean(axis=2)
    np.testing.assert_allclose(e.frames, want, rtol=1e-5, atol=1e-4)


def test_sub_second_clip_is_padded_with_a_note(stub_model):
    x = np.random.default_rng(5).standard_normal(8000) * 0.1  # 0.5 s at 16 kHz
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # notes are data, never Python warnings
        e = OpenL3Embedder(stub_model, hop=0.1).embed(x, 16000)
        assert len(e.frames) == num_windows(24000, 0.1) == 1
        assert len(e.notes) == 1 and "shorter than OpenL3's 1 s window" in e.notes[0]
        exact = OpenL3Embedder(stub_model, hop=0.5).embed(np.zeros(16000) + 0.01, 16000)
    assert exact.notes == ()  # exactly 1 s: no note


def test_bad_inputs_are_refused(stub_model):
    emb = OpenL3Embedder(stub_model)
    with pytest.raises(AudioError):
        emb.embed(np.zeros(0), 16000)
    with pytest.raises(AudioError):
        emb.embed(np.zeros((16000, 2)), 16000)
    with pytest.raises(UsageError):
        OpenL3Embedder(stub_model, hop=0)
    with pytest.raises(UsageError):
        OpenL3Embedder(stub_model, batch_size=0)


def test_model_with_other_frontend_parameters_is_refused(tmp_path):
    from pqeval.session import OnnxModel

    params = dict(frontend_params("mel256"), n_fft=1024)
    model = OnnxModel(make_stub_model(tmp_path / "openl3-odd.onnx", frontend=params), threads=1)
    with pytest.raises(ModelError, match="n_fft"):
        OpenL3Embedder(model)
    path = make_stub_model(tmp_path / "openl3-none.onnx", frontend={"input_repr": "mel999"})
    with pytest.raises(ModelError, match="frontend"):
        OpenL3Embedder(OnnxModel(path, threads=1))


def test_runtime_imports_no_ml_framework(tmp_path):
    """Importing and running pqeval.openl3 loads neither TensorFlow, torch, librosa nor resampy."""
    path = make_stub_model(tmp_path / "openl3-mel256-music-stub.onnx")
    code = textwrap.dedent(
        f"""
        import sys, warnings
        import numpy as np
        from pqeval.openl3 import OpenL3Embedder
        from pqeval.session import OnnxModel
        emb = OpenL3Embedder(OnnxModel({str(path)!r}, threads=1), hop=0.5)
        e = emb.embed(np.random.default_rng(0).standard_normal(30000) * 0.1, 22050)
        assert e.frames.shape[0] == 3, e.frames.shape
        print(",".join(sorted(m for m in {BANNED!r} if m in sys.modules)) or "-")
        """
    )
    runtime_dir = str(Path(pqeval.__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=runtime_dir)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "-", f"runtime imported: {proc.stdout.strip()}"


def test_batched_resampling_equals_whole_clip(stub_model):
    """embed() resamples only what each batch of windows reads; the windows are the same."""
    from pqeval.openl3 import cut_windows, num_windows, resample_to_48k

    x = np.random.default_rng(5).standard_normal(int(3.3 * 44100))
    emb = OpenL3Embedder(stub_model, hop=0.25, batch_size=3)
    got = emb.embed(x, 44100).frames
    x48 = resample_to_48k(x, 44100)
    want = emb.run_windows(cut_windows(x48, 0, num_windows(len(x48), 0.25), 0.25))
    assert np.array_equal(got, want)
