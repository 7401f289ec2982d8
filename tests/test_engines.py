"""Batch engines: one process, local worker processes, Dask (a LocalCluster and a scheduler with two
`dask worker` processes started here), on 200 pairs made from real recordings; workers that die
and a parent that is killed lose no pair and write none twice.

The Dask tests need the dask extra (``pip install 'pqeval[dask]'``) and are skipped without it.
Every process a test starts binds 127.0.0.1 and is stopped by the test (finally).
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import AUDIO, ENV_PATH, cli
from pqeval import engines
from pqeval.batch import run_batch, score_pairs
from pqeval.errors import ModelError, UsageError
from pqeval.pairs import pairs_from_csv
from pqeval.scoring import ScoreOptions

OPTS = ScoreOptions(metrics=("vggish", "stoi"))
ALL = ScoreOptions(metrics=("vggish", "openl3", "pesq_wb", "stoi"))
N_CLEAN, N_DEGRADED = 20, 10
DASK_REASON = "the Dask engine needs the dask extra: pip install 'pqeval[dask]'"
DEADLINE = 180.0  # s: the longest any wait for a process here may take before the test fails


# --- the corpus: 20 excerpts of real recordings x 10 noise levels, and two bad pairs -------------


def write_corpus(d: Path, n_clean: int = N_CLEAN, n_degraded: int = N_DEGRADED) -> Path:
    """Clean excerpts (1-2 s) of the shared recordings and noisy versions at 30..3 dB SNR, as
    WAV; plus a pair whose degraded file is missing and one whose degraded file is corrupt.
    Returns the pairs CSV (relative paths)."""
    (d / "clean").mkdir(parents=True)
    (d / "deg").mkdir()
    sources = sorted(p for p in AUDIO.iterdir() if p.suffix in (".wav", ".flac"))
    assert len(sources) >= 10, f"too few recordings in {AUDIO}"
    rng = np.random.default_rng(13)
    lines = ["clean,degraded,id"]
    for i in range(n_clean):
        src = sources[i % len(sources)]
        x, sr = sf.read(str(src), dtype="float64", always_2d=True)
        x = x.mean(axis=1)
        n = int((1.0 + (i % 5) * 0.25) * sr)
        start = int(rng.integers(0, max(1, len(x) - n)))
        clean = x[start : start + n]
        name = f"c{i:02d}_{src.stem}"
        sf.write(str(d / "clean" / f"{name}.wav"), clean, sr, subtype="FLOAT")
        power = float(np.mean(clean**2)) or 1e-6
        for k in range(n_degraded):
            snr = 30 - 3 * k
            noisy = clean + rng.standard_normal(len(clean)) * np.sqrt(power / 10 ** (snr / 10))
            sf.write(str(d / "deg" / f"{name}__noise_{snr}.wav"), noisy, sr, subtype="FLOAT")
            lines.append(f"clean/{name}.wav,deg/{name}__noise_{snr}.wav,{i}-{k}")
    (d / "deg" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    first = sorted((d / "clean").iterdir())[0].name
    lines += [f"clean/{first},deg/missing.wav,bad-1", f"clean/{first},deg/corrupt.wav,bad-2"]
    (d / "pairs.csv").write_text("\n".join(lines) + "\n")
    return d / "pairs.csv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def models_env(models_dir):
    """The tiny models for this module's fixtures (and every process they start)."""
    import pqeval.session as session

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PQEVAL_MODELS", str(models_dir))
        mp.setenv("PQEVAL_MODELS_ONLY", "1")
        mp.setattr(session, "CHECKOUT_MODELS", models_dir)
        session._OPEN.clear()
        yield models_dir
        session._OPEN.clear()


@pytest.fixture(scope="module")
def reference(corpus, models_env, tmp_path_factory):
    """The corpus scored in this process (workers=1): the output file's bytes."""
    out = tmp_path_factory.mktemp("ref") / "serial.csv"
    res = run_batch(pairs_from_csv(corpus), out, OPTS)
    assert res.scored == N_CLEAN * N_DEGRADED and res.failed == 2 and res.reused == 0
    return out.read_bytes()


def keys_of(path: Path) -> Counter:
    """Pair keys of the complete rows of ``path`` (a line cut short by a kill is not a row)."""
    import io

    text = path.read_text(encoding="utf-8")
    text = text[: text.rfind("\n") + 1]
    return Counter((r["clean"], r["degraded"]) for r in csv.DictReader(io.StringIO(text, newline="")))


def rows_of(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as f:
        return {(r["clean"], r["degraded"]): r for r in csv.DictReader(f)}


@pytest.fixture()
def count_adds(monkeypatch):
    """Counts ResultsFile.add per pair key: a row written twice would show up here."""
    import pqeval.output as output

    adds: Counter = Counter()
    real = output.ResultsFile.add

    def add(self, row):
        adds[(row["clean"], row["degraded"])] += 1
        return real(self, row)

    monkeypatch.setattr(output.ResultsFile, "add", add)
    return adds


# --- processes on this machine --------------------------------------------------------------------


def test_plan_keeps_groups_whole_and_slices_large_ones(corpus):
    pairs = pairs_from_csv(corpus)
    tasks = engines.plan(pairs, {}, slots=2)
    assert sorted(p.key for t in tasks for p in t.pairs) == sorted(p.key for p in pairs)
    assert all(len({p.clean for p in g}) == 1 for t in tasks for g in t.groups)  # a group: one clean file
    assert all(len(t.pairs) <= engines.MAX_TASK_PAIRS for t in tasks)
    big = [pairs[0]] * 100  # one clean file, 100 pairs: sliced so 8 workers can share it
    sliced = engines.plan(big, {}, slots=8)
    assert len(sliced) >= 8 and sum(len(t.pairs) for t in sliced) == 100
    assert max(len(t.pairs) for t in sliced) - min(len(t.pairs) for t in sliced) <= 1


def test_two_worker_processes_write_the_same_file(corpus, reference, use_models, tmp_path, count_adds):
    out = tmp_path / "w2.csv"
    res = run_batch(pairs_from_csv(corpus), out, OPTS, workers=2)
    assert out.read_bytes() == reference  # the same rows, same order, bit-identical numbers
    assert res.scored == 200 and res.failed == 2
    assert set(count_adds.values()) == {1} and len(count_adds) == 202


def test_worker_threads_share_the_cores(monkeypatch):
    monkeypatch.delenv("PQEVAL_THREADS", raising=False)
    monkeypatch.setattr(engines, "usable_cores", lambda: 16)
    assert engines.worker_threads(OPTS, 4) == 4 and engines.worker_threads(OPTS, 32) == 1
    assert engines.worker_threads(ScoreOptions(metrics=("vggish",), threads=2), 4) == 2  # told: as told
    monkeypatch.setenv("PQEVAL_THREADS", "3")
    assert engines.worker_threads(OPTS, 4) == 3


def _spawned_children() -> list[int]:
    """This process's multiprocessing (spawn) children: the pool's worker processes."""
    me, found = os.getpid(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (d / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"spawn_main" in cmd:
            found.append(int(d.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
def test_worker_process_killed_mid_run_loses_nothing(corpus, reference, use_models, tmp_path, count_adds):
    """SIGKILL one of the two worker processes after 40 rows: its groups are run again in a new
    pool; every pair is written once, the file equals the one-process run."""
    killed: list[int] = []

    def progress(done, total, label):
        if done >= 40 and not killed:
            children = _spawned_children()
            assert children, "no worker process to kill"
            os.kill(children[0], signal.SIGKILL)
            killed.append(children[0])

    out = tmp_path / "killed.csv"
    res = run_batch(pairs_from_csv(corpus), out, OPTS, progress=progress, workers=2)
    assert killed and res.failed == 2
    assert out.read_bytes() == reference
    assert set(count_adds.values()) == {1} and len(count_adds) == 202


def first_80(corpus) -> list:
    """The pairs of the first 8 clean files (a task per clean file on 2 workers)."""
    return [p for p in pairs_from_csv(corpus) if p.clean.name < "c08" and "noise" in p.degraded.name]


def dies_on_noise_3(groups, options, stamp, previous):
    """A task that kills its worker process whenever it holds the 3 dB pairs of clean file c05."""
    if any("c05_" in p.degraded.name and p.degraded.name.endswith("noise_3.wav") for g in groups for p in g):
        os._exit(9)
    return engines.run_task(groups, options, stamp, previous)


def dies_once(groups, options, stamp, previous):
    """A task that kills its worker process the first time it is given clean file c07."""
    marker = Path(os.environ["PQEVAL_TEST_MARKER"])
    if any("c07_" in p.clean.name for g in groups for p in g) and not marker.exists():
        marker.write_text("died")
        os._exit(9)
    return engines.run_task(groups, options, stamp, previous)


def test_a_worker_that_dies_once_is_retried(corpus, reference, use_models, tmp_path, monkeypatch, count_adds):
    monkeypatch.setenv("PQEVAL_TEST_MARKER", str(tmp_path / "marker"))
    monkeypatch.setattr(engines, "run_task", dies_once)  # pickled by reference: the workers import this module
    pairs = first_80(corpus)
    out = tmp_path / "once.csv"
    run_batch(pairs, out, OPTS, workers=2)
    assert (tmp_path / "marker").exists()  # it did die
    assert rows_of(out) == {p.key: rows_of_bytes(reference)[p.key] for p in pairs}
    assert set(count_adds.values()) == {1} and len(count_adds) == 80


def test_a_group_that_always_kills_its_worker_gets_failed_rows(corpus, reference, use_models, tmp_path, monkeypatch):
    """Bounded retries: the task holding the poisonous pair is tried twice with others, then alone,
    then given up as failed rows saying why; every other pair is scored as in one process."""
    monkeypatch.setattr(engines, "run_task", dies_on_noise_3)
    pairs = first_80(corpus)
    poison = [t for t in engines.plan(pairs, {}, 2) if any("c05_" in p.clean.name for p in t.pairs)]
    assert len(poison) == 1
    out = tmp_path / "poison.csv"
    res = run_batch(pairs, out, OPTS, workers=2)
    rows, ref = rows_of(out), {p.key: rows_of_bytes(reference)[p.key] for p in pairs}
    assert keys_of(out) == Counter(ref.keys())  # every pair, once
    dead = {k for k, r in rows.items() if "worker process died" in r["error"]}
    assert dead == {p.key for p in poison[0].pairs}  # its task's pairs, no other
    assert all("(3 times)" in rows[k]["error"] and rows[k]["vggish"] == "" for k in dead)
    assert all(rows[k] == ref[k] for k in rows if k not in dead)
    assert res.failed == len(dead)
    again = run_batch(pairs, out, OPTS)  # a resume retries them (here: no poison)
    assert again.scored == len(dead) and rows_of(out) == ref


def model_missing_in_worker(groups, options, stamp, previous):
    """A task whose worker has no model (a node set up differently)."""
    raise ModelError("/node7/models/vggish.onnx: not installed on this worker")


def test_an_error_in_a_worker_stops_the_batch_with_it(corpus, use_models, tmp_path, monkeypatch):
    """A PqevalError raised in a worker process reaches the caller as itself (one line for the CLI),
    and the worker processes are stopped."""
    monkeypatch.setattr(engines, "run_task", model_missing_in_worker)
    with pytest.raises(ModelError, match="not installed on this worker"):
        run_batch(pairs_from_csv(corpus), tmp_path / "x.csv", OPTS, workers=2)
    if Path("/proc/self/stat").exists():
        assert not _spawned_children()


def rows_of_bytes(data: bytes) -> dict:
    import io

    return {(r["clean"], r["degraded"]): r for r in csv.DictReader(io.StringIO(data.decode("utf-8")))}


def _session_members(sid: int) -> list[int]:
    """Processes whose session id is ``sid`` (the killed parent's workers, if any survive)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(d.name))
    return found


def _complete_rows(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return 0
    return max(0, text[: text.rfind("\n") + 1].count("\n") - 1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="watches processes through /proc")
def test_parent_killed_mid_run_then_rerun(corpus, reference, use_models, tmp_path):
    """A batch with two worker processes is SIGKILLed once rows are on disk; its workers exit on
    their own; rerunning resumes: every pair present exactly once, the rows on disk reused."""
    out = tmp_path / "res.csv"
    code = (
        "import sys\n"
        "from pqeval.batch import run_batch\n"
        "from pqeval.pairs import pairs_from_csv\n"
        "from pqeval.scoring import ScoreOptions\n"
        f"run_batch(pairs_from_csv(sys.argv[1]), sys.argv[2], ScoreOptions(metrics={OPTS.metrics!r}), workers=2)\n"
    )
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(corpus), str(out)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        t0 = time.monotonic()
        while _complete_rows(out) < 10 and proc.poll() is None and time.monotonic() - t0 < DEADLINE:
            time.sleep(0.05)
        assert proc.poll() is None, f"the batch ended before it could be killed: {proc.stderr.read()!r}"
        assert len(_session_members(proc.pid)) >= 3, "expected the parent and two worker processes"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        t0 = time.monotonic()
        while _session_members(proc.pid) and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        assert not _session_members(proc.pid), "worker processes outlived their killed parent"
    finally:
        for pid in _session_members(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    on_disk = keys_of(out) if out.exists() else Counter()
    total = N_CLEAN * N_DEGRADED + 2
    assert 0 < sum(on_disk.values()) < total
    res = run_batch(pairs_from_csv(corpus), out, OPTS, workers=2)
    assert keys_of(out) == Counter(p.key for p in pairs_from_csv(corpus))  # every pair, once
    assert out.read_bytes() == reference
    assert res.reused >= sum(1 for k in on_disk if "missing" not in k[1] and "corrupt" not in k[1])
    assert res.scored + res.reused + res.failed == total and res.failed == 2


def test_engine_requests_that_cannot_work(corpus, use_models, tmp_path):
    pairs = pairs_from_csv(corpus)[:3]
    with pytest.raises(UsageError, match="1 or more"):
        run_batch(pairs, tmp_path / "a.csv", OPTS, workers=0)
    with pytest.raises(UsageError, match="with --dask ADDRESS the cluster decides"):
        run_batch(pairs, tmp_path / "b.csv", OPTS, workers=2, client="tcp://127.0.0.1:1")
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()  # refused before any output


def test_dask_missing_is_one_line_naming_the_extra(corpus, use_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(UsageError, match=r"pip install 'pqeval\[dask\]'"):
        run_batch(pairs_from_csv(corpus)[:3], tmp_path / "x.csv", OPTS, client="local")
    assert not (tmp_path / "x.csv").exists()


# --- Dask -------------------------------------------------------------------------------------------


def test_dask_local_cluster_writes_the_same_file(corpus, reference, use_models, tmp_path, count_adds):
    pytest.importorskip("distributed", reason=DASK_REASON)
    out = tmp_path / "local.csv"
    res = run_batch(pairs_from_csv(corpus), out, OPTS, client="local", workers=2)
    assert out.read_bytes() == reference
    assert res.scored == 200 and res.failed == 2
    assert set(count_adds.values()) == {1} and len(count_adds) == 202


def test_dask_local_workers_start_without_the_malloc_setting(models_env):
    """`--dask local` starts its workers without Dask's MALLOC_TRIM_THRESHOLD_ (1.9x slower scoring)
    and leaves this process's environment without it too (later --workers processes inherit it)."""
    pytest.importorskip("distributed", reason=DASK_REASON)
    before = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    with engines.dask_client("local", 2) as client:
        seen = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")))
    assert len(seen) == 2 and all(v == (None, "1") for v in seen.values())
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == before


def _start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
            return
        except subprocess.TimeoutExpired:
            continue


def _readable_json(path: Path) -> bool:
    import json

    try:
        json.loads(path.read_text())
        return True
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def dask_procs(models_env, tmp_path_factory):
    """A scheduler and two `dask worker` processes (one thread each, with a nanny), on 127.0.0.1,
    started as separate processes; a client connected to them. Stopped at the end."""
    distributed = pytest.importorskip("distributed", reason=DASK_REASON)
    d = tmp_path_factory.mktemp("dask")
    sched_file = d / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": ENV_PATH}
    env["DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON"] = '{"MALLOC_TRIM_THRESHOLD_": None}'  # docs/cluster.md
    dask = [sys.executable, "-m", "dask"]
    procs = [
        _start(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"]
            + ["--dashboard-address", "127.0.0.1:0"]
            + ["--scheduler-file", str(sched_file)],
            d / "scheduler.log",
            env,
        )
    ]
    try:
        t0 = time.monotonic()
        while not _readable_json(sched_file) and time.monotonic() - t0 < DEADLINE:
            assert procs[0].poll() is None, (d / "scheduler.log").read_text()
            time.sleep(0.1)
        for i in range(2):
            procs.append(
                _start(
                    [*dask, "worker", "--scheduler-file", str(sched_file), "--nthreads", "1", "--nworkers", "1"]
                    + ["--host", "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
                    + ["--death-timeout", "60"],
                    d / f"worker{i}.log",
                    env,
                )
            )
        client = distributed.Client(scheduler_file=str(sched_file), timeout="60s")
        try:
            client.wait_for_workers(2, timeout=DEADLINE)
            yield client
        finally:
            client.close()
    finally:
        for p in reversed(procs):
            _stop(p)


def test_dask_worker_processes_write_the_same_file(corpus, reference, dask_procs, use_models, tmp_path, count_adds):
    """A scheduler and two `dask worker` processes started apart from this one: the same file; and
    each worker keeps one Scorer (its models loaded once) for every task of a run."""
    client = dask_procs
    out = tmp_path / "procs.csv"
    res = run_batch(pairs_from_csv(corpus), out, OPTS, client=client)
    assert out.read_bytes() == reference
    assert res.scored == 200 and res.failed == 2 and set(count_adds.values()) == {1}

    def mark() -> int:
        from pqeval import work

        for s in work._SCORERS.values():
            s._test_mark = True  # type: ignore[attr-defined]
        return len(work._SCORERS)

    def marked() -> list[bool]:
        from pqeval import work

        return [getattr(s, "_test_mark", False) for s in work._SCORERS.values()]

    assert sorted(client.run(mark).values()) == [1, 1]  # both workers scored, one Scorer each
    again = run_batch(pairs_from_csv(corpus), tmp_path / "again.csv", OPTS, client=client)
    assert again.scored == 200
    assert list(client.run(marked).values()) == [[True], [True]]  # the same Scorer served the second run


def test_dask_python_entry_point_with_a_client(corpus, reference, dask_procs, use_models):
    """``score_pairs(pairs, options, client=client)`` for users who hold a client: every pair once,
    the rows equal the one-process run's."""
    pairs = pairs_from_csv(corpus)
    got = list(score_pairs(pairs, OPTS, client=dask_procs))
    assert Counter((r["clean"], r["degraded"]) for r, _ in got) == Counter(p.key for p in pairs)
    ref = rows_of_bytes(reference)
    for r, _ in got:
        want = ref[(r["clean"], r["degraded"])]
        assert {"vggish", "stoi", "settings"} <= set(r) and all(r[c] == want[c] for c in r if c in want)


def test_dask_submitting_machine_needs_no_models(corpus, reference, dask_procs, tmp_path, monkeypatch):
    """With a remote cluster, the models are the workers' business: this process, with an empty
    model directory, gets the same rows (the run stamp comes from a worker)."""
    import pqeval.session as session

    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("PQEVAL_MODELS", str(empty))
    monkeypatch.setenv("PQEVAL_MODELS_ONLY", "1")
    monkeypatch.setattr(session, "_OPEN", {})
    pairs = [p for p in pairs_from_csv(corpus) if p.clean.name < "c02" and "noise" in p.degraded.name]
    with pytest.raises(ModelError, match="not installed"):
        run_batch(pairs, tmp_path / "here.csv", OPTS)  # this process has none
    out = tmp_path / "remote.csv"
    run_batch(pairs, out, OPTS, client=dask_procs)
    assert rows_of(out) == {p.key: rows_of_bytes(reference)[p.key] for p in pairs}


def test_dask_all_metrics_match_one_process(corpus, dask_procs, use_models, tmp_path):
    """Every metric (both embedding families, PESQ, STOI) on 40 pairs: the Dask workers' file equals
    this process's."""
    pairs = [p for p in pairs_from_csv(corpus) if p.clean.name < "c04" and "noise" in p.degraded.name]
    assert len(pairs) == 40
    a, b, c = tmp_path / "serial.csv", tmp_path / "dask.csv", tmp_path / "w2.csv"
    run_batch(pairs, a, ALL)
    run_batch(pairs, b, ALL, client=dask_procs)
    run_batch(pairs, c, ALL, workers=2)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()


def test_dask_worker_killed_mid_run_loses_nothing(corpus, reference, dask_procs, use_models, tmp_path, count_adds):
    """SIGKILL a `dask worker` process while it holds a task: Dask reruns the task elsewhere (its
    nanny restarts the worker); every pair is written once and the file equals the one-process run."""
    client = dask_procs
    killed: list[int] = []

    def progress(done, total, label):
        if done >= 30 and not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            assert busy, "no worker holds a task"
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    out = tmp_path / "killed.csv"
    res = run_batch(pairs_from_csv(corpus), out, OPTS, client=client, progress=progress)
    assert killed and res.failed == 2
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert out.read_bytes() == reference
    assert set(count_adds.values()) == {1} and len(count_adds) == 202
    client.wait_for_workers(2, timeout=DEADLINE)  # the nanny restarted it


def test_unreachable_scheduler_is_a_usage_error(corpus, use_models, tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason=DASK_REASON)
    import socket

    monkeypatch.setattr(engines, "DASK_CONNECT_TIMEOUT", "2s")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UsageError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        run_batch(pairs_from_csv(corpus)[:2], tmp_path / "x.csv", OPTS, client=f"tcp://127.0.0.1:{port}")


# --- the batch command's flags (wired in cli/batch.py) ---------------------------------------------


@pytest.fixture(scope="module")
def cli_reference(corpus, models_env, tmp_path_factory):
    """`pqeval batch` on the corpus in one process: the output file's bytes (the command keeps the
    pairs CSV's other columns, so its file is not run_batch's)."""
    out = tmp_path_factory.mktemp("cli-ref") / "serial.csv"
    p = cli("batch", corpus, "--out", out, "--metrics", "vggish,stoi")
    assert p.exit_code == 3, p.stderr  # the two bad pairs
    return out.read_bytes()


def test_cli_workers_flag(corpus, cli_reference, use_models, tmp_path):
    out = tmp_path / "cli-w2.csv"
    p = cli("batch", corpus, "--out", out, "--metrics", "vggish,stoi", "--workers", "2")
    assert p.exit_code == 3, p.stderr
    assert out.read_bytes() == cli_reference
    p = cli("batch", corpus, "--out", tmp_path / "w0.csv", "--workers", "0")
    assert p.exit_code == 2 and "--workers" in p.stderr


def test_cli_dask_local_flag(corpus, cli_reference, use_models, tmp_path):
    pytest.importorskip("distributed", reason=DASK_REASON)
    out = tmp_path / "cli-dask.csv"
    p = cli("batch", corpus, "--out", out, "--metrics", "vggish,stoi", "--dask", "local")
    assert p.exit_code == 3, p.stderr
    assert out.read_bytes() == cli_reference


def test_cli_dask_address_flag(corpus, cli_reference, dask_procs, use_models, tmp_path):
    out = tmp_path / "cli-addr.csv"
    address = dask_procs.scheduler.address
    p = cli("batch", corpus, "--out", out, "--metrics", "vggish,stoi", "--dask", address)
    assert p.exit_code == 3, p.stderr
    assert out.read_bytes() == cli_reference
    p = cli("batch", corpus, "--out", tmp_path / "x.csv", "--dask", address, "--workers", "2")
    assert p.exit_code == 2 and "the cluster decides the workers" in p.stderr


def test_cli_dask_missing_is_one_line_naming_the_extra(corpus, use_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    p = cli("batch", corpus, "--out", tmp_path / "y.csv", "--metrics", "vggish", "--dask", "local")
    assert p.exit_code == 2, p.stderr
    assert p.stderr.count("\n") == 1 and "pip install 'pqeval[dask]'" in p.stderr
