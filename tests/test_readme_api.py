"""The README's "Python API" section runs as written: every ```python block in it, in a folder
where ``clean.wav`` and ``degraded.wav`` exist (real speech and the same speech with babble
noise), with the tiny models; and the one-liner ``python -c "import pqeval; ..."`` in a fresh
interpreter.

Runtime tier: nothing here imports torch or TensorFlow.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ENV_PATH, ROOT, shared

SECTION = "## Python API"


def section_python_blocks(text: str, heading: str = SECTION) -> list[str]:
    """The ```python blocks between ``heading`` and the next ``## `` heading (headings inside a
    fenced block do not count). AssertionError if the README has no such section."""
    lines = text.splitlines()
    in_fence, in_section, found = False, False, False
    blocks: list[str] = []
    block: list[str] | None = None
    for line in lines:
        if line.startswith("```"):
            if in_section and not in_fence and line.strip() == "```python":
                block = []
            elif in_section and in_fence and block is not None:
                blocks.append("\n".join(block) + "\n")
                block = None
            in_fence = not in_fence
            continue
        if in_fence:
            if block is not None:
                block.append(line)
            continue
        if line.rstrip() == heading:
            in_section = found = True
        elif line.startswith("## "):
            in_section = False
    assert found, f"README.md has no {heading!r} section"
    assert not in_fence, "README.md ends inside a fenced block"
    return blocks


def test_section_parser():
    text = (
        "# t\n## Python API\nx\n```python\na = 1\n## not a heading\n```\n```sh\nls\n```\n## Next\n```python\nb\n```\n"
    )
    assert section_python_blocks(text) == ["a = 1\n## not a heading\n"]
    with pytest.raises(AssertionError, match="no '## Python API' section"):
        section_python_blocks("# t\n## Usage\n```python\na\n```\n")


README_BLOCKS = section_python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_section_has_python_blocks():
    assert README_BLOCKS, "the README's Python API section has no ```python block to run"


@pytest.fixture()
def pair_dir(tmp_path, use_models, monkeypatch):
    """A working folder with clean.wav (real speech, 16 kHz) and degraded.wav (the same speech
    with babble noise at 0 dB SNR), the tiny models in use."""
    shutil.copy(shared("pesq_speech.wav"), tmp_path / "clean.wav")
    shutil.copy(shared("pesq_speech_bab_0dB.wav"), tmp_path / "degraded.wav")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("index", range(len(README_BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_readme_python_block_runs(pair_dir, index, capsys):
    code = compile(README_BLOCKS[index], f"README.md ({SECTION}, python block {index + 1})", "exec")
    exec(code, {"__name__": "__readme__"})  # each block stands alone: its own imports and names
    assert capsys.readouterr().out  # every block shows its result


def test_one_liner_in_a_fresh_interpreter(pair_dir, use_models):
    shutil.copy(pair_dir / "clean.wav", pair_dir / "a.wav")
    shutil.copy(pair_dir / "degraded.wav", pair_dir / "b.wav")
    env = {**os.environ, "PYTHONPATH": ENV_PATH, "PQEVAL_MODELS": str(use_models)}
    code = "import pqeval; print(pqeval.score('a.wav', 'b.wav').as_dict())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=pair_dir, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    got = ast.literal_eval(p.stdout)
    import pqeval

    want = pqeval.score("a.wav", "b.wav").as_dict()
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)
    assert (got["clean"], got["degraded"]) == ("a.wav", "b.wav")
    assert all(m["value"] is not None for m in got["metrics"].values()), got["metrics"]
