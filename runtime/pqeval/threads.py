"""Keep numpy's BLAS threads and ONNX Runtime's threads from competing for the same cores.

After a BLAS call, OpenBLAS's worker threads busy-wait for their next job (up to ~0.1 s), and
ORT's intra-op workers do the same after a run. The embedders alternate numpy work (resampling
GEMMs, spectrogram filterbanks) with ORT runs, so each side found the cores taken by the other's
spinning threads (measurements: docs/measurements.md). So while an embedder runs, BLAS gets
the calling thread only and ORT owns the other cores: :func:`blas_single_thread`.

threadpoolctl does the limiting; if it is missing this is a no-op.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager


@functools.lru_cache(maxsize=1)
def _controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    return ThreadpoolController()


@contextmanager
def blas_single_thread() -> Iterator[None]:
    """Within the block, numpy/scipy BLAS calls use one thread; restored afterwards."""
    ctl = _controller()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1, user_api="blas"):
        yield
