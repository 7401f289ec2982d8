"""similarity.cosine_per_frame: equal rows score exactly 1, the zero-row conventions hold."""

import numpy as np

from pqeval.similarity import cosine_per_frame


def test_equal_rows_score_exactly_one():
    """dot / (norm * norm) rounds to 0.9999999999999999 on many rows (OpenL3 gave that for a file against itself)."""
    rng = np.random.default_rng(0)
    a = np.abs(rng.standard_normal((500, 512)))  # OpenL3-like nonnegative embeddings
    b = rng.standard_normal((500, 128)) * 50  # VGGish-like
    for x in (a, b, a.astype(np.float32)):
        assert np.all(cosine_per_frame(x, x.copy()) == 1.0)


def test_conventions_kept():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 8))
    y = x.copy()
    y[1] = -x[1]
    y[2] *= 2.0  # proportional, not equal: the rounded cosine, within [-1, 1]
    x[3] = y[3] = 0.0  # two zero rows: 1
    cos = cosine_per_frame(x, y)
    assert cos[0] == 1.0 and cos[1] == -1.0 and abs(cos[2] - 1.0) < 1e-15 and cos[3] == 1.0
    z = np.zeros((1, 8))
    assert cosine_per_frame(z, x[:1])[0] == 0.0  # one zero row: 0
    inf = np.full((1, 8), np.inf)
    assert np.isnan(cosine_per_frame(inf, inf)[0])  # non-finite rows are not called equal
