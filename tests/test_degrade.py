"""Tests of pqeval.study.degrade and .codecs: the study's definitions, extra kinds, codecs, degrade_file."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate

from pqeval.errors import AudioError, UsageError
from pqeval.study import codecs as C
from pqeval.study import degrade as D

SR = 16000
SHARED_AUDIO = Path(os.environ.get("PQEVAL_TEST_AUDIO", Path(__file__).resolve().parents[2] / "shared" / "audio"))
SPEECH = SHARED_AUDIO / "speech_libri_198_f.wav"


def tone_mix(n: int = SR, sr: int = SR) -> np.ndarray:
    """A deterministic, non-trivial test signal peaking at 0.8 (harmonics with an envelope)."""
    t = np.arange(n) / sr
    x = sum(np.sin(2 * np.pi * f * t + k) / (k + 1) for k, f in enumerate((220.0, 470.0, 1310.0, 2900.0)))
    x *= 0.6 + 0.4 * np.sin(2 * np.pi * 3.0 * t)
    return 0.8 * x / np.max(np.abs(x))


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """First 3 s of a real speech recording (fails if the shared audio is not there)."""
    if not SPEECH.exists():
        pytest.fail(f"test recording {SPEECH} is missing (set PQEVAL_TEST_AUDIO to the shared audio folder)")
    x, sr = sf.read(SPEECH, dtype="float64")
    assert sr == SR
    return x[: 3 * SR]


def snr_db(clean: np.ndarray, degraded: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean**2) / np.sum((clean - degraded) ** 2)))


# ------------------------------------------------------------------------------------------
# the table


def test_study_table_is_the_issue_definition():
    assert D.LEVELS == ("low", "high", "extreme")
    assert [D.KINDS["noise"][lv]["sigma"] for lv in D.LEVELS] == [0.002, 0.01, 0.02]
    assert [D.KINDS["bitrate"][lv]["factor"] for lv in D.LEVELS] == [2, 4, 6]
    assert [D.KINDS["bitdepth"][lv]["bits"] for lv in D.LEVELS] == [12, 8, 4]
    assert set(D.KINDS) == set(D.ALL_KINDS) == set(D.DESCRIPTIONS)
    for kind in D.ALL_KINDS:
        assert tuple(D.KINDS[kind]) == D.LEVELS


# ------------------------------------------------------------------------------------------
# noise


@pytest.mark.parametrize("level", D.LEVELS)
def test_noise_sigma_matches_definition(level):
    x = tone_mix(4 * SR)
    raw = D.degrade(x, SR, "noise", level, seed=3, normalize=False)
    added = raw - x
    sigma = D.KINDS["noise"][level]["sigma"]
    # std of 64000 Gaussian draws is within 1.5 % of sigma with overwhelming probability (SE 0.28 %)
    assert added.std() == pytest.approx(sigma, rel=0.015)
    assert abs(added.mean()) < 5 * sigma / np.sqrt(len(x))
    # and it is the generator the module documents
    expected = sigma * D.rng_for(3, "noise", level).standard_normal(len(x))
    np.testing.assert_allclose(added, expected, rtol=0, atol=1e-15)


def test_noise_is_peak_normalised_version_of_raw():
    x = tone_mix()
    raw = D.degrade(x, SR, "noise", "high", seed=1, normalize=False)
    out = D.degrade(x, SR, "noise", "high", seed=1)
    np.testing.assert_array_equal(out, raw / np.max(np.abs(raw)))


def test_seed_reproducible_and_distinct():
    x = tone_mix()
    for kind in ("noise", "reverb"):
        a = D.degrade(x, SR, kind, "high", seed=5)
        b = D.degrade(x, SR, kind, "high", seed=5)
        c = D.degrade(x, SR, kind, "high", seed=6)
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


def test_levels_do_not_share_noise_draws():
    x = np.zeros(SR)
    draws = [D.degrade(x, SR, "noise", lv, seed=0, normalize=False) / D.KINDS["noise"][lv]["sigma"] for lv in D.LEVELS]
    for i in range(3):
        for j in range(i + 1, 3):
            assert abs(np.corrcoef(draws[i], draws[j])[0, 1]) < 0.05
    # ... nor with the reverb of the same seed
    assert not np.allclose(draws[0][:100], D.rng_for(0, "reverb", "low").standard_normal(100))


def test_rng_is_stable_across_processes():
    # CRC-32 of the names, not Python's per-process salted hash(): these values must never change.
    np.testing.assert_allclose(
        D.rng_for(0, "noise", "low").standard_normal(3), [-0.73052251, 0.47377486, 0.35580241], atol=1e-8
    )
    draws = D.rng_for(7, "reverb", "extreme").standard_normal(2)
    np.testing.assert_allclose(draws, [0.10179174, -2.01843451], atol=1e-8)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed(seed):
    with pytest.raises(UsageError):
        D.degrade(tone_mix(), SR, "noise", "low", seed=seed)


# ------------------------------------------------------------------------------------------
# bit rate (down/up-sampling)


@pytest.mark.parametrize("level", D.LEVELS)
def test_bitrate_cutoff_on_white_noise(level):
    factor = D.KINDS["bitrate"][level]["factor"]
    x = 0.1 * np.random.default_rng(11).standard_normal(2 * SR)
    y = D.degrade(x, SR, "bitrate", level, normalize=False)
    assert y.shape == x.shape
    f = np.fft.rfftfreq(len(x), 1 / SR)
    px, py = np.abs(np.fft.rfft(x)) ** 2, np.abs(np.fft.rfft(y)) ** 2
    cutoff = SR / (2 * factor)
    stop = f > cutoff
    attenuation_db = 10 * np.log10(py[stop].sum() / px[stop].sum())
    assert attenuation_db < -40, attenuation_db
    # the pass band (up to 80 % of the cut-off) is kept within 0.5 dB
    keep = f < 0.8 * cutoff
    assert abs(10 * np.log10(py[keep].sum() / px[keep].sum())) < 0.5


@pytest.mark.parametrize("level", D.LEVELS)
def test_bitrate_removes_rather_than_aliases(level):
    # A tone between the cut-off and the low rate would fold to sr/factor - f0 with a poor
    # anti-aliasing filter; kaiser_best removes it.
    factor = D.KINDS["bitrate"][level]["factor"]
    f0 = 1.5 * SR / (2 * factor)
    x = 0.5 * np.sin(2 * np.pi * f0 * np.arange(SR) / SR)
    y = D.degrade(x, SR, "bitrate", level, normalize=False)
    mid = slice(SR // 4, 3 * SR // 4)  # away from the edges
    assert 10 * np.log10(np.sum(y[mid] ** 2) / np.sum(x[mid] ** 2)) < -60


def test_bitrate_is_not_delayed():
    x = tone_mix(SR)
    y = D.degrade(x, SR, "bitrate", "low", normalize=False)  # 2x keeps every tone below 4 kHz
    assert snr_db(x, y) > 30


# ------------------------------------------------------------------------------------------
# bit depth


@pytest.mark.parametrize("level", D.LEVELS)
def test_quantisation_levels_on_full_scale_ramp(level):
    bits = D.KINDS["bitdepth"][level]["bits"]
    ramp = np.linspace(-1.0, 1.0, 200_001)
    for normalize in (False, True):
        y = D.degrade(ramp, SR, "bitdepth", level, normalize=normalize)
        n_levels = len(np.unique(y))
        assert n_levels <= 2**bits
        assert n_levels == 2**bits - 1  # -Q..Q with Q = 2**(bits-1) - 1
    q = 2 ** (bits - 1) - 1
    np.testing.assert_allclose(y * q, np.round(y * q), atol=1e-9)  # all on the grid k / Q
    assert np.max(np.abs(y - ramp)) <= 0.5 / q + 1e-12


def test_quantisation_clips_out_of_range():
    y = D.degrade(np.array([-3.0, -0.5, 0.0, 0.5, 3.0]), SR, "bitdepth", "extreme", normalize=False)
    np.testing.assert_allclose(y, [-1.0, -4 / 7, 0.0, 4 / 7, 1.0])  # round half to even: 3.5 -> 4


# ------------------------------------------------------------------------------------------
# clipping and reverb


@pytest.mark.parametrize("level", D.LEVELS)
def test_clipping_threshold(level):
    x = tone_mix()
    frac = D.KINDS["clipping"][level]["fraction"]
    y = D.degrade(x, SR, "clipping", level, normalize=False)
    assert np.max(np.abs(y)) == pytest.approx(frac * np.max(np.abs(x)))
    inside = np.abs(x) <= frac * np.max(np.abs(x))
    np.testing.assert_array_equal(y[inside], x[inside])


@pytest.mark.parametrize("level", D.LEVELS)
def test_room_impulse_response_rt60_and_drr(level):
    p = D.KINDS["reverb"][level]
    h = D.room_impulse_response(SR, p["rt60"], p["drr_db"], D.rng_for(0, "reverb", level))
    assert h[0] == 1.0
    assert 10 * np.log10(1.0 / np.sum(h[1:] ** 2)) == pytest.approx(p["drr_db"], abs=1e-9)
    # Schroeder backward integration of the tail; fit the -5 .. -35 dB decay (T30) -> RT60
    edc = np.cumsum(h[1:][::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    sel = (edc_db <= -5) & (edc_db >= -35)
    slope = np.polyfit(np.nonzero(sel)[0] / SR, edc_db[sel], 1)[0]  # dB per second
    assert -60.0 / slope == pytest.approx(p["rt60"], rel=0.1)


def test_reverb_more_reverberant_with_level():
    x = tone_mix()
    snrs = [snr_db(x, D.degrade(x, SR, "reverb", lv, normalize=False)) for lv in D.LEVELS]
    assert snrs[0] > snrs[1] > snrs[2]


# ------------------------------------------------------------------------------------------
# every kind: length, normalisation, validation


@pytest.mark.parametrize("kind", D.ALL_KINDS)
@pytest.mark.parametrize("sr,n", [(16000, 8001), (44100, 22051)])
def test_length_and_peak_preserved(kind, sr, n):
    x = tone_mix(n, sr)
    y = D.degrade(x, sr, kind, "high", seed=2)
    assert y.dtype == np.float64 and y.shape == (n,)
    assert np.all(np.isfinite(y))
    assert np.max(np.abs(y)) == 1.0


@pytest.mark.parametrize("kind", ["bitrate", "bitdepth", "clipping", "reverb"])
def test_all_zero_stays_zero(kind):
    y = D.degrade(np.zeros(4000), SR, kind, "extreme")
    np.testing.assert_array_equal(y, np.zeros(4000))


def test_peak_normalize():
    np.testing.assert_array_equal(D.peak_normalize(np.array([0.0, -0.25, 0.125])), [0.0, -1.0, 0.5])
    np.testing.assert_array_equal(D.peak_normalize(np.zeros(3)), np.zeros(3))


@pytest.mark.parametrize(
    "args,err",
    [
        ((tone_mix(), SR, "hum", "low"), UsageError),
        ((tone_mix(), SR, "noise", "medium"), UsageError),
        ((np.zeros((2, 100)), SR, "noise", "low"), UsageError),
        ((tone_mix(), 0, "noise", "low"), UsageError),
        ((np.array([]), SR, "noise", "low"), AudioError),
        ((np.array([0.1, np.nan]), SR, "noise", "low"), AudioError),
        ((np.zeros(3), SR, "bitrate", "extreme"), AudioError),
    ],
)
def test_bad_arguments(args, err):
    with pytest.raises(err):
        D.degrade(*args)


# ------------------------------------------------------------------------------------------
# codecs


@pytest.mark.parametrize("kind", D.CODEC_KINDS)
def test_codec_available_here(kind):
    ok, reason = D.codec_status(kind)
    assert ok, reason  # libsndfile 1.2.2 in the venv writes all three


@pytest.mark.parametrize("kind", D.CODEC_KINDS)
def test_codec_roundtrip_aligned_and_degrading(kind, speech):
    snrs = []
    for level in D.LEVELS:
        y = D.degrade(speech, SR, kind, level, normalize=False)
        assert y.shape == speech.shape
        # aligned: the cross-correlation peaks at lag 0
        c = correlate(y, speech, mode="full", method="fft")  # c[len - 1 + k] = sum y[n + k] x[n]
        near = slice(len(speech) - 1 - 2000, len(speech) + 2000)
        assert int(np.argmax(c[near])) - 2000 == 0
        snrs.append(snr_db(speech, y))
    assert snrs[0] < 40, snrs  # audibly lossy even at "low"
    assert snrs[2] > 3, snrs  # still the same signal (misalignment would give <= 0 dB)
    assert snrs[0] > snrs[1] > snrs[2], snrs


@pytest.mark.parametrize("kind", ["mp3", "opus"])
def test_codec_bitrate_matches_table(kind, speech):
    for level in D.LEVELS:
        z, zsr, nbytes = C._encode_decode(speech, SR, kind, level)
        kbps = nbytes * 8 / (len(speech) / SR) / 1000
        target = D.KINDS[kind][level]["kbps"]
        assert 0.9 * target <= kbps <= 1.3 * target, (level, kbps)


def test_mp3_low_bitrate_delay_is_removed():
    # 16 kbit/s CBR MP3 frames carry no LAME gapless tag: the decoder returns 1105 extra samples
    # in front, which codec_roundtrip must find and cut.
    x = tone_mix(2 * SR)
    z, _, _ = C._encode_decode(x, SR, "mp3", "extreme")
    assert len(z) > len(x)
    assert C._codec_delay(z, x) == 1105
    y = D.degrade(x, SR, "mp3", "extreme", normalize=False)
    assert snr_db(x, y) > 5


@pytest.fixture
def fresh_codec_cache():
    D.codec_status.cache_clear()
    yield
    D.codec_status.cache_clear()


def test_missing_codec_is_a_usage_error_and_skipped_from_all(monkeypatch, fresh_codec_cache, tmp_path):
    real = dict(sf.available_formats())
    monkeypatch.setattr(sf, "available_formats", lambda: {k: v for k, v in real.items() if k != "MP3"})
    ok, reason = D.codec_status("mp3")
    assert not ok and "MP3" in reason
    with pytest.raises(UsageError, match="mp3"):
        D.degrade(tone_mix(), SR, "mp3", "low")
    kinds, skipped = D.expand_kinds("all")
    assert "mp3" not in kinds and set(skipped) == {"mp3"} and "MP3" in skipped["mp3"]
    assert "vorbis" in kinds and "noise" in kinds
    with pytest.raises(UsageError):
        D.expand_kinds(["noise", "mp3"])

    src = tmp_path / "clip.wav"
    sf.write(src, tone_mix(4000), SR, subtype="FLOAT")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the skip is a note in the result, never a warning
        res = D.degrade_file(src, tmp_path / "out", kinds="all", levels="low")
    assert [p.name for p in res.written] == [f"clip__{k}_low.wav" for k in D.ALL_KINDS if k != "mp3"]
    assert len(res.notes) == 1 and res.notes[0].startswith("skipping mp3:") and "MP3" in res.notes[0]
    assert not hasattr(D, "DegradationSkipped")


def test_expand_selections():
    assert D.expand_levels("all") == list(D.LEVELS)
    assert D.expand_levels(["extreme", "low", "low"]) == ["extreme", "low"]
    assert D.expand_kinds(["bitdepth", "noise"]) == (["bitdepth", "noise"], {})
    for bad in ("loud", ["low", "x"]):
        with pytest.raises(UsageError):
            D.expand_levels(bad)
    with pytest.raises(UsageError):
        D.expand_kinds("hum")


# ------------------------------------------------------------------------------------------
# degrade_file


def test_degrade_file_writes_float_wav(tmp_path):
    left, right = tone_mix(6000), np.linspace(-0.5, 0.5, 6000)
    src = tmp_path / "in" / "song.flac"
    src.parent.mkdir()
    sf.write(src, np.stack([left, right], axis=1), SR, subtype="PCM_24")
    stored, _ = sf.read(src, dtype="float64")
    mono = stored.mean(axis=1)

    out = tmp_path / "out" / "nested"
    res = D.degrade_file(src, out, seed=4)
    assert isinstance(res, D.DegradeResult) and res.notes == []
    paths = res.written
    assert [p.name for p in paths] == [f"song__{k}_{lv}.wav" for k in D.STUDY_KINDS for lv in D.LEVELS]
    assert sorted(os.listdir(out)) == sorted(p.name for p in paths)  # no temporary files left
    for p in paths:
        info = sf.info(p)
        assert (info.format, info.subtype, info.channels, info.samplerate, info.frames) == ("WAV", "FLOAT", 1, SR, 6000)
        kind, level = p.stem.split("__")[1].split("_")
        expected = D.degrade(mono, SR, kind, level, seed=4)
        back, _ = sf.read(p, dtype="float32")
        np.testing.assert_array_equal(back, expected.astype(np.float32))


def test_degrade_file_flac_24bit(tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone_mix(4000), SR, subtype="FLOAT")
    (path,) = D.degrade_file(src, tmp_path, kinds="noise", levels="low", fmt="flac").written
    assert path.name == "a__noise_low.flac"
    assert sf.info(path).subtype == "PCM_24"
    back, _ = sf.read(path, dtype="float64")
    expected = D.degrade(tone_mix(4000).astype(np.float32).astype(np.float64), SR, "noise", "low")
    np.testing.assert_allclose(back, expected, atol=2.0**-23)


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00WAVEjunkjunk", b"not audio at all" * 50])
def test_unreadable_input_is_audio_error(tmp_path, content):
    src = tmp_path / "broken.wav"
    src.write_bytes(content)
    with pytest.raises(AudioError) as info:
        D.degrade_file(src, tmp_path / "out")
    msg = str(info.value)
    assert str(src) in msg and "\n" not in msg
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_missing_and_empty_input(tmp_path):
    with pytest.raises(AudioError, match="nowhere.wav"):
        D.degrade_file(tmp_path / "nowhere.wav", tmp_path)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), SR)
    with pytest.raises(AudioError, match="empty.wav"):
        D.degrade_file(empty, tmp_path)


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    src = tmp_path / "a.wav"
    sf.write(src, tone_mix(4000), SR, subtype="FLOAT")
    target = tmp_path / "out" / "a__bitdepth_low.wav"
    target.parent.mkdir()
    target.write_bytes(b"previous")

    def failing_write(file, *args, **kwargs):
        file.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", failing_write)
    with pytest.raises(UsageError, match="disk full"):
        D.degrade_file(src, target.parent, kinds="bitdepth", levels="low")
    assert target.read_bytes() == b"previous"
    assert os.listdir(target.parent) == [target.name]


def test_degrade_file_bad_options(tmp_path):
    src = tmp_path / "a.wav"
    sf.write(src, tone_mix(4000), SR, subtype="FLOAT")
    for kwargs in ({"fmt": "mp3"}, {"kinds": "hum"}, {"levels": "medium"}, {"seed": -1}):
        with pytest.raises(UsageError):
            D.degrade_file(src, tmp_path / "o", **kwargs)
