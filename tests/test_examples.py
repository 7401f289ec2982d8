"""The examples beyond Python (examples/node, examples/web) against pqeval's own scores.

Both run a waveform→embedding graph written by ``pqeval export graph`` from the tiny test models
(``models_dir``: the real I/O, seeded weights) on real recordings at the model's rate, and must give
the numbers ``pqeval score`` gives on the same files: the Node script within 1e-5 (score and every
frame), the web page in headless Chromium (onnxruntime-web, WASM) within 1e-4.

Needs node (and npm, unless examples/*/node_modules are installed already) and, for the page,
Chromium (``/usr/bin/chromium`` or ``$CHROMIUM``); each test skips, saying why, only where node or
Chromium is absent. ``npm ci`` runs here when an example's node_modules are missing or differ from
its package-lock.json. The page's screenshot goes to docs/web-example.png when that file is absent
(or ``PQEVAL_UPDATE_SCREENSHOT=1``).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import ROOT, cli, shared

EXAMPLES = ROOT / "examples"
NODE_DIR = EXAMPLES / "node"
WEB_DIR = EXAMPLES / "web"
SCREENSHOT = ROOT / "docs" / "web-example.png"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SEEDED_NOTE = "weights: seeded — not a perceptual measurement"
NODE_TOL = 1e-5
WEB_TOL = 1e-4

needs_node = pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed (the Node.js and web examples need Node.js >= 18)"
)
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium, or set $CHROMIUM)"
)


# --- npm installs, cached ---------------------------------------------------------------------------


def _installed(d: Path) -> bool:
    """node_modules holds every package of the lock file at its locked version (optional ones may be absent)."""
    lock = json.loads((d / "package-lock.json").read_text())
    for key, entry in lock["packages"].items():
        if not key.startswith("node_modules/"):
            continue
        pj = d / key / "package.json"
        if not pj.exists():
            if entry.get("optional"):
                continue
            return False
        if json.loads(pj.read_text()).get("version") != entry.get("version"):
            return False
    return True


def _vendored(d: Path) -> bool:
    """vendor/ holds the onnxruntime-web files of the locked version (what tools/vendor.mjs copies)."""
    version = json.loads((d / "package-lock.json").read_text())["packages"]["node_modules/onnxruntime-web"]["version"]
    stamp = d / "vendor" / "VERSION"
    files = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
    return (
        stamp.exists()
        and stamp.read_text().strip() == f"onnxruntime-web {version}"
        and all((d / "vendor" / f).exists() for f in files)
    )


def _npm_ci(d: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"{d}: node_modules missing or stale and npm is not installed (run `npm ci` there)")
    # onnxruntime-node would fetch CUDA binaries from api.nuget.org on linux/x64; the examples run on the CPU
    env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL": "skip"}
    p = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=d, capture_output=True, text=True, env=env, timeout=900
    )
    assert p.returncode == 0, f"npm ci in {d} failed:\n{p.stdout}\n{p.stderr}"


@pytest.fixture(scope="session")
def node_example() -> Path:
    if not _installed(NODE_DIR):
        _npm_ci(NODE_DIR)
    assert _installed(NODE_DIR)
    return NODE_DIR


@pytest.fixture(scope="session")
def web_example() -> Path:
    if not (_installed(WEB_DIR) and _vendored(WEB_DIR)):
        _npm_ci(WEB_DIR)  # its postinstall (tools/vendor.mjs) fills vendor/
    assert _installed(WEB_DIR) and _vendored(WEB_DIR)
    return WEB_DIR


# --- graphs and recordings --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graphs(models_dir, tmp_path_factory) -> dict[str, Path]:
    """`pqeval export graph` of the tiny VGGish and OpenL3 models (the lookup pointed at them as
    ``use_models`` does): {"vggish": path, "openl3": path}, each with its sidecar."""
    pytest.importorskip("pqeval_export.graph", reason="pqeval export graph (export/pqeval_export/graph.py) is absent")
    import pqeval.session as session

    out = tmp_path_factory.mktemp("graphs")
    paths = {"vggish": out / "vggish" / "graph.onnx", "openl3": out / "openl3" / "graph.onnx"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PQEVAL_MODELS", str(models_dir))
        mp.setattr(session, "CHECKOUT_MODELS", models_dir)
        session._OPEN.clear()
        for key, path in (("vggish", paths["vggish"]), ("openl3-mel256-music-512", paths["openl3"])):
            r = cli("export", "graph", key, "--out", path)
            assert r.exit_code == 0, r.stdout + r.stderr
        session._OPEN.clear()
    return paths


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    """Real recordings at the models' rates: the Brahms excerpt (44.1 kHz stereo) mixed to mono
    and resampled by pqeval to 16 and 48 kHz, clean and with noise (0.25 s shorter, so the pair
    is trimmed), float32 WAV; and the PESQ speech pair as shipped (16 kHz, 16-bit)."""
    from pqeval.audio import load_audio
    from pqeval.resample import resample

    out = tmp_path_factory.mktemp("recordings")
    a = load_audio(shared("music_brahms_hungarian5_44k_stereo.flac"))
    x = np.asarray(a.samples)
    paths: dict[str, Path] = {}
    for sr in (16000, 48000):
        y = resample(x, a.sr, sr)
        noisy = y + 0.02 * np.random.default_rng(sr).standard_normal(len(y))
        paths[f"clean{sr}"] = out / f"brahms_{sr}.wav"
        paths[f"noisy{sr}"] = out / f"brahms_{sr}_noisy.wav"
        sf.write(paths[f"clean{sr}"], y.astype(np.float32), sr, subtype="FLOAT")
        sf.write(paths[f"noisy{sr}"], noisy[: len(noisy) - sr // 4].astype(np.float32), sr, subtype="FLOAT")
    paths["speech"] = shared("pesq_speech.wav")
    paths["babble"] = shared("pesq_speech_bab_0dB.wav")
    return paths


def pqeval_score(family: str, clean: Path, degraded: Path) -> dict:
    """`pqeval score --json` for one embedding model (VGGish: --vggish-output embedding): its metric."""
    extra = ("--vggish-output", "embedding") if family == "vggish" else ()
    r = cli("score", clean, degraded, "--model", family, "--metrics", family, *extra, "--json")
    assert r.exit_code == 0, r.stdout + r.stderr
    return json.loads(r.stdout)["metrics"][family]


def node(*args, cwd: Path = NODE_DIR, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["node", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def parse_score_output(stdout: str) -> tuple[np.ndarray, np.ndarray, float]:
    """score.mjs's stdout: a header, `time<TAB>cosine` per frame, `score: X` last."""
    lines = stdout.strip().splitlines()
    assert lines[0] == "time_s\tcosine", stdout
    assert lines[-1].startswith("score: "), stdout
    rows = np.array([[float(v) for v in line.split("\t")] for line in lines[1:-1]]).reshape(-1, 2)
    return rows[:, 0], rows[:, 1], float(lines[-1].split()[1])


# --- the shared module ------------------------------------------------------------------------------


def test_the_two_copies_of_the_shared_module_are_identical():
    """examples/node and examples/web are self-contained, so each carries pqeval.mjs; one text."""
    assert (NODE_DIR / "pqeval.mjs").read_bytes() == (WEB_DIR / "pqeval.mjs").read_bytes()


_READ_WAV = """
import { readWav } from './pqeval.mjs';
import { readFileSync, writeFileSync } from 'node:fs';
const [src, dst] = process.argv.slice(-2);
try {
  const w = readWav(readFileSync(src), src);
  writeFileSync(dst, new Uint8Array(w.samples.buffer));
  console.log(JSON.stringify({ rate: w.sampleRate, channels: w.channels, notes: w.notes }));
} catch (e) { console.log(JSON.stringify({ error: e.message })); }
"""


@needs_node
@pytest.mark.parametrize(
    "subtype,channels,fmt",
    [
        ("PCM_16", 1, "WAV"),
        ("PCM_U8", 1, "WAV"),
        ("PCM_24", 2, "WAV"),
        ("PCM_32", 3, "WAV"),
        ("FLOAT", 1, "WAV"),
        ("DOUBLE", 2, "WAV"),
        ("PCM_24", 2, "WAVEX"),
        ("FLOAT", 1, "WAVEX"),
    ],
)
def test_wav_reader_gives_pqevals_samples_exactly(tmp_path, subtype, channels, fmt):
    """readWav equals pqeval.audio.load_audio bit for bit: libsndfile's int scaling, float as
    stored, channels averaged in float64."""
    from pqeval.audio import load_audio

    x, sr = sf.read(str(shared("speech_cmu_goforward.wav")), dtype="float64")
    x = np.stack([x * (0.9 - 0.3 * c) * (-1) ** c for c in range(channels)], axis=1)
    path = tmp_path / f"x_{subtype}_{channels}.wav"
    sf.write(path, x, sr, subtype=subtype, format=fmt)
    p = node("--input-type=module", "-e", _READ_WAV, path, tmp_path / "out.f64")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info.get("error") is None, info
    assert (info["rate"], info["channels"]) == (sr, channels)
    got = np.fromfile(tmp_path / "out.f64", dtype="<f8")
    want = np.asarray(load_audio(path).samples)
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@needs_node
def test_wav_reader_refuses_a_truncated_file_and_reads_a_streamed_one(tmp_path):
    """As pqeval: a data chunk shorter than declared is an error naming the file; a declared size
    of 0 (a streamed writer) reads what is there, with a note."""
    src = shared("speech_cmu_goforward.wav")
    data = src.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[:-1000])
    p = node("--input-type=module", "-e", _READ_WAV, cut, tmp_path / "o.f64")
    assert json.loads(p.stdout)["error"].startswith(f"{cut}: truncated WAV file (header declares")
    at = data.index(b"data") + 4
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(data[:at] + b"\0\0\0\0" + data[at + 4 :])
    p = node("--input-type=module", "-e", _READ_WAV, streamed, tmp_path / "o.f64")
    info = json.loads(p.stdout)
    assert any("declares no data size" in n for n in info["notes"]), info
    assert np.array_equal(np.fromfile(tmp_path / "o.f64", dtype="<f8"), sf.read(str(src), dtype="float64")[0])


@needs_node
def test_cosine_per_frame_is_pqevals_including_zero_and_equal_rows():
    from pqeval.similarity import cosine_per_frame

    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 5)).astype(np.float32)
    b = a + 0.3 * rng.standard_normal((9, 5)).astype(np.float32)
    a[1], b[1] = 0, 0  # both zero: 1
    a[2] = 0  # one zero: 0
    b[3] = 0
    b[4] = a[4]  # equal rows: exactly 1
    b[5] = -a[5]  # opposite: -1
    b[6] = 2 * a[6]  # parallel: 1 up to rounding
    script = (
        "import { cosinePerFrame } from './pqeval.mjs';"
        "const [a, b] = JSON.parse(process.argv.at(-1)).map((r) => Float32Array.from(r.flat()));"
        "console.log(JSON.stringify(Array.from(cosinePerFrame(a, b, 9, 5))));"
    )
    p = node("--input-type=module", "-e", script, json.dumps([a.tolist(), b.tolist()]))
    assert p.returncode == 0, p.stderr
    got = np.array(json.loads(p.stdout))
    want = cosine_per_frame(a, b)
    assert got[[1, 2, 3, 4]].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert np.abs(got - want).max() <= 1e-15


# --- Node.js -------------------------------------------------------------------------------------------


@needs_node
@pytest.mark.parametrize(
    "family,clean,degraded",
    [
        ("vggish", "clean16000", "noisy16000"),
        ("vggish", "speech", "babble"),
        ("openl3", "clean48000", "noisy48000"),
    ],
)
def test_node_script_scores_as_pqeval(node_example, graphs, recordings, use_models, family, clean, degraded):
    """`node score.mjs GRAPH CLEAN DEGRADED` prints pqeval's per-frame cosines and score (1e-5),
    the seeded-weights warning on stderr, and the trimming note when lengths differ."""
    a, b = recordings[clean], recordings[degraded]
    p = node("score.mjs", graphs[family], a, b, cwd=node_example)
    assert p.returncode == 0, p.stderr
    times, frames, score = parse_score_output(p.stdout)
    want = pqeval_score(family, a, b)
    print(
        f"{family} {clean}/{degraded}: node {score:.8f}, pqeval {want['value']:.10f}, diff {score - want['value']:.2e}"
    )
    assert abs(score - want["value"]) <= NODE_TOL
    assert len(frames) == len(want["frames"]) > 1
    assert np.abs(frames - np.array(want["frames"])).max() <= NODE_TOL
    assert np.abs(times - np.array(want["times"])).max() <= 1e-6
    assert SEEDED_NOTE in p.stderr.splitlines()
    trimmed = sf.info(str(a)).frames != sf.info(str(b)).frames
    assert ("lengths differ" in p.stderr) == trimmed


@needs_node
def test_node_script_refuses_a_file_at_another_rate(node_example, graphs, recordings):
    p = node("score.mjs", graphs["vggish"], recordings["clean16000"], recordings["clean48000"], cwd=node_example)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(recordings["clean48000"]) in lines[0] and "48000 Hz" in lines[0] and "16000 Hz" in lines[0]


@needs_node
def test_node_script_gives_no_score_for_clips_shorter_than_a_window(node_example, graphs, tmp_path):
    """As pqeval (NaN with the reason, exit 3): VGGish needs 15 600 samples (0.975 s)."""
    x, sr = sf.read(str(shared("pesq_speech.wav")), dtype="float64")
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, x[:8000], sr, subtype="PCM_16")
    sf.write(b, 0.5 * x[:8000], sr, subtype="PCM_16")
    p = node("score.mjs", graphs["vggish"], a, b, cwd=node_example)
    assert p.returncode == 3, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "score: nan"
    assert "shorter than one window (0.500 s < 0.975 s)" in p.stderr


def _relabel(src: Path, dst: Path, weights: str) -> None:
    """A copy of graph ``src`` whose pqeval.weights says ``weights`` (file and sidecar rewritten)."""
    import onnx

    from pqeval_export.common import write_onnx

    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    write_onnx(proto, dst, {**meta, "pqeval.weights": weights})


@needs_node
def test_node_script_warns_by_the_weights_provenance(node_example, graphs, recordings, tmp_path):
    """The seeded warning comes from the graph's own metadata (no sidecar needed); a graph labelled
    pretrained gets none; a graph that does not match its sidecar is refused."""
    args = (recordings["speech"], recordings["babble"])
    bare = tmp_path / "bare" / "graph.onnx"
    bare.parent.mkdir()
    shutil.copy(graphs["vggish"], bare)  # no sidecar
    p = node("score.mjs", bare, *args, cwd=node_example)
    assert p.returncode == 0 and SEEDED_NOTE in p.stderr, p.stderr

    labelled = tmp_path / "labelled" / "graph.onnx"
    _relabel(graphs["vggish"], labelled, "pretrained:test-label")
    p = node("score.mjs", labelled, *args, cwd=node_example)
    assert p.returncode == 0, p.stderr
    assert "weights:" not in p.stderr

    custom = tmp_path / "custom" / "graph.onnx"
    _relabel(graphs["vggish"], custom, "custom:fine-tuned")
    assert "weights: custom" in node("score.mjs", custom, *args, cwd=node_example).stderr

    shutil.copy(graphs["vggish"].with_name("graph.onnx.json"), labelled.with_name("graph.onnx.json"))
    p = node("score.mjs", labelled, *args, cwd=node_example)
    assert p.returncode == 2 and "sidecar" in p.stderr and p.stdout == "", p.stderr


# --- the web page in headless Chromium ------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """examples/web as it is, with /model/ served from the test's graph directory."""

    model_dir: Path
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".wasm": "application/wasm",
        ".json": "application/json",
        ".onnx": "application/octet-stream",
    }

    def translate_path(self, path: str) -> str:
        clean = path.split("?", 1)[0].split("#", 1)[0]
        if clean.startswith("/model/"):
            return str(self.model_dir / Path(clean).name)
        return super().translate_path(path)

    def log_message(self, format, *args):
        pass


def browser_check(web_dir: Path, model_dir: Path, clean: Path, degraded: Path, *extra) -> dict:
    """Serve ``web_dir`` on 127.0.0.1 (port 0, a thread; /model/ from ``model_dir``), run
    tools/browser-check.mjs (headless Chromium) on the pair, stop the server: the page's JSON."""
    handler = type("Handler", (_Handler,), {"model_dir": model_dir})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(web_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        p = node("tools/browser-check.mjs", url, clean, degraded, "--timeout", 240, *extra, cwd=web_dir)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


@needs_node
@needs_chromium
def test_web_page_scores_as_pqeval_in_chromium(web_example, graphs, recordings, use_models, tmp_path):
    """The page, served from 127.0.0.1, loads model/graph.onnx (+ sidecar); the two file inputs
    are set by playwright-core driving headless Chromium; #score equals pqeval's within 1e-4
    (per frame too) and the seeded warning is visible. Screenshot: docs/web-example.png."""
    shot = tmp_path / "web-example.png"
    clean, degraded = recordings["clean16000"], recordings["noisy16000"]
    page = browser_check(web_example, graphs["vggish"].parent, clean, degraded, "--screenshot", shot)
    assert page["state"] == "done", page
    want = pqeval_score("vggish", clean, degraded)
    score = float(page["score_text"])
    print(f"web page: {page['score_text']}, pqeval {want['value']:.10f}, diff {score - want['value']:.2e}")
    assert len(page["score_text"].split(".")[1]) >= 6
    assert abs(score - want["value"]) <= WEB_TOL
    frames = np.array(page["result"]["frames"])
    assert len(frames) == len(want["frames"]) > 1
    assert np.abs(frames - np.array(want["frames"])).max() <= WEB_TOL
    assert page["plot_points"] == len(frames)
    assert page["warning_visible"] and page["warning_text"] == SEEDED_NOTE
    assert any("lengths differ" in n for n in page["result"]["notes"])
    assert page["graph"]["name"] == "model/graph.onnx" and page["graph"]["sampleRate"] == 16000
    assert shot.stat().st_size > 10_000
    if not SCREENSHOT.exists() or os.environ.get("PQEVAL_UPDATE_SCREENSHOT") == "1":
        shutil.copy(shot, SCREENSHOT)


@needs_node
@needs_chromium
def test_web_page_with_a_picked_graph_and_no_warning_for_pretrained(
    web_example, node_example, graphs, recordings, tmp_path
):
    """No graph next to the page: one picked with "Another graph" (no sidecar: provenance from the
    file's metadata); labelled pretrained, the page shows no warning; the score is the Node
    script's on the same graph (16-bit speech pair as shipped)."""
    labelled = tmp_path / "picked" / "pretrained-label.onnx"
    _relabel(graphs["vggish"], labelled, "pretrained:test-label")
    empty = tmp_path / "no-model"
    empty.mkdir()
    clean, degraded = recordings["speech"], recordings["babble"]
    page = browser_check(web_example, empty, clean, degraded, "--graph", labelled)
    assert page["state"] == "done", page
    assert page["graph"]["name"] == labelled.name and page["graph"]["weights"] == "pretrained:test-label"
    assert not page["warning_visible"] and page["warning_text"] == ""
    p = node("score.mjs", labelled, clean, degraded, cwd=node_example)
    assert p.returncode == 0, p.stderr
    assert abs(float(page["score_text"]) - parse_score_output(p.stdout)[2]) <= WEB_TOL
