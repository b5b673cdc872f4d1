"""Intervals for the figures that had none: the mean stage score, the interquartile mean and
the gap between the best and the worst condition.

- ``stage_score_interval``: stage scores are partial credit in [0, 1], often piled up at 0
  and 1, at n of ten to fifty. A t interval collapses to zero width when every score is the
  same (ten full successes give [1, 1], the Wald failure again) and undercovers for skewed
  scores. Any variable in [0, 1] with mean mu has variance at most mu (1 - mu), with equality
  for 0/1 scores, so the Wilson (1927) score interval computed from the mean (k = n * mean)
  is a score interval under that worst-case variance: never degenerate, inside [0, 1], equal
  to the cell's Wilson interval when the scores are 0/1, and conservative (wider than
  needed) when the scores spread inside (0, 1). Its coverage is measured in
  ``bench/bench_coverage.py``.
- ``iqm_interval``: a percentile bootstrap of the interquartile mean (resampling the scores
  with replacement, as Agarwal et al. 2021 do for IQM), 10,000 resamples, seeded from the
  sorted scores, so the same scores always give the same interval.
- ``best_minus_worst_interval``: the gap max_g p_g - min_g p_g between the best and the
  worst condition's true rates. Picking the best and the worst *observed* conditions and
  putting a two-sample interval (Newcombe) on that pair ignores the selection: the observed
  extremes are extreme partly by chance, so such an interval is biased outward, and with
  equal true rates it almost never contains the true gap 0. Instead the gap is bounded from
  the simultaneous Bonferroni Clopper-Pearson intervals of ``robustness_summary``: when all
  m intervals [L_g, U_g] hold (probability >= confidence), max p lies in [max L, max U] and
  min p in [min L, min U], so the gap lies in [max(0, max L - min U), max U - min L]. Valid
  whichever conditions are the extremes; the price is width (each condition at level
  1 - alpha/m).

References
    Agarwal, R. et al. (2021). Deep reinforcement learning at the edge of the statistical
        precipice. NeurIPS 34.
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
        inference. JASA 22(158), 209-212.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from proving_ground.stats.aggregates import DEFAULT_BOOTSTRAP_RESAMPLES, interquartile_mean
from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    check_counts,
    check_probability_level,
    check_resamples,
    seeded_rng,
)
from proving_ground.stats.intervals import wilson_bounds, z_two_sided
from proving_ground.stats.robustness import simultaneous_bounds

# Bootstrap replicates are drawn in blocks of at most this many values (resamples x n), so
# memory stays bounded (16 MB of float64) whatever the number of scores.
_BLOCK_VALUES = 2_000_000


@dataclasses.dataclass(frozen=True)
class EstimateInterval(Result):
    """A figure with its interval: ``low <= estimate <= high``. ``size`` is the n behind it
    (scores for a mean or IQM, conditions for a gap); ``method`` names the interval."""

    estimate: float
    low: float
    high: float
    size: int
    confidence: float
    method: str


def _check_scores(scores: Sequence[float], *, unit: bool) -> np.ndarray:
    values = np.asarray(list(scores), dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("needs at least one score")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite numbers (no NaN or infinity)")
    if unit and (values.min() < 0.0 or values.max() > 1.0):
        raise ValueError("stage scores must lie in [0, 1]")
    return values


def stage_score_interval(
    scores: Sequence[float], confidence: float = DEFAULT_CONFIDENCE
) -> EstimateInterval:
    """The mean of stage scores in [0, 1] with a Wilson score interval under the worst-case
    variance mu (1 - mu) (see the module docstring). Scores 1, 1, 0.5, 0 at 95%: mean 0.625,
    interval (0.219, 0.908). Raises ``ValueError`` on no scores, NaN or a score outside
    [0, 1]."""
    values = _check_scores(scores, unit=True)
    level = check_probability_level(confidence, "confidence")
    n = values.size
    mean = float(values.mean())
    total = min(float(n), max(0.0, mean * n))
    low, high = wilson_bounds(total, n, z_two_sided(level))
    return EstimateInterval(
        estimate=mean,
        low=min(low, mean),
        high=max(high, mean),
        size=n,
        confidence=level,
        method="wilson-bounded-mean",
    )


def iqm_interval(
    scores: Sequence[float],
    confidence: float = DEFAULT_CONFIDENCE,
    *,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
) -> EstimateInterval:
    """The interquartile mean with a seeded percentile bootstrap interval.

    The scores are resampled with replacement ``resamples`` times; the interval is the
    (alpha/2, 1 - alpha/2) quantile of the replicates' IQMs, widened to contain the IQM. The
    seed is a SHA-256 of the sorted scores, so the order of the scores does not matter and
    the same scores give the same interval. Needs at least two scores; identical scores give
    a zero-width interval (nothing varies to resample)."""
    values = _check_scores(scores, unit=False)
    if values.size < 2:
        raise ValueError("an IQM interval needs at least two scores")
    level = check_probability_level(confidence, "confidence")
    count = check_resamples(resamples)
    ordered = np.sort(values)
    rng = seeded_rng("iqm_interval", [float(value) for value in ordered])
    n = ordered.size
    cut = int(0.25 * n)
    replicates = np.empty(count)
    block = max(1, _BLOCK_VALUES // n)
    for start in range(0, count, block):
        stop = min(count, start + block)
        draws = np.sort(ordered[rng.integers(0, n, size=(stop - start, n))], axis=1)
        replicates[start:stop] = draws[:, cut : n - cut].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = (float(bound) for bound in np.quantile(replicates, [tail, 1.0 - tail]))
    estimate = interquartile_mean(ordered)
    return EstimateInterval(
        estimate=estimate,
        low=min(low, estimate),
        high=max(high, estimate),
        size=n,
        confidence=level,
        method="percentile-bootstrap",
    )


def best_minus_worst_interval(
    cells: Mapping[str, tuple[int, int]] | Sequence[tuple[int, int]],
    confidence: float = DEFAULT_CONFIDENCE,
) -> EstimateInterval:
    """The gap between the best and the worst condition's rates, with an interval that holds
    at ``confidence`` whichever conditions are the extremes (see the module docstring).

    ``cells`` is (successes, trials) per condition, as a mapping or a sequence; at least two.
    The estimate is the observed max rate - min rate, as ``robustness_summary``'s
    ``best_minus_worst``; the bounds are [max(0, max L - min U), max U - min L] over the
    Bonferroni Clopper-Pearson intervals. 18/20 vs 9/20 at 95%: 0.45, (0.0, 0.785): wide,
    the price of validity whichever pair is the extreme one."""
    counted = list(cells.values()) if isinstance(cells, Mapping) else list(cells)
    checked = [
        check_counts(*cell, label=f"condition {index}") for index, cell in enumerate(counted)
    ]
    if len(checked) < 2:
        raise ValueError("a best-minus-worst gap needs at least two conditions")
    level = check_probability_level(confidence, "confidence")
    bounds = [simultaneous_bounds(k, n, len(checked), level) for k, n in checked]
    lows = [low for low, _ in bounds]
    highs = [high for _, high in bounds]
    rates = [k / n for k, n in checked]
    estimate = max(rates) - min(rates)
    return EstimateInterval(
        estimate=estimate,
        low=min(estimate, max(0.0, max(lows) - min(highs))),
        high=max(estimate, max(highs) - min(lows)),
        size=len(checked),
        confidence=level,
        method="bonferroni-clopper-pearson",
    )
