"""Two policies: exact tests and the interval of the difference in success rates.

* Unpaired trials: Boschloo's (1970) exact unconditional test, uniformly more powerful than
  Fisher's (1935) exact test but O(n^2) in the trials per arm, so it is used only for small
  arms (``BOSCHLOO_MAX_TRIALS_PER_ARM``) and Fisher above. The difference in rates gets
  Newcombe's (1998) hybrid score interval (his method 10).
* Paired trials (matched initial conditions): McNemar's (1947) test in its exact form, a
  two-sided binomial test on the discordant pairs.

The exact tests are cached by counts (``cached_fisher_p``, ``cached_boschloo_p``).

References
    Boschloo, R. D. (1970). Raised conditional level of significance for the 2x2-table when
        testing the equality of two probabilities. Statistica Neerlandica 24(1), 1-9.
    Fisher, R. A. (1935). The Design of Experiments. Oliver & Boyd.
    McNemar, Q. (1947). Note on the sampling error of the difference between correlated
        proportions or percentages. Psychometrika 12(2), 153-157.
    Newcombe, R. G. (1998). Interval estimation for the difference between independent
        proportions: comparison of eleven methods. Statist. Med. 17(8), 873-890.
"""

from __future__ import annotations

import dataclasses
import math
from functools import lru_cache

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    as_count,
    check_counts,
    check_probability_level,
    sps,
)
from proving_ground.stats.intervals import wilson_bounds, z_two_sided

# scipy's Boschloo costs O(n^2) in the trials per arm (bench/bench_stats.py: ~7 ms at n=50,
# ~50 ms at n=100, 0.24 s at n=200, 2.9 s at n=500). At 100 a 20-policy leaderboard's 190
# pairs take about 10 s (cached by counts, in a background job); above it Fisher, under 1 ms
# at any n, is used.
BOSCHLOO_MAX_TRIALS_PER_ARM = 100
# scipy.stats.boschloo_exact's sampling points for the nuisance parameter (its default).
_BOSCHLOO_GRID_POINTS = 32
_EXACT_TEST_CACHE_SIZE = 4096

_ALTERNATIVES = ("two-sided", "greater", "less")


def _check_alternative(alternative: str) -> str:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    return alternative


def fisher_exact(
    a_successes: int,
    a_trials: int,
    b_successes: int,
    b_trials: int,
    alternative: str = "two-sided",
) -> float:
    """Fisher's (1935) exact test that policies A and B have the same success rate.

    ``alternative="greater"`` tests H1: p_A > p_B, ``"less"`` H1: p_A < p_B. Conditional on
    both margins, so conservative at small n; see ``boschloo_exact``. Returns a p-value in
    [0, 1]. Results are cached by counts. 18/20 vs 10/20: two-sided p = 0.0138.
    """
    a_k, a_n = check_counts(a_successes, a_trials, "A")
    b_k, b_n = check_counts(b_successes, b_trials, "B")
    return cached_fisher_p(a_k, a_n, b_k, b_n, _check_alternative(alternative))


@lru_cache(maxsize=_EXACT_TEST_CACHE_SIZE)
def cached_fisher_p(a_k: int, a_n: int, b_k: int, b_n: int, alternative: str) -> float:
    """`fisher_exact` on counts already checked, cached by counts (``cache_info()``,
    ``cache_clear()``)."""
    table = [[a_k, a_n - a_k], [b_k, b_n - b_k]]
    return float(sps.fisher_exact(table, alternative=alternative).pvalue)


def boschloo_exact(
    a_successes: int,
    a_trials: int,
    b_successes: int,
    b_trials: int,
    alternative: str = "two-sided",
) -> float:
    """Boschloo's (1970) exact unconditional test that A and B have the same success rate.

    Uses Fisher's p-value as the statistic and maximises over the common rate (scipy, 32
    grid points), so it is never less powerful than Fisher. ``"greater"`` is H1: p_A > p_B.
    Cost is O(n^2) in the trials per arm (about 3 s at 500 per arm); results are cached by
    counts. Returns a p-value in [0, 1]. 18/20 vs 10/20: two-sided p = 0.0066.
    """
    a_k, a_n = check_counts(a_successes, a_trials, "A")
    b_k, b_n = check_counts(b_successes, b_trials, "B")
    return cached_boschloo_p(a_k, a_n, b_k, b_n, _check_alternative(alternative))


@lru_cache(maxsize=_EXACT_TEST_CACHE_SIZE)
def cached_boschloo_p(a_k: int, a_n: int, b_k: int, b_n: int, alternative: str) -> float:
    """`boschloo_exact` on counts already checked, cached by counts (``cache_info()``,
    ``cache_clear()``)."""
    # scipy wants the samples as COLUMNS: [[s_A, s_B], [f_A, f_B]]. Passing the row-oriented
    # table silently tests something else (see the reference vectors' PITFALL field).
    table = [[a_k, b_k], [a_n - a_k, b_n - b_k]]
    result = sps.boschloo_exact(table, alternative=alternative, n=_BOSCHLOO_GRID_POINTS)
    p_value = float(result.pvalue)
    return 1.0 if math.isnan(p_value) else min(1.0, p_value)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """McNemar's (1947) exact test on paired trials, from the discordant pairs.

    ``a_only`` counts pairs where only A succeeded, ``b_only`` where only B did. Under H0
    each discordant pair favours A with probability 1/2, so this is the two-sided binomial
    test of ``a_only`` out of ``a_only + b_only``. Returns a p-value in [0, 1]; 1.0 when
    there are no discordant pairs. 9 vs 2: p = 0.0654.
    """
    a = as_count(a_only, "a_only")
    b = as_count(b_only, "b_only")
    return _mcnemar_p(a, b)


@lru_cache(maxsize=_EXACT_TEST_CACHE_SIZE)
def _mcnemar_p(a: int, b: int) -> float:
    if a + b == 0:
        return 1.0
    return float(sps.binomtest(a, a + b, 0.5).pvalue)


def newcombe_difference_interval(
    a_successes: int,
    a_trials: int,
    b_successes: int,
    b_trials: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float]:
    """Newcombe's (1998) hybrid score interval (method 10) for p_A - p_B.

    Combines the two Wilson intervals: ``low = d - sqrt((p_A - l_A)^2 + (u_B - p_B)^2)``,
    ``high = d + sqrt((u_A - p_A)^2 + (p_B - l_B)^2)``. Returns ``(low, high)`` within
    [-1, 1], containing d = p_A - p_B. 18/20 vs 10/20: (0.1159, 0.6133).
    """
    a_k, a_n = check_counts(a_successes, a_trials, "A")
    b_k, b_n = check_counts(b_successes, b_trials, "B")
    z = z_two_sided(check_probability_level(confidence, "confidence"))
    p_a, p_b = a_k / a_n, b_k / b_n
    l_a, u_a = wilson_bounds(a_k, a_n, z)
    l_b, u_b = wilson_bounds(b_k, b_n, z)
    d = p_a - p_b
    low = d - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    high = d + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    return max(-1.0, low), min(1.0, high)


def _unpaired_test_name(a_n: int, b_n: int, test: str) -> str:
    if test == "auto":
        small = max(a_n, b_n) <= BOSCHLOO_MAX_TRIALS_PER_ARM
        return "boschloo" if small else "fisher"
    if test in ("boschloo", "fisher"):
        return test
    raise ValueError(f"test must be 'auto', 'boschloo' or 'fisher', got {test!r}")


def _unpaired_p(a_k: int, a_n: int, b_k: int, b_n: int, test: str) -> float:
    if test == "boschloo":
        return cached_boschloo_p(a_k, a_n, b_k, b_n, "two-sided")
    return cached_fisher_p(a_k, a_n, b_k, b_n, "two-sided")


@dataclasses.dataclass(frozen=True)
class TwoPolicyComparison(Result):
    """A vs B on unpaired trials. ``difference`` = p_A - p_B in [-1, 1] with its Newcombe
    interval; ``p_value`` in [0, 1] from ``test`` ("boschloo" or "fisher"), two-sided."""

    a_successes: int
    a_trials: int
    b_successes: int
    b_trials: int
    difference: float
    difference_low: float
    difference_high: float
    p_value: float
    test: str
    confidence: float


def compare_two_policies(
    a_successes: int,
    a_trials: int,
    b_successes: int,
    b_trials: int,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    test: str = "auto",
) -> TwoPolicyComparison:
    """Difference in success rates with its interval and an exact two-sided test.

    ``test="auto"`` uses Boschloo when both arms have at most ``BOSCHLOO_MAX_TRIALS_PER_ARM``
    trials and Fisher otherwise; ``"boschloo"`` or ``"fisher"`` force one.
    """
    a_k, a_n = check_counts(a_successes, a_trials, "A")
    b_k, b_n = check_counts(b_successes, b_trials, "B")
    name = _unpaired_test_name(a_n, b_n, test)
    low, high = newcombe_difference_interval(a_k, a_n, b_k, b_n, confidence)
    return TwoPolicyComparison(
        a_successes=a_k,
        a_trials=a_n,
        b_successes=b_k,
        b_trials=b_n,
        difference=a_k / a_n - b_k / b_n,
        difference_low=low,
        difference_high=high,
        p_value=_unpaired_p(a_k, a_n, b_k, b_n, name),
        test=name,
        confidence=float(confidence),
    )
