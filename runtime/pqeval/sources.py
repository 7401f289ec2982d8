"""Where model bundles come from: a file, a directory, an ``http(s)://`` or ``file://`` URL, or
the configured default; downloads go through pooch (hash-checked, retried) with a downloader that
resumes an interrupted transfer.

A source may pin the bundle's sha256 as a URL fragment, pip-style:
``https://example.org/pqeval-models-0.1.zip#sha256=<64 hex digits>``. The default source is
``$PQEVAL_MODEL_SOURCE``, else :data:`pqeval.registry.DEFAULT_MODEL_SOURCE` (None until a bundle
of the published weights is released).

Downloads are kept in the user cache (``downloads/`` beside ``verified.json``): a pinned bundle
already there is not downloaded again; a partial download (``*.part``) is resumed with an HTTP
range request by the next attempt, including the next run of the command.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from . import integrity, render
from .errors import ModelError, UsageError

#: Download attempts after the first one (pooch waits 1 s, 2 s, 3 s between them).
DOWNLOAD_RETRIES = 3
#: (connect, read) timeouts of one HTTP request, s: a stalled server fails over to a retry.
HTTP_TIMEOUT = (10.0, 60.0)
CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: HTTP statuses worth retrying (timeouts, rate limits, server errors); any other 4xx is final.
_RETRY_STATUS = {408, 425, 429}


@dataclass(frozen=True)
class Source:
    """A bundle location: ``kind`` is "file", "dir" or "url"; ``sha256`` pins the bundle file."""

    location: str
    kind: str
    sha256: str | None = None

    @property
    def display(self) -> str:
        return self.location + (f"#sha256={self.sha256}" if self.sha256 else "")


def _split_fragment(text: str) -> tuple[str, str | None]:
    """(location, fragment after '#' or None): only a URL has a fragment ('#' may be in a file name)."""
    text = text.strip()
    if "#" in text and "://" in text:
        location, _, fragment = text.partition("#")
        return location, fragment
    return text, None


def parse_source(text: str, sha256: str | None = None) -> Source:
    """A :class:`Source` from a path or URL (``#sha256=HEX`` fragment allowed); UsageError if neither."""
    text, fragment = _split_fragment(text)
    frag_sha = None
    if fragment is not None:
        if not fragment.startswith("sha256="):
            raise UsageError(f"{text}#{fragment}: the only URL fragment understood is #sha256=<hex>")
        frag_sha = fragment.removeprefix("sha256=")
    pins = {s.lower() for s in (frag_sha, sha256) if s}
    for p in pins:
        if not _SHA256.match(p):
            raise UsageError(f"not a sha256 (64 hex digits): {p!r}")
    if len(pins) > 1:
        raise UsageError(f"{text}: two different sha256 given (the URL's #sha256= and --sha256)")
    pin = pins.pop() if pins else None
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return Source(text, "url", pin)
    name = text
    if scheme == "file":
        name = url2pathname(urlsplit(text).path)
    elif scheme and len(scheme) > 1:  # (a one-letter scheme is a Windows drive)
        raise UsageError(
            f"{text}: unsupported source; give a bundle file, a directory, or an http(s):// or file:// URL"
        )
    path = Path(name).expanduser()
    if path.is_dir():
        if pin:
            raise UsageError(f"{path}: a sha256 pins a bundle file, not a directory")
        return Source(str(path), "dir")
    if not path.exists():
        raise ModelError(f"{path}: no such bundle file or directory")
    if not path.is_file():
        raise ModelError(f"{path}: not a regular file or a directory")
    return Source(str(path), "file", pin)


def configured_source() -> Source | None:
    """``$PQEVAL_MODEL_SOURCE``, else the package's default bundle, else None (not parsed for
    existence: only the text is split)."""
    from .registry import DEFAULT_MODEL_SOURCE

    text = os.environ.get("PQEVAL_MODEL_SOURCE", "").strip() or DEFAULT_MODEL_SOURCE
    if not text:
        return None
    location, fragment = _split_fragment(text)
    sha = (fragment or "").removeprefix("sha256=") or None
    kind = "url" if urlsplit(location).scheme.lower() in ("http", "https") else "file"
    return Source(location, kind, sha)


def downloads_dir() -> Path:
    return integrity.user_cache_dir() / "downloads"


def local_copy(source: Source, quiet: bool = False) -> Path:
    """A local path of the bundle (file or directory): the source itself, or a verified download.

    A pinned source is checked against its sha256 (a local file too) before anything is read from
    it; ModelError with one line for a missing file, HTTP errors, no network, a truncated or
    tampered download."""
    if source.kind == "url":
        return _download(source, quiet)
    path = Path(source.location)
    if source.kind == "file" and source.sha256 and integrity.sha256_file(path) != source.sha256:
        raise ModelError(f"{path}: sha256 does not match the pinned {source.sha256[:12]}… (tampered with or truncated)")
    return path


def _cache_name(url: str) -> str:
    base = os.path.basename(urlsplit(url).path) or "bundle.zip"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{base}"


def _download(source: Source, quiet: bool) -> Path:
    import pooch
    import requests

    pooch.get_logger().setLevel("WARNING")  # pqeval shows its own progress
    url, cache, name = source.location, downloads_dir(), _cache_name(source.location)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / name
    if source.sha256 is None and target.exists():
        target.unlink()  # unpinned: never trust an earlier download
    known = f"sha256:{source.sha256}" if source.sha256 else None
    fetcher = pooch.create(
        path=cache, base_url="", registry={name: known}, urls={name: url}, retry_if_failed=DOWNLOAD_RETRIES
    )
    downloader = ResumingDownloader(
        cache / (name + ".part"), label=f"downloading {os.path.basename(name)}", quiet=quiet
    )
    try:
        return Path(fetcher.fetch(name, downloader=downloader))
    except ValueError as e:  # pooch: the downloaded file's hash is not the pinned one
        if "hash" not in str(e).lower():
            raise
        raise ModelError(
            f"{url}: the download does not match the pinned sha256 {source.sha256[:12]}… "  # type: ignore[index]
            "(tampered with or truncated); nothing installed"
        ) from None
    except requests.exceptions.HTTPError as e:
        raise ModelError(f"{url}: {_status(e.response)} after {DOWNLOAD_RETRIES + 1} attempts") from None
    except requests.exceptions.ChunkedEncodingError:
        raise ModelError(
            f"{url}: the download was cut off {DOWNLOAD_RETRIES + 1} times; run the command again to resume it"
        ) from None
    except requests.exceptions.ConnectionError:
        host = urlsplit(url).netloc
        raise ModelError(f"{url}: cannot connect to {host} (no network, or the server is down)") from None
    except requests.exceptions.Timeout:
        raise ModelError(f"{url}: the server did not answer in time ({DOWNLOAD_RETRIES + 1} attempts)") from None
    except requests.exceptions.RequestException as e:
        raise ModelError(f"{url}: download failed ({type(e).__name__})") from None


def _status(response) -> str:
    return f"HTTP {response.status_code} {response.reason or ''}".strip() if response is not None else "HTTP error"


class ResumingDownloader:
    """A pooch downloader that appends to ``partial`` and resumes it with a ``Range`` request.

    Called by pooch as ``downloader(url, output_file, pooch)``; on success the partial file becomes
    ``output_file`` (pooch then checks the hash and moves it into the cache). A connection cut off
    mid-transfer leaves the partial file for pooch's next attempt; a final HTTP status (404, 403…)
    raises ModelError at once, which pooch does not retry."""

    def __init__(self, partial: Path, label: str = "downloading", quiet: bool = False) -> None:
        self.partial = partial
        self.label = label
        self.quiet = quiet

    def __call__(self, url: str, output_file, pooch, check_only: bool = False) -> bool | None:
        import requests

        if check_only:
            return requests.head(url, timeout=HTTP_TIMEOUT, allow_redirects=True).status_code == 200
        have = self.partial.stat().st_size if self.partial.exists() else 0
        headers = (
            {"Range": f"bytes={have}-", "Accept-Encoding": "identity"} if have else {"Accept-Encoding": "identity"}
        )
        with requests.get(url, headers=headers, stream=True, timeout=HTTP_TIMEOUT) as r:
            if r.status_code == 416:  # the partial file is not a prefix of this resource: start again
                self.partial.unlink()
                return self(url, output_file, pooch)
            if 400 <= r.status_code < 500 and r.status_code not in _RETRY_STATUS:
                raise ModelError(f"{url}: {_status(r)}")
            r.raise_for_status()  # 5xx: pooch retries
            resumed = r.status_code == 206 and r.headers.get("Content-Range", "").startswith(f"bytes {have}-")
            if not resumed:
                have = 0
            length = int(r.headers.get("Content-Length") or 0)
            total_mb = max(1, round((have + length) / 1e6)) if length else 0
            done = have
            with (
                open(self.partial, "ab" if resumed else "wb") as f,
                render.Progress(self.label, self.quiet) as progress,
            ):
                if resumed and not self.quiet:
                    render.stderr(f"pqeval: resuming {url} at {have / 1e6:.1f} MB")
                for chunk in r.iter_content(CHUNK_BYTES):
                    f.write(chunk)
                    done += len(chunk)
                    if total_mb:
                        progress(min(round(done / 1e6), total_mb), total_mb, "MB")
        if hasattr(output_file, "write"):  # pooch passes a path; a file object is allowed by its API
            with open(self.partial, "rb") as src:
                while chunk := src.read(CHUNK_BYTES):
                    output_file.write(chunk)
            self.partial.unlink()
        else:
            os.replace(self.partial, output_file)
        return None
