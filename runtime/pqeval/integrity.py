"""Model file integrity: sha256 of files, and a record of files already verified.

Hashing VGGish's 289 MB of weights is a noticeable part of a cold ``pqeval score``. A file
whose stat (size, mtime, ctime, inode, device) is unchanged since it last hashed correctly is
not hashed again: the stat is recorded in ``verified.json`` in :func:`user_cache_dir` (or
``$PQEVAL_VERIFY_CACHE``; ``off`` hashes every time). Any write to the file changes its ctime,
which no user can set; a file changed within :data:`RACY_SECONDS` of its verification is never
recorded (git's "racily clean" rule, for filesystems with coarse timestamps).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .atomic import atomic_write_text

HASH_CHUNK = 1 << 22  # bytes read per update
RACY_SECONDS = 2.0


def user_cache_dir() -> Path:
    """pqeval's user cache directory (platformdirs: ``$XDG_CACHE_HOME/pqeval``, default
    ``~/.cache/pqeval`` on Linux; ``~/Library/Caches/pqeval`` on macOS)."""
    import platformdirs

    return platformdirs.user_cache_path("pqeval", appauthor=False)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's contents, read in HASH_CHUNK pieces."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _verify_cache() -> Path | None:
    env = os.environ.get("PQEVAL_VERIFY_CACHE")
    if env == "off":
        return None
    return Path(env) if env else user_cache_dir() / "verified.json"


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def has_sha256(path: str | os.PathLike, want: str) -> bool:
    """Whether the file's sha256 is ``want``; skips hashing a file unchanged since it last matched."""
    path = Path(path).resolve()
    cache_file = _verify_cache()
    stat = _stat_key(path)
    entries: dict = {}
    if cache_file is not None:
        try:
            entries = json.loads(cache_file.read_text())
        except (OSError, ValueError):
            entries = {}
        if not isinstance(entries, dict):  # not ours, or damaged: start a new record
            entries = {}
        if entries.get(str(path)) == {"stat": stat, "sha256": want}:
            return True
    if sha256_file(path) != want:
        return False
    racy = max(stat[1], stat[2]) > time.time_ns() - int(RACY_SECONDS * 1e9)
    if cache_file is not None and not racy and _stat_key(path) == stat:
        entries = {k: v for k, v in entries.items() if os.path.exists(k)}
        entries[str(path)] = {"stat": stat, "sha256": want}
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(entries, indent=1))
        except OSError:
            pass  # a read-only cache only costs the hashing next time
    return True
