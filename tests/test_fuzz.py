"""Property-based: whatever signal goes into the runtime API, only pqeval's own errors come out."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pqeval.audio import from_array
from pqeval.errors import PqevalError
from pqeval.scoring import ScoreOptions, Scorer

RATES = [8000, 11025, 12345, 16000, 22050, 44100, 44101, 48000, 96000]


@st.composite
def signals(draw):
    sr = draw(st.sampled_from(RATES))
    n = draw(st.integers(min_value=0, max_value=int(2.5 * sr)))
    ch = draw(st.integers(min_value=1, max_value=6))
    amp = draw(st.sampled_from([0.0, 1e-9, 1e-3, 0.5, 1.0, 40.0]))
    seed = draw(st.integers(0, 2**16))
    x = amp * np.random.default_rng(seed).standard_normal((n, ch))
    if n and draw(st.booleans()):
        x[draw(st.integers(0, n - 1)), 0] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return (x[:, 0] if ch == 1 and draw(st.booleans()) else x), sr


@pytest.fixture(scope="module")
def scorer(models_dir):
    import pqeval.session as session

    mp = pytest.MonkeyPatch()
    mp.setattr(session, "CHECKOUT_MODELS", models_dir)
    mp.setenv("PQEVAL_MODELS", str(models_dir))
    yield Scorer(ScoreOptions(metrics=("vggish", "pesq_wb", "pesq_nb", "stoi", "estoi")))
    mp.undo()


@settings(
    max_examples=int(__import__("os").environ.get("PQEVAL_FUZZ_EXAMPLES", 40)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(clean=signals(), degraded=signals())
def test_runtime_raises_only_pqeval_errors(scorer, clean, degraded):
    try:
        a = from_array(*clean, name="clean")
        b = from_array(*degraded, name="degraded")
        result = scorer.score(a, b)
    except PqevalError as e:
        assert str(e) and "\n" not in str(e)
        return
    for name, m in result.metrics.items():
        assert m.ok or m.reason, name  # NaN always comes with a reason
        if m.ok:
            assert math.isfinite(m.value)
            if name in ("stoi", "estoi"):
                assert m.value != 1e-5  # pystoi's placeholder is never reported as a score
