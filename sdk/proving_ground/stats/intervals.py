"""One cell, k successes in n trials: intervals for a binomial proportion.

The Wilson (1927) score interval keeps close to its nominal coverage at small n and never
leaves [0, 1], unlike the Wald interval. For certification ("at least 80% with 95%
confidence") the one-sided Clopper & Pearson (1934) bound, which is exact: its coverage is
never below nominal.

References
    Clopper, C. J. & Pearson, E. S. (1934). The use of confidence or fiducial limits
        illustrated in the case of the binomial. Biometrika 26(4), 404-413.
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
        inference. JASA 22(158), 209-212.
"""

from __future__ import annotations

import dataclasses
import math

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    check_counts,
    check_probability_level,
    sps,
)


def z_two_sided(confidence: float) -> float:
    """The standard normal quantile z with P(-z < Z < z) = `confidence` (1.96 at 0.95)."""
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(
    successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Wilson (1927) score interval for a success rate.

    Returns ``(low, high)`` with ``0 <= low <= k/n <= high <= 1``; ``low`` is exactly 0 when
    k = 0 and ``high`` exactly 1 when k = n. 7/10 at 95% gives (0.3968, 0.8922).
    Raises ``ValueError`` on 0 trials, negative counts or k > n.
    """
    k, n = check_counts(successes, trials)
    z = z_two_sided(check_probability_level(confidence, "confidence"))
    return wilson_bounds(k, n, z)


def wilson_bounds(k: float, n: float, z: float) -> tuple[float, float]:
    """The Wilson interval of k/n at normal quantile `z`, unchecked; k and n may be
    fractional (an effective sample size). Within [0, 1] and containing k/n."""
    rate = k / n
    z2 = z * z
    centre = (k + z2 / 2.0) / (n + z2)
    half_width = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4.0)
    low = 0.0 if k == 0 else min(rate, max(0.0, centre - half_width))
    high = 1.0 if k == n else max(rate, min(1.0, centre + half_width))
    return low, high


def clopper_pearson_interval(
    successes: int,
    trials: int,
    confidence: float = DEFAULT_CONFIDENCE,
    side: str = "two-sided",
) -> tuple[float, float] | float:
    """Clopper & Pearson (1934) exact interval from beta quantiles.

    ``side="two-sided"`` returns ``(low, high)`` (alpha/2 in each tail); ``"lower"`` returns
    the one-sided lower bound L with P(p >= L) >= confidence, for certification ("the rate is
    at least L"); ``"upper"`` the one-sided upper bound. Bounds lie in [0, 1]; the lower bound
    is 0 when k = 0, the upper 1 when k = n. 7/10 two-sided: (0.3475, 0.9333).
    """
    k, n = check_counts(successes, trials)
    level = check_probability_level(confidence, "confidence")
    alpha = 1.0 - level
    if side == "two-sided":
        return _cp_lower(k, n, alpha / 2.0), _cp_upper(k, n, alpha / 2.0)
    if side == "lower":
        return _cp_lower(k, n, alpha)
    if side == "upper":
        return _cp_upper(k, n, alpha)
    raise ValueError(f"side must be 'two-sided', 'lower' or 'upper', got {side!r}")


def _cp_lower(k: int, n: int, tail: float) -> float:
    return 0.0 if k == 0 else float(sps.beta.ppf(tail, k, n - k + 1))


def _cp_upper(k: int, n: int, tail: float) -> float:
    return 1.0 if k == n else float(sps.beta.ppf(1.0 - tail, k + 1, n - k))


@dataclasses.dataclass(frozen=True)
class CellSummary(Result):
    """One leaderboard cell: k/n, its Wilson interval and a certified lower bound.

    ``rate``, ``wilson_low``, ``wilson_high`` and ``certified_lower_bound`` are in [0, 1];
    ``certified_lower_bound`` is the one-sided Clopper-Pearson bound at ``confidence``.
    """

    successes: int
    trials: int
    rate: float
    wilson_low: float
    wilson_high: float
    certified_lower_bound: float
    confidence: float


def cell_summary(
    successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE
) -> CellSummary:
    """Everything a leaderboard cell shows. 7/10 at 95%: rate 0.7, Wilson (0.397, 0.892),
    certified lower bound 0.393 (one-sided Clopper-Pearson)."""
    k, n = check_counts(successes, trials)
    low, high = wilson_interval(k, n, confidence)
    lower_bound = clopper_pearson_interval(k, n, confidence, side="lower")
    return CellSummary(
        successes=k,
        trials=n,
        rate=k / n,
        wilson_low=low,
        wilson_high=high,
        certified_lower_bound=float(lower_bound),  # type: ignore[arg-type]
        confidence=float(confidence),
    )
