"""The results file of a batch: earlier rows for resuming, rows appended as pairs finish, and the
final table.

:class:`ResultsFile` is the one writer of a batch's output; only the process that runs the batch
writes it (workers send rows back), and a lock beside it (:class:`OutLock`) keeps a second batch
from writing the same file. Rows are appended and flushed as they come, never rewritten with the
whole table, so a run killed at any moment keeps every row it finished and every row the file
already had; a row cut short by the kill is dropped when the file is next read
(:func:`pqeval.results.parse_table`). At the end the file is compacted once, atomically: a
completed run leaves exactly its own rows, in the order of its pairs; a run stopped early (an
error, Ctrl-C) leaves the earlier rows it did not supersede plus its own.

Only a pqeval results table (a CSV with :data:`pqeval.results.RESULTS_FILE_COLUMNS`), an empty
file or nothing may stand at the output path: a recording, the pairs file, a directory, a device,
a pipe or a symbolic link is refused before any work (:func:`check_out`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import stat
import sys
import time
from pathlib import Path

from .atomic import atomic_write_text
from .errors import UsageError
from .results import RESULTS_FILE_COLUMNS, parse_table, to_csv

SYNC_SECONDS = 2.0  # appended rows reach the disk (fsync) at least this often, besides the OS's own flushing
HEAD_BYTES = 1 << 16  # how much of an existing file is read to decide whether it is a results table

Key = tuple[str, str]


def _cannot_write(path: Path, e: OSError) -> UsageError:
    return UsageError(f"{path}: cannot write here ({e.strerror or e})")


def append_bytes(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (an O_APPEND descriptor)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def check_out(path: str | os.PathLike) -> None:
    """UsageError (one line) unless ``path`` is a place a batch may write its results table:
    nothing yet, an empty regular file, or a regular file that is a pqeval results table. Never
    a directory, a device, a pipe, a socket or a symbolic link, whatever it points to."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _cannot_write(path, e) from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"{path}: is a symbolic link; give the file it points to, or another --out")
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path}: is a directory; --out is the results CSV file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path}: is not a regular file (a device, pipe or socket); --out is the results CSV file")
    if st.st_size == 0:
        return
    try:
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        raise UsageError(f"{path}: cannot read it to check it is a results table ({e.strerror or e})") from None
    first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff")
    try:
        header = {h.strip() for h in next(csv.reader([first]), [])}
    except csv.Error:
        header = set()
    if b"\n" not in head or not set(RESULTS_FILE_COLUMNS) <= header:
        raise UsageError(
            f"{path}: exists and is not a pqeval results file (no {', '.join(RESULTS_FILE_COLUMNS)} columns);"
            " refusing to overwrite it: choose another --out"
        )


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file beside an output (``.NAME.lock``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


class OutLock:
    """An exclusive lock on writing ``out``: ``flock`` on ``.NAME.lock`` beside it, which holds the
    holder's pid. The OS releases it when the process ends, however it ends, so a killed batch
    never blocks the next one; a clean release also removes the file. On a filesystem that has
    no locks (``flock`` unsupported: some cluster mounts) the output is written unlocked."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.path = lock_path(out)
        self._fd: int | None = None
        self._pid = 0

    def acquire(self) -> OutLock:
        for _ in range(100):  # the holder may remove the file between our open and our lock: retry
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o666)
            except OSError as e:
                raise _cannot_write(self.out, e) from None
            locked = _try_lock(fd)
            if locked is None:  # a filesystem without locks (some cluster mounts): write unlocked, as before
                os.close(fd)
                with contextlib.suppress(OSError):
                    self.path.unlink()
                return self
            if not locked:
                holder = _read_pid(fd)
                os.close(fd)
                raise UsageError(f"{self.out}: another pqeval batch is writing it (pid {holder or 'unknown'})")
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError as e:
                os.close(fd)
                raise _cannot_write(self.out, e) from None
            self._fd, self._pid = fd, os.getpid()
            return self
        raise UsageError(f"{self.out}: cannot lock it ({self.path} keeps changing)")

    def release(self) -> None:
        if self._fd is None or self._pid != os.getpid():  # a forked child never releases its parent's lock
            return
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)  # while still holding it: a waiter then retries on a new file
        os.close(self._fd)
        self._fd = None

    def __del__(self) -> None:  # a ResultsFile made but never entered (an error in between)
        self.release()


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


if sys.platform == "win32":  # pragma: no cover - pqeval is tested on Linux

    def _try_lock(fd: int) -> bool | None:
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:

    def _try_lock(fd: int) -> bool | None:
        """True: locked; False: another process holds it; None: this filesystem has no locks."""
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return None
            raise
        return True


def _read_pid(fd: int) -> int:
    """The pid the holder wrote into the lock file (0 if it has not yet)."""
    for _ in range(20):
        try:
            text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
        except (OSError, AttributeError):
            return 0
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return 0


class ResultsFile:
    """Rows of one batch output at ``path`` with header ``columns``.

    Making one checks the path (:func:`check_out`), takes the lock (UsageError "another pqeval
    batch is writing it (pid N)") and reads the earlier rows: ``previous``, the rows an earlier
    run left, by pair key (the last row of a key wins; a torn last row is left out). Use as a
    context manager: entering makes the file ready to append (the header of a new file; an
    earlier file with other columns is rewritten once with the union of columns; a torn tail is
    cut off), :meth:`add` appends a finished row (in any order), :meth:`finish` writes the final
    table; leaving without :meth:`finish` (an error, Ctrl-C) compacts what is on disk (the earlier
    rows not superseded, then this run's). Leaving releases the lock. A write that fails (disk
    full) is a UsageError "cannot write here (...)" and leaves every row written before it.
    """

    def __init__(self, path: str | os.PathLike, columns: list[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        check_out(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _cannot_write(self.path, e) from None
        self._lock = OutLock(self.path).acquire()
        try:
            self._read_earlier()
        except BaseException:
            self._lock.release()
            raise
        self._rows: dict[Key, list[dict]] = {}  # a key added twice (a pair listed twice): both rows
        self._fd: int | None = None
        self._final: list[dict] | None = None
        self._broken = False
        self._synced = 0.0

    def _read_earlier(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as e:
            raise UsageError(f"{self.path}: cannot read the earlier results ({e.strerror or e})") from None
        table = parse_table(data)
        if table.bad_line:
            raise UsageError(
                f"{self.path}: line {table.bad_line} is not a well-formed row of this results table"
                " (edited by hand?); repair it or choose another --out"
            )
        self._header = table.header
        self._size = table.size
        self._torn = table.torn
        self.previous: dict[Key, dict] = {(r.get("clean", ""), r.get("degraded", "")): r for r in table.rows}
        self._cols = self.columns + [c for c in table.header if c not in self.columns]

    def __enter__(self) -> ResultsFile:
        try:
            if not self._header or self._header != self._cols:
                # a new file: its header; other columns: the union, once (atomic: the earlier rows stay)
                text = to_csv(list(self.previous.values()), self._cols)
                self._rewrite(text)
                self._size, self._torn = len(text.encode("utf-8")), 0
            elif self._torn:  # a row cut short by a kill: never parsed, now cut off before appending
                os.truncate(self.path, self._size)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | _CLOEXEC)
        except OSError as e:
            self._lock.release()
            raise _cannot_write(self.path, e) from None
        except BaseException:
            self._lock.release()
            raise
        self._synced = time.monotonic()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            self._close()
            if self._final is None and not self._broken:  # stopped early: compact, keeping earlier rows
                rows = [r for rs in self._rows.values() for r in rs]
                rows += [r for k, r in self.previous.items() if k not in self._rows]
                try:
                    self._rewrite(to_csv(rows, self._cols))
                except UsageError:
                    if exc_type is None:
                        raise
                    # already stopping on an error: the appended file is complete as it is
        finally:
            self._lock.release()

    def add(self, row: dict) -> None:
        """Append a finished row (flushed to the OS at once, to the disk at least every SYNC_SECONDS)."""
        if self._fd is None:
            raise RuntimeError("ResultsFile.add outside its with block")
        key = (row.get("clean", ""), row.get("degraded", ""))
        self._rows.setdefault(key, []).append(row)
        data = to_csv([row], self._cols).split("\n", 1)[1].encode("utf-8")
        try:
            append_bytes(self._fd, data)
            if time.monotonic() - self._synced >= SYNC_SECONDS:
                os.fsync(self._fd)
                self._synced = time.monotonic()
        except OSError as e:
            self._broken = True
            with contextlib.suppress(OSError):  # else the next read drops it as a torn row
                os.ftruncate(self._fd, self._size)  # take back the part of the row that reached the file
            raise _cannot_write(self.path, e) from None
        self._size += len(data)

    def finish(self, order: list[Key]) -> list[dict]:
        """Write exactly this run's rows in ``order`` (atomically, over the appended file); return them."""
        self._close()
        final, used = [], dict.fromkeys(self._rows, 0)
        for k in order:  # a key listed twice takes its rows in the order they were added
            if self._rows.get(k):
                final.append(self._rows[k][min(used[k], len(self._rows[k]) - 1)])
                used[k] += 1
        self._rewrite(to_csv(final, self.columns))
        self._final = final
        return final

    def _rewrite(self, text: str) -> None:
        try:
            atomic_write_text(self.path, text)
        except OSError as e:
            self._broken = True
            raise _cannot_write(self.path, e) from None
        except UsageError:
            self._broken = True
            raise

    def _close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if not self._broken:
                    os.fsync(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
