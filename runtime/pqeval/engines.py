"""Where a batch's unit of work runs: in this process, in local worker processes, or on Dask.

Every engine runs the same unit (:func:`pqeval.work.score_group`, one clean file's pairs) and
yields ``(row, status)`` back to the batch's process, which alone writes the output
(:mod:`pqeval.batch`). The engines:

* :func:`run_serial`: this process, pair by pair (``workers=1``, the default).
* :func:`run_processes`: ``workers`` local processes (a ``spawn`` pool: no fork after ONNX
  Runtime started threads), each with its own models and ``cores // workers`` ORT threads. A
  worker process that dies (killed, out of memory) breaks the pool: the groups it had not
  returned are run again in a new pool; a group that was in flight during
  :data:`SHARED_TRIES` breaks is then run alone, and if it breaks the pool alone too its pairs get
  failed rows saying so (a later resume retries them). Nothing is lost and nothing is returned
  twice.
* :func:`run_dask`: tasks on a ``distributed.Client``'s cluster (``pip install 'pqeval[dask]'``;
  dask is imported only here). Results come back as tasks finish; a worker that dies mid-task has
  its task rerun by Dask (``distributed.scheduler.allowed-failures``, 3 by default); a task Dask
  gives up on (``KilledWorker``) becomes failed rows.

A task is a few whole groups, or a slice of a very large group (:func:`plan`), so a clean
embedding is computed once per task and no worker idles on one huge group at the end.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from .errors import UsageError
from .pairs import Pair, group_by_clean
from .results import pair_row, run_stamp
from .scoring import ScoreOptions
from .threads import blas_single_thread
from .work import FAILED, iter_group, score_group

Key = tuple[str, str]
Row = tuple[dict, str]

MAX_TASK_PAIRS = 32  # most pairs in one task: what a dead worker costs to redo
TASKS_PER_SLOT = 4  # aim for at least this many tasks per worker (balance at the end)
SHARED_TRIES = 2  # a task in flight during this many pool breaks is then run alone
WINDOW_PER_WORKER = 2  # tasks queued per worker process (one running, one ready)
MAX_BARREN_POOLS = 3  # pools in a row that die before finishing any task: give up
DASK_INSTALL = "pip install 'pqeval[dask]'"
DASK_CONNECT_TIMEOUT = "30s"  # how long to try reaching a scheduler
#: Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 (and writes it into the nanny's own
#: process environment). Any such setting freezes glibc's mmap threshold at 128 KiB, so every
#: numpy array of a pair is mmapped and unmapped: scoring took 1.75x as long (bench/results/
#: throughput.md). The LocalCluster of ``--dask local`` is started without it; docs/cluster.md says
#: how to start remote workers without it.
MALLOC_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


@dataclass(frozen=True)
class Task:
    """Pairs of one or more groups (or a slice of one group), and their earlier rows."""

    id: int
    groups: list[list[Pair]]
    previous: dict[Key, dict]

    @property
    def pairs(self) -> list[Pair]:
        return [p for g in self.groups for p in g]


def check_engine(client: Any, workers: int) -> None:
    """UsageError now for an engine request that cannot work (before any output is touched)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"--workers must be a whole number, 1 or more, got {workers!r}")
    if isinstance(client, (str, os.PathLike)) and os.fspath(client) != "local" and workers > 1:
        raise UsageError("--workers applies to this machine: with --dask ADDRESS the cluster decides the workers")


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a Slurm allocation), else all."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def worker_threads(options: ScoreOptions, workers: int) -> int:
    """ORT threads per local worker process: ``options.threads``, else ``$PQEVAL_THREADS``,
    else an equal share of the cores (at least 1)."""
    from .session import default_threads

    if options.threads is not None:
        return options.threads
    if os.environ.get("PQEVAL_THREADS", "").strip():
        return default_threads()
    return max(1, usable_cores() // workers)


def plan(pairs: Sequence[Pair], previous: dict[Key, dict], slots: int) -> list[Task]:
    """The tasks for ``slots`` parallel workers: groups (one clean file each) in input order; a
    group larger than the task size is cut into near-equal slices, small groups are packed
    together up to it. Task size: ``len(pairs) / (slots * TASKS_PER_SLOT)``, 1 ..
    :data:`MAX_TASK_PAIRS`."""
    size = max(1, min(MAX_TASK_PAIRS, math.ceil(len(pairs) / (max(1, slots) * TASKS_PER_SLOT))))
    tasks: list[Task] = []
    cur: list[list[Pair]] = []

    def close() -> None:
        if cur:
            keys = {p.key for g in cur for p in g}
            tasks.append(Task(len(tasks), list(cur), {k: previous[k] for k in keys if k in previous}))
            cur.clear()

    for group in group_by_clean(list(pairs)):
        n = math.ceil(len(group) / size)
        step = math.ceil(len(group) / n)
        for piece in (group[i : i + step] for i in range(0, len(group), step)):
            if sum(map(len, cur)) + len(piece) > size:
                close()
            cur.append(piece)
    close()
    return tasks


# --- the unit of work, as it runs in a worker --------------------------------------------------


def run_task(
    groups: list[list[Pair]], options: ScoreOptions, stamp: dict[str, str], previous: dict[Key, dict]
) -> list[Row]:
    """Score one task's groups in this process (a local worker or a Dask worker); ``stamp``: the
    run's (:func:`pqeval.results.run_stamp`), which this process's models must match."""
    rows: list[Row] = []
    with blas_single_thread():  # the same numbers on every engine (see run_serial)
        for group in groups:
            rows += score_group(group, options, stamp, {p.key: previous[p.key] for p in group if p.key in previous})
    return rows


def given_up(task: Task, options: ScoreOptions, stamp: dict[str, str], why: str) -> list[Row]:
    """Failed rows for a task no worker could finish (a resume retries them)."""
    rows = []
    for p in task.pairs:
        row = pair_row(p, None, options.metrics, error=f"{p.degraded}: {why}")
        row.update(clean_sha256="", degraded_sha256="", **stamp)
        rows.append((row, FAILED))
    return rows


# --- in this process ---------------------------------------------------------------------------


def run_serial(
    pairs: Sequence[Pair], options: ScoreOptions, stamp: dict[str, str], previous: dict[Key, dict]
) -> Iterator[Row]:
    """Each group in turn, in this process, yielding row by row.

    numpy's BLAS runs on one thread while a pair is scored, as on the other engines: OpenBLAS's
    result for a matrix product can change in the last bit with its thread count (STOI's band
    matrix), and one thread is faster here anyway (its idle threads spin against ORT's:
    :mod:`pqeval.threads`). The limit is held only while this generator runs, not between rows."""
    for group in group_by_clean(list(pairs)):
        mine = {p.key: previous[p.key] for p in group if p.key in previous}
        rows = iter_group(group, options, stamp, mine)
        while True:
            with blas_single_thread():
                row = next(rows, None)
            if row is None:
                break
            yield row


# --- local worker processes --------------------------------------------------------------------


def _exit_with_parent(sentinel: int) -> None:
    from multiprocessing.connection import wait as wait_for

    wait_for([sentinel])
    os._exit(1)  # the batch's process is gone (killed): nobody will read what this one scores


def _init_worker() -> None:
    """In each worker process: Ctrl-C is the parent's to handle; exit when the parent dies."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with_parent, args=(parent.sentinel,), daemon=True).start()


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker
    )


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop now (an error or Ctrl-C in the parent): end the worker processes, then shut down."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        if proc.is_alive():
            proc.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def run_processes(tasks: list[Task], options: ScoreOptions, stamp: dict[str, str], workers: int) -> Iterator[Row]:
    """The tasks on ``workers`` local processes; rows as tasks finish (see the module docstring
    for what happens when a worker process dies)."""
    threads = worker_threads(options, workers)
    opts = replace(options, threads=threads)
    pending: deque[Task] = deque(tasks)
    alone: deque[Task] = deque()  # suspects of breaking the pool: one at a time
    breaks: Counter[int] = Counter()
    barren = 0  # pools in a row that broke before finishing anything
    window = WINDOW_PER_WORKER * workers
    while pending or alone:
        pool = _new_pool(workers)
        running: dict[Future, Task] = {}
        solo: Task | None = None
        broken = clean_exit = progressed = False

        def submit(t: Task, back: deque[Task], pool: ProcessPoolExecutor = pool, running: dict = running) -> bool:
            try:
                running[pool.submit(run_task, t.groups, opts, stamp, t.previous)] = t
                return True
            except BrokenProcessPool:  # a worker died since the last wait: back in its queue
                back.appendleft(t)
                return False

        try:
            while (pending or alone or running) and not broken:
                if not running and alone:
                    solo = alone.popleft()
                    broken = not submit(solo, alone)
                while not broken and solo is None and not alone and pending and len(running) < window:
                    broken = not submit(pending.popleft(), pending)
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    if isinstance(f.exception(), BrokenProcessPool):
                        broken = True
                        continue
                    running.pop(f)
                    progressed = True
                    yield from f.result()  # another exception (a model missing in the worker): stop
                if not running:
                    solo = None
            if broken:
                wait(running)  # every future of a broken pool ends, most with BrokenProcessPool
                for f, t in running.items():
                    exc = f.exception()
                    if exc is None:  # returned before the break
                        progressed = True
                        yield from f.result()
                        continue
                    if not isinstance(exc, BrokenProcessPool):
                        raise exc
                    breaks[t.id] += 1
                    if solo is not None:
                        n = breaks[t.id]
                        yield from given_up(t, options, stamp, f"the worker process died while scoring it ({n} times)")
                    elif breaks[t.id] >= SHARED_TRIES:
                        alone.append(t)
                    else:
                        pending.appendleft(t)
                barren = 0 if progressed or solo is not None else barren + 1
                if barren >= MAX_BARREN_POOLS:
                    raise UsageError(
                        f"the {workers} worker processes keep dying before they finish any pair "
                        "(out of memory? a broken installation?); try fewer --workers"
                    )
            clean_exit = True
        finally:
            if clean_exit:
                pool.shutdown(wait=True)
            else:  # an exception, Ctrl-C, or the consumer stopped early
                _stop_pool(pool)


# --- Dask ----------------------------------------------------------------------------------------

_DASK_LOCK = threading.Lock()


def _dask_worker_threads() -> int:
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except Exception:  # not on a worker (e.g. a synchronous client): one thread
        return 1


def dask_task(
    groups: list[list[Pair]], options: ScoreOptions, stamp: dict[str, str], previous: dict[Key, dict]
) -> list[Row]:
    """A task on a Dask worker. The worker process's Scorer is not shared between threads: its
    tasks run one at a time, each with the worker's threads for ONNX Runtime unless
    ``options.threads`` says otherwise (one thread per worker process scales best)."""
    with _DASK_LOCK:
        if options.threads is None:
            options = replace(options, threads=_dask_worker_threads())
        return run_task(groups, options, stamp, previous)


def _killed_worker() -> type[BaseException]:
    try:
        from distributed import KilledWorker

        return KilledWorker
    except ImportError:  # pragma: no cover - older distributed
        from distributed.scheduler import KilledWorker as Killed

        return Killed


def dask_stamp(options: ScoreOptions, client: Any) -> dict[str, str]:
    """The run stamp as a worker of ``client``'s cluster sees it (its models, not this machine's,
    which may have none); every worker's models must then match it (:func:`pqeval.work.scorer_for`)."""
    return client.submit(run_stamp, options, pure=False).result()


def run_dask(tasks: list[Task], options: ScoreOptions, stamp: dict[str, str], client: Any) -> Iterator[Row]:
    """The tasks on ``client``'s cluster; rows as tasks finish. A task whose workers kept dying
    (``KilledWorker``) becomes failed rows; any other error in a task stops the batch."""
    import uuid

    from distributed import as_completed

    killed = _killed_worker()
    run = uuid.uuid4().hex[:10]
    futures = client.map(
        dask_task,
        [t.groups for t in tasks],
        [options] * len(tasks),
        [stamp] * len(tasks),
        [t.previous for t in tasks],
        key=[f"pqeval-group-{run}-{t.id}" for t in tasks],
        pure=False,
    )
    by_key = {f.key: t for f, t in zip(futures, tasks, strict=True)}
    unfinished = {f.key: f for f in futures}
    try:
        for f in as_completed(futures):
            t = by_key[f.key]
            unfinished.pop(f.key, None)
            try:
                rows = f.result()
            except killed as e:
                rows = given_up(t, options, stamp, f"the Dask workers running it died ({str(e).splitlines()[0][:200]})")
            f.release()
            yield from rows
    finally:
        if unfinished:
            client.cancel(list(unfinished.values()))


@contextmanager
def dask_client(spec: Any, workers: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec``: a Client (used as is, not closed); ``"local"`` (a
    LocalCluster of ``workers`` processes, one per core when ``workers`` is 1, one thread each, on
    127.0.0.1, closed at the end); a scheduler file (``*.json``); or a scheduler address
    (``tcp://host:8786``). UsageError when dask is not installed or the scheduler is unreachable."""
    if not isinstance(spec, (str, os.PathLike)):
        yield spec
        return
    spec = os.fspath(spec)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(f"--dask needs dask.distributed, which is not installed: {DASK_INSTALL}") from None
    import logging

    if spec == "local":
        import dask

        n = workers if workers > 1 else usable_cores()
        with dask.config.set({MALLOC_TRIM_KEY: None}):  # see MALLOC_TRIM_KEY
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,  # no dashboard; its HTTP server (health checks) on a free local port:
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                silence_logs=logging.ERROR,
            )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    check_engine(spec, workers)
    try:
        if spec.endswith(".json"):
            client = Client(scheduler_file=spec, timeout=DASK_CONNECT_TIMEOUT)
        else:
            client = Client(spec, timeout=DASK_CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"cannot reach the Dask scheduler at {spec} ({first})") from None
    try:
        yield client
    finally:
        client.close()


def dask_slots(client: Any) -> int:
    """Threads of the cluster's workers now (at least 1: a cluster may still be starting)."""
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:
        return 1
