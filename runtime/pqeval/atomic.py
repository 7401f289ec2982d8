"""Atomic output: write to a temporary file beside the target, then rename it into place.

A reader never sees a half-written file, and an interrupted write leaves the previous file (or
nothing) behind, never a truncated one. Every file pqeval writes goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import UsageError


def _mode(path: Path) -> int:
    """The existing file's permissions, else 0666 minus the umask (mkstemp would give 0600)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it replaces ``path``.

    mode "wb" or "w" (text: UTF-8, no newline translation). Raises UsageError when the place
    cannot be written; on any error the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise UsageError(f"{path}: cannot write here ({e.strerror or e})") from None
    try:
        os.chmod(tmp, _mode(path))
        text = "b" not in mode
        with os.fdopen(fd, mode, newline="" if text else None, encoding="utf-8" if text else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_replace(src: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished file written by someone else's writer (on the same filesystem) into place:
    flushed to disk, given ``path``'s permissions, then renamed over it."""
    src, path = Path(src), Path(path)
    with open(src, "rb") as f:
        os.fsync(f.fileno())
    os.chmod(src, _mode(path))
    os.replace(src, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_audio(
    path: str | os.PathLike, samples, sr: int, sf_format: str = "WAV", subtype: str = "FLOAT"
) -> None:
    """Write audio with soundfile through ``atomic_open``; UsageError naming the file if it fails."""
    import soundfile as sf

    try:
        with atomic_open(path) as fh:
            sf.write(fh, samples, sr, format=sf_format, subtype=subtype)
    except (OSError, sf.LibsndfileError, RuntimeError) as err:
        raise UsageError(f"{path}: cannot write ({err})") from None
