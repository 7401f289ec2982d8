"""What this CPU can run natively: its name and instruction sets, and which inference precisions
follow from them.

A fast path that the CPU lacks the instructions for is refused, never emulated slowly in silence:
bf16 needs AVX512_BF16 or AMX-BF16 (OpenVINO's bf16 kernels; without them OpenVINO quietly runs
fp32 or converts on the fly), int8 needs at least AVX2 (ONNX Runtime's MLAS and OpenVINO's u8/s8
kernels; AVX-512 VNNI, AVX-VNNI and AMX-INT8 make them faster).

Flags come from ``/proc/cpuinfo`` (Linux); elsewhere from numpy's own CPU dispatch table, which
knows AVX2 / AVX-512 / VNNI but not bf16 or AMX (bf16 is then refused as unknown).

References: Intel 64 and IA-32 Architectures Software Developer's Manual, vol. 1, ch. 18 (AVX-512),
ch. 20 (AMX); the Linux kernel's ``arch/x86/include/asm/cpufeatures.h`` for the flag names.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: Flags worth naming, in the order a summary lists them (Linux ``/proc/cpuinfo`` spelling).
NOTABLE_FLAGS: tuple[str, ...] = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)

#: Instruction sets a precision needs (any one of the alternatives), and their display names.
BF16_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")
INT8_FLAGS: tuple[str, ...] = ("avx2",)
DISPLAY: dict[str, str] = {"avx512_bf16": "AVX512_BF16", "amx_bf16": "AMX-BF16", "avx2": "AVX2"}

# numpy's dispatch names -> /proc/cpuinfo names (for machines without /proc/cpuinfo)
_NUMPY_NAMES = {
    "AVX2": "avx2",
    "FMA3": "fma",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512_ICL": "avx512_vnni",
}


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, frozenset[str]] | None:
    try:
        text = CPUINFO.read_text(errors="replace")
    except OSError:
        return None
    name, flags = "", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not name:
            name = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return name, flags


def _numpy_flags() -> frozenset[str]:
    import importlib

    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy 2, numpy 1
        try:
            feats = importlib.import_module(module).__cpu_features__
        except (ImportError, AttributeError):
            continue
        return frozenset(v for k, v in _NUMPY_NAMES.items() if feats.get(k))
    return frozenset()


def name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's processor string."""
    info = _cpuinfo()
    return (info[0] if info and info[0] else platform.processor()) or platform.machine() or "unknown CPU"


def flags() -> frozenset[str]:
    """The CPU's instruction-set flags, in ``/proc/cpuinfo`` spelling (lower case)."""
    info = _cpuinfo()
    return info[1] if info and info[1] else _numpy_flags()


def flags_known() -> bool:
    """Whether the full flag list was read (``/proc/cpuinfo``), not numpy's partial table."""
    info = _cpuinfo()
    return bool(info and info[1])


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def summary(have: frozenset[str] | None = None) -> list[str]:
    """The notable instruction sets this CPU has, e.g. ``["avx2", "fma", "avx512f", …]``."""
    have = flags() if have is None else have
    return [f for f in NOTABLE_FLAGS if f in have]


def missing_for(precision: str, have: frozenset[str] | None = None, x86: bool | None = None) -> str | None:
    """None if this CPU runs ``precision`` natively, else the instruction set(s) it lacks, e.g.
    ``"AVX512_BF16 or AMX-BF16"``. fp32 always runs; on non-x86 CPUs int8 runs (NEON dot-product
    kernels) and bf16 is not offered."""
    have = flags() if have is None else have
    x86 = is_x86() if x86 is None else x86
    if precision == "fp32":
        return None
    if precision == "bf16":
        need = BF16_FLAGS if x86 else ("an x86 CPU with AVX512_BF16 or AMX-BF16",)
    elif precision == "int8":
        if not x86:
            return None
        need = INT8_FLAGS
    else:
        raise ValueError(f"unknown precision {precision!r}")
    if any(f in have for f in need):
        return None
    return " or ".join(DISPLAY.get(f, f) for f in need)
