"""The names of the degradation kinds and levels, in table order (no dependencies, so the report
can order its rows without importing the signal processing of :mod:`pqeval.study.degrade`)."""

from __future__ import annotations

LEVELS: tuple[str, ...] = ("low", "high", "extreme")
STUDY_KINDS: tuple[str, ...] = ("noise", "bitrate", "bitdepth")
EXTRA_KINDS: tuple[str, ...] = ("clipping", "reverb")
CODEC_KINDS: tuple[str, ...] = ("mp3", "vorbis", "opus")
ALL_KINDS: tuple[str, ...] = STUDY_KINDS + EXTRA_KINDS + CODEC_KINDS
