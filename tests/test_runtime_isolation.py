"""The runtime never imports the original frameworks."""

import json
import os
import subprocess
import sys

from helpers import HEAVY, ROOT, shared


def test_scoring_imports_no_framework(use_models):
    code = f"""
import json, sys
from pqeval.__main__ import main
sys.argv = ["pqeval", "score", {str(shared("pesq_speech.wav"))!r}, {str(shared("pesq_speech_bab_0dB.wav"))!r}, "--json"]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime"), "PQEVAL_MODELS": str(use_models)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    scored = json.loads("\n".join(lines[:-1]))
    assert scored["metrics"]["vggish"]["value"] is not None  # both models really ran
    assert scored["metrics"]["openl3"]["value"] is not None
    assert json.loads(lines[-1]) == []


def test_embedding_scores_import_no_slow_optional_module(use_models):
    """scipy.signal (~0.6 s to import) only for delay search above 32 kHz; openvino only with --engine openvino."""
    code = f"""
import sys
from pqeval.__main__ import main
sys.argv = ["pqeval", "score", {str(shared("pesq_speech.wav"))!r}, {str(shared("pesq_speech_bab_0dB.wav"))!r},
            "--metrics", "vggish,openl3", "--json"]
try:
    main()
except SystemExit:
    pass
print(sorted(m for m in ("scipy.signal", "openvino") if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime"), "PQEVAL_MODELS": str(use_models)}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"
