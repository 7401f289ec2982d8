"""What a recording holds, from its file name: speech, music, env(ironmental) or unknown."""

from __future__ import annotations

import re

CONTENT_TYPES: tuple[str, ...] = ("speech", "music", "env")
#: content type -> words in a file name that mark it
CONTENT_WORDS: dict[str, frozenset[str]] = {
    "speech": frozenset({"speech", "voice"}),
    "music": frozenset({"music", "song"}),
    "env": frozenset({"env", "environment", "environmental"}),
}


def content_of(stem: str) -> str:
    """speech / music / env from a file name's words (``speech_libri_198_f`` -> speech), else unknown."""
    words = set(re.split(r"[^a-z]+", stem.lower()))
    for content, marks in CONTENT_WORDS.items():
        if words & marks:
            return content
    return "unknown"
