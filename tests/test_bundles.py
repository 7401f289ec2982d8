"""Model bundles end to end on the tiny models: pack, install (file, directory, file:// and
http://127.0.0.1 from a server this module starts and stops), verify, remove, the search path,
and every refusal (tampered, truncated, 404, no network, path tricks) leaving installed models
untouched."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import pqeval
import pqeval.session as session
from helpers import cli, shared
from pqeval import bundle, sources

KEYS = ("vggish", "openl3-mel256-music-512")


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """An empty user models directory and cache; no $PQEVAL_MODELS, no checkout models."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PQEVAL_MODELS", raising=False)
    monkeypatch.delenv("PQEVAL_MODELS_ONLY", raising=False)
    monkeypatch.delenv("PQEVAL_MODEL_SOURCE", raising=False)
    monkeypatch.setattr(session, "CHECKOUT_MODELS", None)
    monkeypatch.setattr(sources, "DOWNLOAD_RETRIES", 2)
    session._OPEN.clear()
    yield session.user_models_dir()
    session._OPEN.clear()


@pytest.fixture(scope="module")
def packed(models_dir, tmp_path_factory):
    """A bundle of both tiny models, packed by the CLI."""
    out = tmp_path_factory.mktemp("bundle") / "pqeval-models.zip"
    mp = pytest.MonkeyPatch()
    mp.setenv("PQEVAL_MODELS", str(models_dir))
    try:
        r = cli("models", "pack", *KEYS, "--out", out, "--json")
    finally:
        mp.undo()
    assert r.exit_code == 0, r.stderr
    assert "seeded — not a perceptual measurement" in r.stderr
    info = json.loads(r.stdout)
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    return out


@pytest.fixture()
def pair():
    """Two real recordings: clean speech and the same speech in babble noise."""
    return shared("pesq_speech.wav"), shared("pesq_speech_bab_0dB.wav")


def _state(d: Path) -> dict[str, tuple[int, str]]:
    """Every file in a models directory: (mtime_ns, sha256)."""
    return {
        p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(d.iterdir())
        if p.is_file()
    }


# --- pack -------------------------------------------------------------------------------------


def test_manifest_lists_every_file_with_what_a_user_needs(packed, models_dir):
    manifest = bundle.read_manifest(packed)
    assert manifest["format"] == "pqeval-model-bundle" and manifest["packed_by"].startswith("pqeval ")
    by_name = {e["name"]: e for e in manifest["files"]}
    assert set(by_name) == {
        "vggish.onnx",
        "vggish.onnx.data",
        "vggish.onnx.json",
        "openl3-mel256-music-512.onnx",
        "openl3-mel256-music-512.onnx.json",
    }
    for name, e in by_name.items():
        data = (models_dir / name).read_bytes()
        assert (e["size"], e["sha256"]) == (len(data), hashlib.sha256(data).hexdigest()), name
        assert e["weights"] == "seeded:0" and e["perceptual"] is False
        assert e["license"].startswith("MIT (seeded") and e["pqeval_version"] == pqeval.__version__
    assert by_name["openl3-mel256-music-512.onnx"]["frontend"]["input_repr"] == "mel256"
    assert by_name["vggish.onnx"]["frontend"]  # VGGish's framing / mel parameters
    with zipfile.ZipFile(packed) as zf:
        notice = zf.read("NOTICE.txt").decode()
        assert all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    assert "vggish: weights seeded:0" in notice and "not a perceptual measurement" in notice
    assert "CC BY 4.0" not in notice  # the attribution of the published weights only where they are


def test_notice_carries_the_attribution_of_published_weights():
    entries = [
        {"key": k, "family": f, "role": "graph", "weights": "pretrained:w.h5 abc", "license": "x"}
        for k, f in (("openl3-mel256-music-512", "openl3"), ("vggish", "vggish"))
    ]
    notice = bundle._notice(entries)
    assert "https://creativecommons.org/licenses/by/4.0/" in notice and "A. Cramer" in notice
    assert "converted from Keras HDF5 to ONNX" in notice
    assert "https://www.apache.org/licenses/LICENSE-2.0" in notice and "Hershey" in notice


def test_pack_refuses_to_overwrite(packed, models_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PQEVAL_MODELS", str(models_dir))
    victim = tmp_path / "notes.txt"
    victim.write_text("keep me")
    r = cli("models", "pack", "vggish", "--out", victim)
    assert r.exit_code == 2 and "not a pqeval bundle" in r.stderr and victim.read_text() == "keep me"
    copy = tmp_path / "b.zip"
    shutil.copy(packed, copy)
    r = cli("models", "pack", "vggish", "--out", copy)
    assert r.exit_code == 2 and "--force" in r.stderr
    r = cli("models", "pack", "vggish", "--out", copy, "--force")
    assert r.exit_code == 0, r.stderr
    assert {e["key"] for e in bundle.read_manifest(copy)["files"]} == {"vggish"}
    r = cli("models", "pack", "nope", "--out", tmp_path / "c.zip")
    assert r.exit_code == 2 and "model 'nope' is not installed" in r.stderr and not (tmp_path / "c.zip").exists()


# --- install from a file, a directory, file:// -------------------------------------------------


def test_install_then_score_gives_the_same_numbers(packed, models_dir, home, pair, monkeypatch):
    clean, noisy = pair
    r = cli("score", clean, noisy, "--json")
    assert r.exit_code == 2 and "is not installed" in r.stderr and "pqeval models install" in r.stderr
    r = cli("models", "install", packed)
    assert r.exit_code == 0, r.stderr
    assert f"installed vggish -> {home / 'vggish.onnx'}" in r.stdout
    assert "not a perceptual measurement" in r.stderr
    installed = json.loads(cli("score", clean, noisy, "--json", "--metrics", "vggish,openl3,stoi").stdout)
    monkeypatch.setenv("PQEVAL_MODELS", str(models_dir))
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    session._OPEN.clear()
    original = json.loads(cli("score", clean, noisy, "--json", "--metrics", "vggish,openl3,stoi").stdout)
    assert installed["metrics"] == original["metrics"]
    assert cli("models", "verify").exit_code == 0


@pytest.mark.parametrize("form", ["directory", "unpacked", "file-url"])
def test_install_from_directory_or_file_url(form, packed, models_dir, home, tmp_path):
    if form == "directory":
        source = str(models_dir)  # an export directory: the sidecars are the manifest
    elif form == "unpacked":
        source = str(tmp_path / "unpacked")
        zipfile.ZipFile(packed).extractall(source)
    else:
        source = packed.as_uri()
    r = cli("models", "install", source, "--model", "vggish", "--json")
    assert r.exit_code == 0, r.stderr
    assert [m["key"] for m in json.loads(r.stdout)["installed"]] == ["vggish"]
    assert sorted(p.name for p in home.iterdir()) == ["vggish.onnx", "vggish.onnx.data", "vggish.onnx.json"]


def test_pinned_local_file(packed, home):
    good = hashlib.sha256(packed.read_bytes()).hexdigest()
    assert cli("models", "install", packed, "--sha256", good).exit_code == 0
    r = cli("models", "install", packed, "--sha256", "0" * 64)
    assert r.exit_code == 2 and "does not match the pinned" in r.stderr
    r = cli("models", "install", packed, "--sha256", "xyz")
    assert r.exit_code == 2 and "not a sha256" in r.stderr


# --- refusals leave the installed models untouched -------------------------------------------


def _tampered(packed: Path, out: Path, name: str, keep_crc: bool) -> Path:
    """A copy of the bundle with one byte of ``name`` changed: with a recomputed zip CRC (a
    deliberate edit) or with the archive's bytes flipped in place (corruption)."""
    with zipfile.ZipFile(packed) as zf:
        members = [(i, zf.read(i.filename)) for i in zf.infolist()]
    if keep_crc:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
            for info, data in members:
                if info.filename == name:
                    data = data[:-100] + bytes([data[-100] ^ 1]) + data[-99:]
                zf.writestr(info.filename, data)
    else:
        raw = bytearray(packed.read_bytes())
        data = {i.filename: d for i, d in members}[name]
        at = bytes(raw).index(data[:4096]) + len(data) // 2
        raw[at] ^= 0xFF
        out.write_bytes(bytes(raw))
    return out


@pytest.mark.parametrize(
    "how, message",
    [
        ("edited", "does not match the manifest's size and sha256"),
        ("corrupted", "truncated or tampered with"),
        ("truncated", "not a zip archive, or truncated"),
        ("not-a-zip", "not a zip archive"),
    ],
)
def test_bad_bundle_is_refused_and_changes_nothing(how, message, packed, home, tmp_path):
    assert cli("models", "install", packed).exit_code == 0
    before = _state(home)
    bad = tmp_path / "bad.zip"
    if how == "edited":
        _tampered(packed, bad, "openl3-mel256-music-512.onnx", keep_crc=True)
    elif how == "corrupted":
        _tampered(packed, bad, "vggish.onnx.data", keep_crc=False)
    elif how == "truncated":
        bad.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    else:
        bad.write_text("hello")
    r = cli("models", "install", bad)
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert _state(home) == before
    assert not list(home.glob(bundle.STAGING_PREFIX + "*"))
    assert cli("models", "verify").exit_code == 0


def test_one_bad_model_installs_none(packed, home, tmp_path):
    """Everything is verified before anything moves: a bad second model keeps the first out too."""
    bad = _tampered(packed, tmp_path / "bad.zip", "openl3-mel256-music-512.onnx", keep_crc=True)
    r = cli("models", "install", bad)
    assert r.exit_code == 2 and "nothing installed" in r.stderr
    assert not (home / "vggish.onnx").exists()


def test_manifest_cannot_write_outside_the_directory(packed, home, tmp_path):
    manifest = bundle.read_manifest(packed)
    manifest["files"][0]["name"] = "../../evil.onnx"
    bad = tmp_path / "evil.zip"
    with zipfile.ZipFile(packed) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            if info.filename != "manifest.json":
                dst.writestr(info.filename, src.read(info.filename))
        dst.writestr("manifest.json", json.dumps(manifest))
    r = cli("models", "install", bad)
    assert r.exit_code == 2 and "malformed file entry" in r.stderr
    assert not (tmp_path / "evil.onnx").exists() and not home.exists()


def test_sidecar_mismatch_inside_a_consistent_bundle_is_refused(packed, models_dir, home, tmp_path):
    """A bundle whose manifest matches its files but whose model does not match its own sidecar
    (pqeval's checks on top of the manifest)."""
    src = tmp_path / "src"
    shutil.copytree(models_dir, src)
    data = bytearray((src / "vggish.onnx.data").read_bytes())
    data[1000] ^= 1
    (src / "vggish.onnx.data").write_bytes(bytes(data))
    manifest = bundle.read_manifest(packed)
    for e in manifest["files"]:
        blob = (src / e["name"]).read_bytes()
        e["size"], e["sha256"] = len(blob), hashlib.sha256(blob).hexdigest()
    (src / "manifest.json").write_text(json.dumps(manifest))
    r = cli("models", "install", src)
    assert r.exit_code == 2 and "vggish" in r.stderr and "sha256" in r.stderr and "nothing installed" in r.stderr


# --- http:// from a local server ---------------------------------------------------------------


class _Server:
    """An HTTP server on 127.0.0.1 serving ``files`` (path -> bytes) with Range support; the next
    ``cut`` responses send half their body and close the connection."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut = 0
        self.log: list[tuple[str, str]] = []  # (path, Range header)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                owner.log.append((self.path, self.headers.get("Range", "")))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range", "")
                if rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if owner.cut > 0:
                    owner.cut -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture()
def server(packed, monkeypatch):
    import pooch.core

    monkeypatch.setattr(pooch.core.time, "sleep", lambda s: None)  # pooch's waits between attempts
    with _Server() as s:
        s.files["/models/pqeval-models.zip"] = packed.read_bytes()
        yield s


def test_install_over_http_with_progress_and_pin(server, packed, home):
    sha = hashlib.sha256(packed.read_bytes()).hexdigest()
    url = f"{server.url}/models/pqeval-models.zip#sha256={sha}"
    r = cli("models", "install", url)
    assert r.exit_code == 0, r.stderr
    assert "downloading" in r.stderr and "installed openl3-mel256-music-512" in r.stdout
    assert cli("models", "verify").exit_code == 0
    # pinned and cached: a second install does not download again
    n = len(server.log)
    assert cli("models", "install", url).exit_code == 0 and len(server.log) == n


def test_interrupted_download_is_resumed(server, home):
    server.cut = 1
    r = cli("models", "install", f"{server.url}/models/pqeval-models.zip")
    assert r.exit_code == 0, r.stderr
    ranges = [rng for _, rng in server.log]
    assert ranges[0] == "" and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0, ranges
    assert "resuming" in r.stderr
    assert cli("models", "verify").exit_code == 0


def test_download_cut_off_every_time(server, packed, home):
    assert cli("models", "install", packed).exit_code == 0
    before = _state(home)
    server.cut = 100
    r = cli("models", "install", f"{server.url}/models/pqeval-models.zip")
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert r.exit_code == 2 and len(errors) == 1 and "cut off 3 times; run the command again" in errors[0], r.stderr
    assert len(server.log) == sources.DOWNLOAD_RETRIES + 1 and "resuming" in r.stderr
    assert _state(home) == before


def test_tampered_download_is_refused(server, packed, home, tmp_path):
    assert cli("models", "install", packed).exit_code == 0
    before = _state(home)
    sha = hashlib.sha256(packed.read_bytes()).hexdigest()
    bad = _tampered(packed, tmp_path / "bad.zip", "vggish.onnx.data", keep_crc=True)
    server.files["/models/pqeval-models.zip"] = bad.read_bytes()
    r = cli("models", "install", f"{server.url}/models/pqeval-models.zip", "--sha256", sha)
    assert r.exit_code == 2 and "does not match the pinned sha256" in r.stderr, r.stderr
    r = cli("models", "install", f"{server.url}/models/pqeval-models.zip")  # unpinned: the manifest catches it
    assert r.exit_code == 2 and "does not match the manifest" in r.stderr, r.stderr
    assert _state(home) == before


def test_404_and_no_network(server, packed, home):
    assert cli("models", "install", packed).exit_code == 0
    before = _state(home)
    r = cli("models", "install", f"{server.url}/models/missing.zip")
    assert r.exit_code == 2 and "HTTP 404" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert len(server.log) == 1  # a 404 is final: not retried
    port = server.httpd.server_address[1]
    server.__exit__()
    r = cli("models", "install", f"http://127.0.0.1:{port}/models/pqeval-models.zip")
    assert r.exit_code == 2 and "cannot connect to 127.0.0.1" in r.stderr and r.stderr.count("\n") == 1
    assert _state(home) == before


def test_default_source_from_the_environment(server, home, pair, monkeypatch):
    """With $PQEVAL_MODEL_SOURCE set, a missing model names the command that installs it, and
    `pqeval models install` alone uses it."""
    url = f"{server.url}/models/pqeval-models.zip"
    monkeypatch.setenv("PQEVAL_MODEL_SOURCE", url)
    r = cli("score", *pair, "--model", "vggish")
    assert r.exit_code == 2 and f"install it with `pqeval models install` (source: {url})" in r.stderr
    assert url in cli("models").stdout
    assert cli("models", "install").exit_code == 0
    assert cli("score", *pair, "--model", "vggish").exit_code == 0
    monkeypatch.delenv("PQEVAL_MODEL_SOURCE")
    r = cli("models", "install")
    assert r.exit_code == 2 and "PQEVAL_MODEL_SOURCE" in r.stderr


# --- the search path, verify, remove ----------------------------------------------------------


def test_search_path_order_and_hiding_the_defaults(packed, home, pair, tmp_path, monkeypatch):
    assert cli("models", "install", packed, "--model", "vggish").exit_code == 0
    assert session.find_model("vggish") == home / "vggish.onnx"
    mine = tmp_path / "mine"
    monkeypatch.setenv("PQEVAL_MODELS", str(mine))
    assert session.search_dirs() == [mine, home]
    assert session.install_dir() == mine
    assert session.find_model("vggish") == home / "vggish.onnx"
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    assert session.search_dirs() == [mine]
    r = cli("score", *pair, "--model", "vggish")
    assert r.exit_code == 2 and "is not installed" in r.stderr
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "maybe")
    assert cli("models").exit_code == 2


def test_half_installed_model_never_shadows_a_complete_one(packed, models_dir, home, tmp_path, monkeypatch):
    """A graph whose sidecar is not there yet (an install stopped between its last two moves)
    is skipped when a complete copy is found further down the search path."""
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(models_dir / "openl3-mel256-music-512.onnx", first)  # no sidecar
    monkeypatch.setenv("PQEVAL_MODELS", f"{first}{__import__('os').pathsep}{models_dir}")
    assert session.find_model("openl3-mel256-music-512") == models_dir / "openl3-mel256-music-512.onnx"
    monkeypatch.setenv("PQEVAL_MODELS", str(first))
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    with pytest.raises(Exception, match="provenance file .* is missing"):
        session.OnnxModel(session.find_model("openl3-mel256-music-512")).check()


def test_reinstall_replaces_atomically(packed, models_dir, home, tmp_path):
    """Installing over an installed model replaces every one of its files (and only those)."""
    assert cli("models", "install", packed).exit_code == 0
    (home / "unrelated.txt").write_text("mine")
    other = tmp_path / "other"
    shutil.copytree(models_dir, other)
    side = json.loads((other / "vggish.onnx.json").read_text())
    assert side["metadata"]["pqeval.weights"] == "seeded:0"
    r = cli("models", "install", other, "--model", "vggish", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["installed"][0]["replaced"] is True
    assert (home / "unrelated.txt").read_text() == "mine"
    assert not list(home.glob(bundle.STAGING_PREFIX + "*"))


def test_verify_finds_a_modified_file_and_remove_deletes(packed, home):
    assert cli("models", "install", packed).exit_code == 0
    assert cli("models", "verify", "--json").exit_code == 0
    data = home / "vggish.onnx.data"
    blob = bytearray(data.read_bytes())
    blob[10] ^= 1
    data.write_bytes(bytes(blob))
    r = cli("models", "verify", "--json")
    assert r.exit_code == 2 and "1 of 2 models failed verification: vggish" in r.stderr
    rows = {m["key"]: m["status"] for m in json.loads(r.stdout)["models"]}
    assert rows["openl3-mel256-music-512"] == "ok" and "does not match its recorded sha256" in rows["vggish"]
    (home / (bundle.STAGING_PREFIX + "x")).mkdir()
    r = cli("models", "verify", "openl3-mel256-music-512")
    assert r.exit_code == 0 and "interrupted install" in r.stderr
    r = cli("models", "remove", "vggish")
    assert r.exit_code == 0 and not (home / "vggish.onnx").exists() and not data.exists()
    r = cli("models", "remove", "vggish")
    assert r.exit_code == 2 and "is not installed" in r.stderr


def test_export_default_directory_is_the_install_directory(home, tmp_path, monkeypatch):
    """Export writes where install does: never inside the package."""
    assert session.install_dir() == home
    monkeypatch.setenv("PQEVAL_MODELS", str(tmp_path / "a"))
    assert session.install_dir() == tmp_path / "a"
    r = cli("export", "vggish", "--help")
    assert "--out" in r.stdout
