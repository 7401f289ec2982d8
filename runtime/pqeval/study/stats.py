"""Statistics of a results table: means per level with 95 % bootstrap confidence intervals, and
Pearson / Spearman correlations of each neural score with each classic score, with CIs.

Confidence intervals are seeded percentile bootstraps (:func:`bootstrap_ci`): resample the n
observations (pairs, for a correlation) with replacement B = :data:`BOOTSTRAP_RESAMPLES` times,
compute the statistic on each resample, and take its 2.5th and 97.5th percentiles. The
generator is ``np.random.default_rng(BOOTSTRAP_SEED)``, fresh for every interval, so a report is
reproducible and one interval does not depend on which were computed before it. Fewer than
:data:`MIN_CI_N` observations give a NaN interval with a reason. Values are in the metric's own
unit (see :data:`pqeval.registry.METRIC_UNITS`); coefficients are dimensionless in [-1, 1].
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..results import ResultRow
from .kinds import ALL_KINDS, LEVELS
from .table import CONTENT_ORDER, OVERALL, StudyTable, ordered

BOOTSTRAP_RESAMPLES = 5000
BOOTSTRAP_SEED = 0
CI_PERCENT = 95.0
#: Fewest observations (rows for a mean, pairs for a correlation) that get an interval.
MIN_CI_N = 3
#: Resamples drawn per block (bounds memory to CHUNK x n indices).
CHUNK = 1000
#: A correlation CI needs at least this fraction of resamples with a defined coefficient.
MIN_DEFINED_FRACTION = 0.5


@dataclass(frozen=True)
class Interval:
    """A confidence interval [low, high] (NaN, NaN with ``reason`` when not computed)."""

    low: float = math.nan
    high: float = math.nan
    reason: str = ""

    @property
    def finite(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def contains(self, v: float) -> bool:
        return self.finite and self.low <= v <= self.high


def _resample_blocks(n: int, resamples: int = BOOTSTRAP_RESAMPLES):
    """Index arrays of shape (≤CHUNK, n) drawn from one fresh ``default_rng(BOOTSTRAP_SEED)``."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    for start in range(0, resamples, CHUNK):
        yield rng.integers(0, n, size=(min(CHUNK, resamples - start), n))


def _percentiles(stats: np.ndarray) -> tuple[float, float]:
    tail = (100.0 - CI_PERCENT) / 2
    lo, hi = np.percentile(stats, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """95 % percentile-bootstrap CI of the mean of the finite ``values`` (1-D, any unit)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < MIN_CI_N:
        return Interval(reason=f"fewer than {MIN_CI_N} values (n={x.size})")
    means = np.concatenate([x[idx].mean(axis=1) for idx in _resample_blocks(x.size, resamples)])
    return Interval(*_percentiles(means))


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of (k, n) arrays; NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    r[den <= 0] = np.nan
    return np.clip(r, -1.0, 1.0)


def correlation_cis(x: np.ndarray, y: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[Interval, Interval]:
    """95 % paired percentile-bootstrap CIs of (Pearson r, Spearman ρ) of finite 1-D ``x``, ``y``.

    Resamples where either score is constant have no coefficient and are left out; when more
    than half are left out the interval is NaN with a reason.
    """
    from scipy.stats import rankdata

    n = int(x.size)
    if n < MIN_CI_N:
        none = Interval(reason=f"fewer than {MIN_CI_N} pairs (n={n})")
        return none, none
    pear, spear = [], []
    for idx in _resample_blocks(n, resamples):
        xs, ys = x[idx], y[idx]
        pear.append(_rowwise_pearson(xs, ys))
        spear.append(_rowwise_pearson(rankdata(xs, axis=1), rankdata(ys, axis=1)))
    out = []
    for stats in (np.concatenate(pear), np.concatenate(spear)):
        ok = stats[np.isfinite(stats)]
        if ok.size < MIN_DEFINED_FRACTION * stats.size:
            out.append(Interval(reason=f"only {ok.size} of {stats.size} resamples had non-constant scores"))
        else:
            out.append(Interval(*_percentiles(ok)))
    return out[0], out[1]


# --- means per level --------------------------------------------------------------------------


@dataclass(frozen=True)
class BarStat:
    """Mean of one group (metric unit), the count of finite values and the 95 % CI of the mean."""

    mean: float
    n: int
    ci: Interval


def bar_stat(values: Sequence[float]) -> BarStat:
    """:class:`BarStat` of the finite ``values``."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return BarStat(float(x.mean()) if x.size else math.nan, int(x.size), bootstrap_ci(x))


def group_stats(
    rows: Sequence[ResultRow], metric: str, key: Callable[[ResultRow], tuple[str, ...]]
) -> dict[tuple[str, ...], BarStat]:
    """Rows grouped by ``key(row)``: :class:`BarStat` of ``metric`` in each group."""
    groups: dict[tuple[str, ...], list[float]] = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r.values[metric])
    return {k: bar_stat(v) for k, v in groups.items()}


def pooled_by_content(rows: Sequence[ResultRow], metric: str) -> dict[tuple[str, ...], BarStat]:
    """(content, degradation, level) -> mean over files of each file's mean, CI across files."""
    per_file: dict[tuple[str, ...], list[float]] = {}
    for (_file, content, deg, level), s in group_stats(
        rows, metric, lambda r: (r.file, r.content, r.degradation, r.level)
    ).items():
        per_file.setdefault((content, deg, level), []).append(s.mean)
    return {k: bar_stat(v) for k, v in per_file.items()}


@dataclass
class SummaryRow:
    """Mean (metric unit), finite count and 95 % CI per level for one content x metric x degradation."""

    content: str
    metric: str
    degradation: str
    means: dict[str, float]
    counts: dict[str, int]
    cis: dict[str, Interval] = field(default_factory=dict)

    @property
    def change(self) -> float:
        """mean(extreme) - mean(low): the range from low to extreme (negative when the score falls)."""
        return self.means["extreme"] - self.means["low"]

    @property
    def n(self) -> int:
        return sum(self.counts.values())


def summarize(rows: Sequence[ResultRow], metrics: Sequence[str]) -> list[SummaryRow]:
    """Per content type x metric x degradation: mean, count and CI of finite values at each level."""
    present = {(r.content, r.degradation) for r in rows}
    stats = {m: group_stats(rows, m, lambda r: (r.content, r.degradation, r.level)) for m in metrics}
    empty = bar_stat([])
    out = []
    for content in ordered((r.content for r in rows), CONTENT_ORDER):
        for m in metrics:
            for deg in ordered((r.degradation for r in rows), ALL_KINDS):
                if (content, deg) not in present:
                    continue
                per = {lv: stats[m].get((content, deg, lv), empty) for lv in LEVELS}
                out.append(
                    SummaryRow(
                        content,
                        m,
                        deg,
                        {lv: s.mean for lv, s in per.items()},
                        {lv: s.n for lv, s in per.items()},
                        {lv: s.ci for lv, s in per.items()},
                    )
                )
    return out


# --- correlations ---------------------------------------------------------------------------


@dataclass
class Correlation:
    """Pearson and Spearman of one neural score with one classic score over one content group.

    Coefficients and p-values are NaN when they cannot be computed; ``reason`` then says why
    (it may also carry a scipy caveat for a valid coefficient). ``n`` counts the rows used.
    ``pearson_ci`` / ``spearman_ci``: 95 % bootstrap CIs; ``weights_note``: provenance caveat;
    ``content_note``: the speech-measure caveat for music.
    """

    content: str
    neural: str
    classic: str
    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    reason: str = ""
    weights_note: str = ""
    pearson_ci: Interval = field(default_factory=Interval)
    spearman_ci: Interval = field(default_factory=Interval)
    content_note: str = ""


def _finite_pairs(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(xa) & np.isfinite(ya)
    return xa[keep], ya[keep]


def correlate(x: Sequence[float], y: Sequence[float]) -> tuple[int, float, float, float, float, str]:
    """(n, pearson r, p, spearman rho, p, reason) over the pairs where both are finite.

    Fewer than 3 pairs or a constant input give NaN coefficients and a reason; scipy's warnings
    never escape (a caveat for a valid coefficient goes into the reason)."""
    from scipy import stats

    xa, ya = _finite_pairs(x, y)
    n = int(xa.size)
    nan = math.nan
    if n < 3:
        return n, nan, nan, nan, nan, f"fewer than 3 complete pairs (n={n})"
    constant = [name for name, a in (("neural", xa), ("classic", ya)) if np.ptp(a) == 0]
    if constant:
        return n, nan, nan, nan, nan, f"constant input ({' and '.join(constant)} score identical in all {n} pairs)"
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        pr = stats.pearsonr(xa, ya)
        sr = stats.spearmanr(xa, ya)
    vals = [float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue)]
    vals = [v if math.isfinite(v) else nan for v in vals]
    reason = "; ".join(dict.fromkeys(str(w.message).splitlines()[0] for w in caught))
    if not math.isfinite(vals[0]) and not reason:
        reason = "scipy returned NaN"
    return n, vals[0], vals[1], vals[2], vals[3], reason


def correlation(
    x: Sequence[float], y: Sequence[float]
) -> tuple[tuple[int, float, float, float, float, str], Interval, Interval]:
    """:func:`correlate` and the bootstrap CIs of r and ρ (NaN with the same reason when r is)."""
    res = correlate(x, y)
    if not math.isfinite(res[1]):
        none = Interval(reason=res[5])
        return res, none, none
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        pci, sci = correlation_cis(*_finite_pairs(x, y))
    return res, pci, sci


def correlations(table: StudyTable) -> list[Correlation]:
    """Each neural x classic pair, overall ('all') and per content type."""
    from ..provenance import Provenance

    out = []
    for content in [OVERALL, *table.contents]:
        group = table.rows if content == OVERALL else [r for r in table.rows if r.content == content]
        for nm in table.neural:
            notes = (Provenance.parse(w).note for w in table.provenance[nm] if w)
            note = "; ".join(dict.fromkeys(n for n in notes if n)) or table.caveats[nm]
            for cm in table.classic:
                res, pci, sci = correlation([g.values[nm] for g in group], [g.values[cm] for g in group])
                out.append(
                    Correlation(
                        content,
                        nm,
                        cm,
                        *res,
                        weights_note=note,
                        pearson_ci=pci,
                        spearman_ci=sci,
                        content_note=table.content_caveat(content, cm),
                    )
                )
    return out
