"""`pqeval export graph`: one ONNX file from a waveform to embeddings per frame, against pqeval's own path.

Runtime tier: the graphs built around the tiny models (real I/O, so the builder runs on them) on
real recordings resampled to the model's rate, frame by frame and as clip scores against the
Scorer / `pqeval score`; the graph's contract (names, shapes, ops, metadata, sidecar, one file);
the command's errors. Parity tier: the same comparisons on the real seeded exports of VGGish and
OpenL3 mel256 (built through torch / TensorFlow by the fixtures).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import cli, read
from pqeval.errors import UsageError
from pqeval.resample import resample
from pqeval.scoring import ScoreOptions, Scorer
from pqeval.session import OnnxModel, embedded_metadata
from pqeval.similarity import cosine_per_frame
from pqeval_export import graph as G

VGGISH_KEY = "vggish"
OPENL3_KEY = "openl3-mel256-music-512"
COSINE_MIN = 0.99999  # per frame, graph vs numpy path
SCORE_TOL = 1e-5  # clip score, graph vs Scorer
#: Ops the graphs may use: the frontend's and the loop's, plus the models' own (all in
#: onnxruntime-web's WASM backend, which is ORT's CPU kernels).
FRONTEND_OPS = {
    "Shape", "Sub", "Div", "Add", "Max", "Min", "Mul", "Squeeze", "Unsqueeze", "Range", "Gather", "Slice",
    "MatMul", "Sqrt", "Log", "Cast", "Pad", "Concat", "ReduceMax", "Transpose", "Identity", "Loop", "Greater",
}  # fmt: skip


# --- helpers --------------------------------------------------------------------------------------


def clip(name: str, sr_out: int, seconds: float | None = None, samples: int | None = None) -> np.ndarray:
    """A shared recording (mono) resampled to ``sr_out`` with pqeval's resampler, cut, as float32."""
    x, sr = read(name)
    if x.ndim > 1:
        x = x.mean(axis=1)
    y = resample(x, sr, sr_out) if sr != sr_out else x
    n = samples if samples is not None else (len(y) if seconds is None else int(round(seconds * sr_out)))
    assert len(y) >= n, (name, len(y), n)
    return y[:n].astype(np.float32)


def degrade(x: np.ndarray, snr_db: float = 10.0, seed: int = 0) -> np.ndarray:
    """x plus white noise at ``snr_db`` and a gentle low-pass: a clearly different clip."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(len(x)) * np.sqrt(np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
    y = np.convolve(x.astype(np.float64), np.ones(3) / 3, mode="same") + noise
    return y.astype(np.float32)


class Graph:
    """A built graph in an ORT session, and the source model it was built from."""

    def __init__(self, source: Path, out: Path, hop: float | None = None, batch: int | None = None) -> None:
        import onnxruntime as ort

        proto, _ = G.build_graph(source, hop, batch)
        out.write_bytes(proto.SerializeToString())
        so = ort.SessionOptions()
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
        self.source, self.path, self.hop = source, out, hop
        self.names = [o.name for o in self.session.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.session.run(None, {"waveform": x}), strict=True))


def compare_clip(g: Graph, x: np.ndarray, flips: list[int] | None = None) -> dict:
    """Graph vs pqeval's numpy path on one clip: equal frame counts and timestamps, cosine >= COSINE_MIN,
    8-bit values at most one step apart (their count appended to ``flips``)."""
    got, want = g(x), G.reference(g.source, x, g.hop)
    assert got["embedding"].dtype == np.float32 and got["timestamps"].dtype == np.float32
    assert got["embedding"].shape == want["embedding"].shape
    np.testing.assert_array_equal(got["timestamps"], np.asarray(want["timestamps"]).astype(np.float32))
    cos = cosine_per_frame(got["embedding"], want["embedding"])
    assert cos.min() >= COSINE_MIN, cos.min()
    if "postprocessed" in want:
        d = np.abs(got["postprocessed"].astype(np.float64) - want["postprocessed"])
        assert d.max() <= 1.0, d.max()  # only rounding-boundary flips
        if flips is not None:
            flips.append(int((d > 0).sum()))
    return {"cosine_min": float(cos.min()), "frames": len(cos)}


def assert_rare(flips: int, values: int) -> None:
    """8-bit values that differ (each by one step, checked in compare_clip) are rare: the float32
    log-mel moves a PCA value across a .5 rounding boundary now and then (at most 1 in 1000)."""
    assert flips <= max(2, values // 1000), (flips, values)


def graph_score(g: Graph, clean: np.ndarray, degraded: np.ndarray) -> float:
    """The clip score as pqeval computes it (mean cosine over the frames both have), from the graph."""
    a, b = g(clean)["embedding"], g(degraded)["embedding"]
    n = min(len(a), len(b))
    return float(cosine_per_frame(a[:n], b[:n]).mean())


def scorer_score(family: str, clean: np.ndarray, degraded: np.ndarray, sr: int, tmp: Path) -> float:
    """pqeval's Scorer on the two clips written as float32 WAV files at the model's rate."""
    from pqeval.audio import load_audio

    paths = []
    for name, x in (("clean", clean), ("degraded", degraded)):
        p = tmp / f"{family}-{name}-{len(x)}.wav"
        sf.write(p, x, sr, subtype="FLOAT")
        paths.append(p)
    opts = ScoreOptions(metrics=(family,), vggish_output="embedding")
    r = Scorer(opts).score(load_audio(paths[0]), load_audio(paths[1]))
    return r.metrics[family].value


# clips: (name, rate) -> kwargs of clip(); lengths exactly one window, non-multiples of the hop, whole files
VGGISH_CLIPS = [
    ("speech_libri_198_f.wav", {}),  # 8.5 s, the whole file
    ("music_brahms_hungarian5_44k_stereo.flac", {"seconds": 3.3}),  # 44.1 kHz stereo -> 16 kHz mono
    ("env_robin_inspectorj.wav", {"samples": 15600}),  # exactly one example (0.975 s)
    ("env_humpback_glacierbay.wav", {"samples": 30959}),  # one sample short of two examples
    ("speech_cmu_goforward.wav", {"samples": 30960}),  # exactly two
]
OPENL3_CLIPS = [
    ("speech_libri_3436_m.wav", {"seconds": 3.0}),  # 16 kHz -> 48 kHz: an empty band above 8 kHz
    ("music_trumpet_sorohan_44k_stereo.flac", {"seconds": 2.7}),  # 44.1 kHz stereo -> 48 kHz mono
    ("env_robin_inspectorj.wav", {"seconds": 0.5}),  # shorter than a window: zero-padded as openl3
    ("music_brahms_hungarian5.wav", {"samples": 48000}),  # exactly one window
    ("speech_cmu_goforward.wav", {"samples": 72001}),  # one sample past a hop
]


# --- runtime tier: the tiny models ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_graphs(models_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("graphs")
    return {
        VGGISH_KEY: Graph(models_dir / f"{VGGISH_KEY}.onnx", d / "vggish-graph.onnx"),
        OPENL3_KEY: Graph(models_dir / f"{OPENL3_KEY}.onnx", d / "openl3-graph.onnx"),
    }


def test_vggish_frames_match_numpy_path(tiny_graphs):
    flips: list[int] = []
    values = 0
    for name, kw in VGGISH_CLIPS:
        values += 128 * compare_clip(tiny_graphs[VGGISH_KEY], clip(name, 16000, **kw), flips)["frames"]
    assert_rare(sum(flips), values)


def test_openl3_frames_match_numpy_path(tiny_graphs):
    for name, kw in OPENL3_CLIPS:
        compare_clip(tiny_graphs[OPENL3_KEY], clip(name, 48000, **kw))


@pytest.mark.parametrize("batch", [1, 3])
def test_vggish_batches_across_loop_iterations(models_dir, tmp_path, batch):
    """Frames made in several loop iterations (the last one partial) equal those made in one."""
    g = Graph(models_dir / f"{VGGISH_KEY}.onnx", tmp_path / "g.onnx", batch=batch)
    r = compare_clip(g, clip("speech_libri_3436_m.wav", 16000, seconds=7.0))  # 7 examples
    assert r["frames"] == 7


@pytest.mark.parametrize(("hop", "batch"), [(0.1, 4), (0.33333, 1), (2.5, 2)])
def test_openl3_other_hops(models_dir, tmp_path, hop, batch):
    """openl3's window count and timestamps for any hop (int(hop * 48000) samples; times i * hop)."""
    from pqeval.openl3 import num_windows

    g = Graph(models_dir / f"{OPENL3_KEY}.onnx", tmp_path / "g.onnx", hop=hop, batch=batch)
    x = clip("music_trumpet_sorohan.wav", 48000, seconds=2.3)
    r = compare_clip(g, x)
    assert r["frames"] == num_windows(len(x), hop)


def test_window_counts_at_the_edges(tiny_graphs):
    """Frame counts around the boundaries equal the numpy path's (VGGish: none below 0.975 s)."""
    from pqeval.openl3 import num_windows

    x16 = clip("speech_libri_198_f.wav", 16000)
    for n in (1, 400, 15599, 15600, 15601, 30959, 30960, 46319, 46320):
        want = 0 if n < 15600 else (1 + (n - 400) // 160) // 96
        got = tiny_graphs[VGGISH_KEY](x16[:n])
        assert got["embedding"].shape == (want, 128) and got["postprocessed"].shape == (want, 128), n
        np.testing.assert_array_equal(got["timestamps"], (np.arange(want) * 0.96).astype(np.float32))
    x48 = clip("speech_libri_198_f.wav", 48000, seconds=2.0)
    for n in (1, 23999, 24000, 24001, 47999, 48000, 48001, 72000, 72001):
        got = tiny_graphs[OPENL3_KEY](x48[:n])
        assert got["embedding"].shape == (num_windows(n, 0.5), 512), n


def test_scores_match_scorer(tiny_graphs, use_models, tmp_path):
    """Clean vs degraded clip scores from the graph equal the Scorer's (VGGish --vggish-output embedding)."""
    pairs = [
        ("pesq_speech.wav", "pesq_speech_bab_0dB.wav"),  # real babble at 0 dB
        ("music_brahms_hungarian5.wav", None),  # + noise and a low-pass
        ("env_humpback_glacierbay.wav", None),
    ]
    for family, sr, key, seconds in (("vggish", 16000, VGGISH_KEY, None), ("openl3", 48000, OPENL3_KEY, 3.1)):
        for clean_name, degraded_name in pairs:
            clean = clip(clean_name, sr, seconds=seconds)
            degraded = clip(degraded_name, sr, seconds=seconds) if degraded_name else degrade(clean)
            n = min(len(clean), len(degraded))
            want = scorer_score(family, clean[:n], degraded[:n], sr, tmp_path)
            got = graph_score(tiny_graphs[key], clean[:n], degraded[:n])
            assert abs(got - want) <= SCORE_TOL, (family, clean_name, got, want)
            assert got < 0.9999  # a real difference was measured


def test_score_matches_the_command(tiny_graphs, use_models, tmp_path):
    clean = clip("pesq_speech.wav", 16000)
    degraded = clip("pesq_speech_bab_0dB.wav", 16000)
    paths = [tmp_path / "c.wav", tmp_path / "d.wav"]
    for p, x in zip(paths, (clean, degraded), strict=True):
        sf.write(p, x, 16000, subtype="FLOAT")
    r = cli("score", *paths, "--metrics", "vggish", "--vggish-output", "embedding", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)["metrics"]["vggish"]
    g = tiny_graphs[VGGISH_KEY]
    a, b = g(clean), g(degraded)
    per_frame = cosine_per_frame(a["embedding"], b["embedding"])
    np.testing.assert_allclose(per_frame, out["frames"], atol=SCORE_TOL)
    np.testing.assert_allclose(a["timestamps"], out["times"], atol=1e-6)
    assert abs(per_frame.mean() - out["value"]) <= SCORE_TOL


# --- the contract: names, shapes, ops, metadata, one file ----------------------------------------------


def test_contract(tiny_graphs, models_dir):
    import onnx

    for key, outputs, dim in (
        (VGGISH_KEY, ["embedding", "timestamps", "postprocessed"], 128),
        (OPENL3_KEY, ["embedding", "timestamps"], 512),
    ):
        m = onnx.load(str(tiny_graphs[key].path))
        assert {o.domain: o.version for o in m.opset_import}[""] >= 17
        (inp,) = m.graph.input
        t = inp.type.tensor_type
        assert inp.name == "waveform" and t.elem_type == onnx.TensorProto.FLOAT and len(t.shape.dim) == 1
        assert [o.name for o in m.graph.output] == outputs
        shapes = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in m.graph.output}
        assert shapes["embedding"] == ["frames", dim] and shapes["timestamps"] == ["frames"]
        assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in m.graph.output)
        source = onnx.load(str(models_dir / f"{key}.onnx"))
        (loop,) = [n for n in m.graph.node if n.op_type == "Loop"]
        ops = {n.op_type for n in m.graph.node} | {n.op_type for n in loop.attribute[0].g.node}
        assert ops <= FRONTEND_OPS | {n.op_type for n in source.graph.node}, ops
        assert not ops & {"STFT", "DFT", "MelWeightMatrix"}
        assert_no_float64(m)
        assert [o.domain for o in m.opset_import] == [""]  # nothing beyond the default domain


def assert_no_float64(m) -> None:
    """No float64 tensor anywhere (onnxruntime-web builds may leave out float64 kernels)."""
    import onnx

    graphs = [m.graph] + [a.g for n in m.graph.node for a in n.attribute if a.type == a.GRAPH]
    for g in graphs:
        assert all(t.data_type != onnx.TensorProto.DOUBLE for t in g.initializer)
        for n in g.node:
            assert all(not (a.name == "to" and a.i == onnx.TensorProto.DOUBLE) for a in n.attribute), n.name
    for t in onnx.shape_inference.infer_shapes(m).graph.value_info:
        assert t.type.tensor_type.elem_type != onnx.TensorProto.DOUBLE, t.name


def test_timestamps_exact_for_any_hop():
    """int64 + float32 arithmetic gives float32(i * hop) exactly as numpy's float64 product rounded."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    for hop in (0.96, 0.5, 0.1, 0.25, 1 / 3, 0.7, 2.5, 0.01, 0.33333, 3600.0):
        nodes: list = []
        inits: list = []
        G._timestamps(G._Nodes(nodes, inits, "t/", [0], 17), "count", hop)
        graph = helper.make_graph(
            nodes,
            "t",
            [helper.make_tensor_value_info("count", TensorProto.INT64, [])],
            [helper.make_tensor_value_info("timestamps", TensorProto.FLOAT, ["n"])],
            inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        onnx.checker.check_model(m)
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        n = 1_000_000
        got = s.run(None, {"count": np.array(n, np.int64)})[0]
        np.testing.assert_array_equal(got, (np.arange(n) * hop).astype(np.float32), err_msg=str(hop))
    for bad in (0.123457, 1 / 48000):
        with pytest.raises(UsageError, match="hop"):
            G._exact_hop(bad)


def test_resampler_graph_equals_pqeval():
    """The optional resampler graph: pqeval's resampler (resampy kaiser_best 0.2) to float32 rounding, any length."""
    import onnxruntime as ort

    for sr_in, sr_out in ((44100, 48000), (16000, 48000), (22050, 48000), (8000, 48000), (8000, 16000)):
        m = G.build_resampler(sr_in, sr_out)
        assert_no_float64(m)
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        x, sr = read("music_trumpet_sorohan_44k_stereo.flac")
        x = resample(x.mean(axis=1), sr, sr_in)[: int(1.7 * sr_in)].astype(np.float32)
        for n in (2, 147, 1000, sr_in - 1, sr_in, len(x)):
            want = resample(x[:n].astype(np.float64), sr_in, sr_out)
            (got,) = s.run(None, {"waveform": x[:n]})
            assert got.shape == want.shape, (sr_in, n)
            assert np.abs(got - want).max() <= 2e-6 * max(1.0, np.abs(want).max()), (sr_in, n)
    for sr_in, sr_out in ((44100, 16000), (48000, 16000), (22050, 16000)):  # resampy's flipped phases
        assert not G.resampler_is_exact(sr_in, sr_out)
        with pytest.raises(UsageError, match="cannot be written exactly"):
            G.build_resampler(sr_in, sr_out)


def test_resampler_then_graph_matches_pqeval_at_44k(tiny_graphs, models_dir):
    """44.1 kHz audio through the resampler graph and the OpenL3 graph = pqeval on the 44.1 kHz audio."""
    import onnxruntime as ort

    from pqeval.openl3 import OpenL3Embedder

    x, sr = read("music_brahms_hungarian5_44k_stereo.flac")
    x = x.mean(axis=1)[: int(2.6 * sr)].astype(np.float32)
    r = ort.InferenceSession(G.build_resampler(sr, 48000).SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = r.run(None, {"waveform": x})
    got = tiny_graphs[OPENL3_KEY](y)
    want = OpenL3Embedder(OnnxModel(models_dir / f"{OPENL3_KEY}.onnx"), hop=0.5).embed(x.astype(np.float64), sr)
    assert cosine_per_frame(got["embedding"], want.frames).min() >= COSINE_MIN
    np.testing.assert_array_equal(got["timestamps"], want.times.astype(np.float32))


def test_command_writes_one_file_with_provenance(use_models, tmp_path):
    out = tmp_path / "sub" / "vggish-graph.onnx"
    r = cli("export", "graph", "vggish", "--out", out)
    assert r.exit_code == 0, r.stderr
    assert "wrote" in r.stdout and "seeded" in r.stderr  # the seeded-weights note
    assert sorted(p.name for p in out.parent.iterdir()) == ["vggish-graph.onnx", "vggish-graph.onnx.json"]
    side = json.loads(out.with_name(out.name + ".json").read_text())
    assert "external_data" not in side
    source = OnnxModel(use_models / "vggish.onnx")
    meta = side["metadata"]
    assert meta["pqeval.weights"] == source.weights == "seeded:0"
    for k in ("pqeval.model_id", "pqeval.variant", "pqeval.frontend", "pqeval.verify"):
        assert meta[k] == source.metadata[k]
    graph = json.loads(meta["pqeval.graph"])
    assert graph == {
        "input": "waveform",
        "sample_rate": 16000,
        "min_samples": 15600,
        "hop_seconds": 0.96,
        "outputs": ["embedding", "timestamps", "postprocessed"],
        "source_model": "vggish",
        "source_sha256": source.sidecar["sha256"],
    }
    assert G.verified(json.loads(meta["pqeval.graph_verify"]))
    assert embedded_metadata(out) == meta  # the same metadata inside the file
    OnnxModel(out).check_integrity()  # sha256 and size as recorded


def test_command_openl3_hop(use_models, tmp_path):
    out = tmp_path / "openl3-graph.onnx"
    r = cli("export", "graph", OPENL3_KEY, "--out", out, "--hop", "0.25", "--json")
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["hop_seconds"] == 0.25 and info["sample_rate"] == 48000 and info["min_samples"] == 1
    graph = json.loads(OnnxModel(out).metadata["pqeval.graph"])
    assert graph["outputs"] == ["embedding", "timestamps"] and graph["hop_seconds"] == 0.25
    g = Graph.__new__(Graph)
    import onnxruntime as ort

    g.session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    g.names, g.source, g.hop = ["embedding", "timestamps"], use_models / f"{OPENL3_KEY}.onnx", 0.25
    r2 = compare_clip(g, clip("env_robin_inspectorj.wav", 48000, seconds=1.3))
    assert r2["frames"] == 5  # 1 + ceil((1.3 s + 0.5 s - 1 s) / 0.25 s)


def test_command_writes_resamplers(use_models, tmp_path):
    out = tmp_path / "openl3-graph.onnx"
    r = cli("export", "graph", OPENL3_KEY, "--out", out, "--resample-from", "44100", "--resample-from", "16000")
    assert r.exit_code == 0, r.stderr
    for rate in (44100, 16000):
        p = tmp_path / f"openl3-graph-resample-{rate}.onnx"
        assert str(p) in r.stdout and G.resampler_path(out, rate) == p
        info = json.loads(OnnxModel(p).metadata["pqeval.resampler"])
        assert info["sample_rate_in"] == rate and info["sample_rate_out"] == 48000 and info["output"] == "resampled"
        OnnxModel(p).check_integrity()
    r = cli("export", "graph", "vggish", "--out", tmp_path / "v.onnx", "--resample-from", "44100")
    assert r.exit_code == 2 and "no exact resampler graph from 44100 Hz to 16000 Hz" in r.stderr
    assert not (tmp_path / "v.onnx").exists()


def test_command_errors(use_models, tmp_path, monkeypatch):
    import pqeval.session as session

    out = tmp_path / "g.onnx"
    r = cli("export", "graph", "nope", "--out", out)
    assert r.exit_code == 2 and "unknown model 'nope'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("export", "graph", "vggish", "--out", out, "--hop", "0.5")
    assert r.exit_code == 2 and "OpenL3 only" in r.stderr
    r = cli("export", "graph", OPENL3_KEY, "--out", out, "--hop", "0")
    assert r.exit_code == 2 and "hop" in r.stderr
    r = cli("export", "graph", "vggish", "--out", tmp_path / "g.bin")
    assert r.exit_code == 2 and "must end in .onnx" in r.stderr
    assert not list(tmp_path.iterdir())  # nothing written

    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("PQEVAL_MODELS", str(empty))
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    session._OPEN.clear()
    r = cli("export", "graph", "vggish", "--out", out)
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "model 'vggish' is not installed" in r.stderr
    assert not out.exists()


def test_command_refuses_a_modified_model(models_dir, tmp_path, monkeypatch):
    import shutil

    import pqeval.session as session

    d = tmp_path / "models"
    shutil.copytree(models_dir, d)
    p = d / f"{OPENL3_KEY}.onnx"
    data = bytearray(p.read_bytes())
    data[-10] ^= 1
    p.write_bytes(bytes(data))
    monkeypatch.setenv("PQEVAL_MODELS", str(d))
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    session._OPEN.clear()
    r = cli("export", "graph", OPENL3_KEY, "--out", tmp_path / "g.onnx")
    assert r.exit_code == 2 and "does not match its recorded sha256" in r.stderr
    assert not (tmp_path / "g.onnx").exists()


# --- parity tier: the real seeded exports ----------------------------------------------------------


@pytest.fixture(scope="module")
def real_graphs(exported_models_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("real-graphs")
    return {
        VGGISH_KEY: Graph(exported_models_dir / f"{VGGISH_KEY}.onnx", d / "vggish-graph.onnx"),
        OPENL3_KEY: Graph(exported_models_dir / f"{OPENL3_KEY}.onnx", d / "openl3-graph.onnx"),
    }


@pytest.mark.parity
def test_real_vggish_frames_and_8bit(real_graphs, use_exported_models):
    flips: list[int] = []
    lowest, values = 1.0, 0
    for name, kw in VGGISH_CLIPS:
        r = compare_clip(real_graphs[VGGISH_KEY], clip(name, 16000, **kw), flips)
        lowest, values = min(lowest, r["cosine_min"]), values + 128 * r["frames"]
    assert_rare(sum(flips), values)
    print(f"VGGish graph: cosine min {lowest:.12f}; 8-bit flips {sum(flips)} of {values}")


@pytest.mark.parity
def test_real_openl3_frames(real_graphs, use_exported_models):
    lowest = 1.0
    for name, kw in OPENL3_CLIPS:
        lowest = min(lowest, compare_clip(real_graphs[OPENL3_KEY], clip(name, 48000, **kw))["cosine_min"])
    print(f"OpenL3 graph: cosine min {lowest:.12f}")


@pytest.mark.parity
def test_real_scores_match_scorer(real_graphs, use_exported_models, tmp_path):
    for family, sr, key, seconds in (("vggish", 16000, VGGISH_KEY, None), ("openl3", 48000, OPENL3_KEY, 2.5)):
        speech = clip("pesq_speech.wav", sr, seconds=seconds), clip("pesq_speech_bab_0dB.wav", sr, seconds=seconds)
        music = clip("music_trumpet_sorohan_44k_stereo.flac", sr, seconds=2.5)
        worst = 0.0
        for clean, degraded in (speech, (music, degrade(music))):
            want = scorer_score(family, clean, degraded, sr, tmp_path)
            got = graph_score(real_graphs[key], clean, degraded)
            assert abs(got - want) <= SCORE_TOL, (family, got, want)
            worst = max(worst, abs(got - want))
        print(f"{family}: graph score vs Scorer, largest difference {worst:.2e}")


@pytest.mark.parity
def test_real_openl3_after_the_resampler_graph(real_graphs, use_exported_models):
    """44.1 and 16 kHz recordings through the resampler graph, then the OpenL3 graph = pqeval at their rate."""
    import onnxruntime as ort

    from pqeval.openl3 import OpenL3Embedder

    lowest = 1.0
    for name in ("music_trumpet_sorohan_44k_stereo.flac", "speech_libri_5703_m.wav"):
        x, sr = read(name)
        x = (x.mean(axis=1) if x.ndim > 1 else x)[: int(2.5 * sr)].astype(np.float32)
        r = ort.InferenceSession(G.build_resampler(sr, 48000).SerializeToString(), providers=["CPUExecutionProvider"])
        (y,) = r.run(None, {"waveform": x})
        got = real_graphs[OPENL3_KEY](y)["embedding"]
        model = OnnxModel(real_graphs[OPENL3_KEY].source)
        want = OpenL3Embedder(model, hop=0.5).embed(x.astype(np.float64), sr).frames
        cos = cosine_per_frame(got, want)
        assert cos.min() >= COSINE_MIN, (name, cos.min())
        lowest = min(lowest, float(cos.min()))
    print(f"resampler graph + OpenL3 graph: cosine min {lowest:.9f}")
