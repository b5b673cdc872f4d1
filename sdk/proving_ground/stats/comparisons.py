"""Statistics behind every leaderboard figure: success rates, comparisons, rankings.

Robot evaluations are small: ten to fifty trials per cell, a handful of policies, outcomes
that are successes or failures. Normal approximations fail exactly where we live (rates near
0 or 1, n below 30), so every figure here is exact or has a small-sample justification, and
every figure is reproducible from its counts. This module is pure numpy/scipy so the same code
runs on the server, in a notebook and on a robot; it never imports Django.

Methods and why (the full spec, with worked examples, is ``docs/statistics.md``):

* One cell, k successes in n trials: the Wilson (1927) score interval. It keeps close to its
  nominal coverage at small n and never leaves [0, 1], unlike the Wald interval. For
  certification ("at least 80% with 95% confidence") the one-sided Clopper & Pearson (1934)
  bound, which is exact: its coverage is never below nominal.
* Two policies, unpaired trials: Boschloo's (1970) exact unconditional test, uniformly more
  powerful than Fisher's (1935) exact test but O(n^2) in the trials per arm, so it is used
  only for small arms (``BOSCHLOO_MAX_TRIALS_PER_ARM``) and Fisher above. The difference in
  rates gets Newcombe's (1998) hybrid score interval (his method 10).
* Two policies, paired trials (matched initial conditions): McNemar's (1947) test in its
  exact form, a two-sided binomial test on the discordant pairs.
* Many policies: all pairwise tests, Holm's (1979) step-down adjustment (controls the
  family-wise error at alpha with no independence assumption), and a compact letter display
  by Piepho's (2004) insert-absorb algorithm: policies sharing a letter are not significantly
  different.
* Aggregates: the macro average over cells with a percentile bootstrap (Efron 1979),
  stratified by cell. Because a cell's trials are Bernoulli, resampling its n trials with
  replacement is the same as drawing k* ~ Binomial(n, k/n), so the bootstrap is one vectorised
  binomial draw per cell. The seed is a SHA-256 of the counts: the same data always gives the
  same interval. Rank intervals come from the same kind of bootstrap. The interquartile mean
  (Agarwal et al. 2021) is the 25%-trimmed mean.
* Preferences (A/B sessions): the Bradley & Terry (1952) model by maximum likelihood; a tie
  counts half a win to each side (the convention of Chatbot Arena's FastChat code; Davidson's
  1970 tie model uses the same sufficient statistic, wins + ties / 2). The MLE exists only if
  the "has beaten" graph is strongly connected (Ford 1957); otherwise we raise.
* Sequential A/B on paired trials: a uniform-prior mixture martingale on the discordant pairs
  (Robbins 1970). By Ville's (1939) inequality it may be checked after every pair and stopped
  at any time with type I error at most alpha (Howard et al. 2021; Ramdas et al. 2023). The
  SAVI e-process of Turner & Grünwald (2023) is provided for independent streams.
* Robustness: per-condition rates and the worst condition with a simultaneous interval
  (Bonferroni-adjusted Wilson); Pearson's chi-square test of homogeneity across conditions.
* Planning: trials per policy to detect a difference, from Cohen's (1988) effect size h.

Conventions. Counts are Python or numpy integers; a rate needs at least one trial, so 0/0
raises ``ValueError`` (a cell with no trials has no rate to show, and silently returning the
vacuous [0, 1] would hide a scheduling bug). Probabilities and bounds are floats in [0, 1].
Every result object is a frozen dataclass with ``to_dict()`` returning JSON-ready data.

References
    Agarwal, R. et al. (2021). Deep reinforcement learning at the edge of the statistical
        precipice. NeurIPS 34.
    Boschloo, R. D. (1970). Raised conditional level of significance for the 2x2-table when
        testing the equality of two probabilities. Statistica Neerlandica 24(1), 1-9.
    Bradley, R. A. & Terry, M. E. (1952). Rank analysis of incomplete block designs I.
        Biometrika 39(3/4), 324-345.
    Clopper, C. J. & Pearson, E. S. (1934). The use of confidence or fiducial limits
        illustrated in the case of the binomial. Biometrika 26(4), 404-413.
    Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed., ch. 6.
    Davidson, R. R. (1970). On extending the Bradley-Terry model to accommodate ties in paired
        comparison experiments. JASA 65(329), 317-328.
    Efron, B. (1979). Bootstrap methods: another look at the jackknife. Ann. Statist. 7(1).
    Fisher, R. A. (1935). The Design of Experiments. Oliver & Boyd.
    Ford, L. R. (1957). Solution of a ranking problem from binary comparisons. Amer. Math.
        Monthly 64(8), 28-33.
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J.
        Statist. 6(2), 65-70.
    Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021). Time-uniform, nonparametric,
        nonasymptotic confidence sequences. Ann. Statist. 49(2), 1055-1080.
    McNemar, Q. (1947). Note on the sampling error of the difference between correlated
        proportions or percentages. Psychometrika 12(2), 153-157.
    Newcombe, R. G. (1998). Interval estimation for the difference between independent
        proportions: comparison of eleven methods. Statist. Med. 17(8), 873-890.
    Piepho, H.-P. (2004). An algorithm for a letter-based representation of all-pairwise
        comparisons. J. Comput. Graph. Statist. 13(2), 456-466.
    Ramdas, A., Grünwald, P., Vovk, V. & Shafer, G. (2023). Game-theoretic statistics and
        safe anytime-valid inference. Statist. Sci. 38(4), 576-601.
    Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
        Ann. Math. Statist. 41(5), 1397-1409.
    Turner, R. J. & Grünwald, P. D. (2023). Exact anytime-valid confidence intervals for
        contingency tables and beyond. Statist. Probab. Lett. 198, 109835.
    Ville, J. (1939). Étude critique de la notion de collectif. Gauthier-Villars.
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
        inference. JASA 22(158), 209-212.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np


class _ImportedOnUse:
    """A module imported the first time one of its names is used. scipy.stats costs about
    70 MiB of memory and 0.5 s to import; every web process loads this module (through the
    models' scoring versions) but only leaderboard jobs and comparisons compute with it."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


special = _ImportedOnUse("scipy.special")
sps = _ImportedOnUse("scipy.stats")

__all__ = [
    "BOSCHLOO_MAX_TRIALS_PER_ARM",
    "DEFAULT_BOOTSTRAP_RESAMPLES",
    "BradleyTerryFit",
    "CellSummary",
    "ConditionRate",
    "LeaderboardRow",
    "MacroAverage",
    "PairComparison",
    "PairwiseComparisons",
    "RobustnessSummary",
    "SaviResult",
    "SequentialTestState",
    "TwoPolicyComparison",
    "boschloo_exact",
    "bradley_terry",
    "bradley_terry_intervals",
    "bradley_terry_ratings",
    "bradley_terry_win_probability",
    "cell_summary",
    "chi_square_homogeneity",
    "clopper_pearson_interval",
    "compact_letter_display",
    "compare_two_policies",
    "fisher_exact",
    "holm_adjust",
    "interquartile_mean",
    "macro_average",
    "mcnemar_exact",
    "newcombe_difference_interval",
    "pairwise_comparisons",
    "policy_leaderboard",
    "power_trials_per_policy",
    "robustness_summary",
    "savi_e_process",
    "sequential_paired_test",
    "wilson_interval",
]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_ALPHA = 0.05
# With 10,000 resamples the 2.5% bound of a 50-cell macro average moves by 0.0007 (standard
# deviation over 200 seeds, measured): well below the digits a leaderboard shows.
DEFAULT_BOOTSTRAP_RESAMPLES = 10_000
# Bradley-Terry refits per resample cost a batched Newton solve; 2,000 is plenty for a
# percentile interval on a handful of policies.
DEFAULT_BT_RESAMPLES = 2_000
# scipy's Boschloo costs O(n^2) in the trials per arm (bench/bench_stats.py: ~7 ms at n=50,
# ~50 ms at n=100, 0.24 s at n=200, 2.9 s at n=500). At 100 a 20-policy leaderboard's 190
# pairs take about 10 s (cached by counts, in a background job); above it Fisher, under 1 ms
# at any n, is used.
BOSCHLOO_MAX_TRIALS_PER_ARM = 100
# scipy.stats.boschloo_exact's sampling points for the nuisance parameter (its default).
_BOSCHLOO_GRID_POINTS = 32
_EXACT_TEST_CACHE_SIZE = 4096
# Bumping this changes every bootstrap seed; do it only with a scoring version change.
_SEED_NAMESPACE = "proving-ground/stats/1"
_BT_MAX_NEWTON_STEPS = 100
_BT_STEP_TOLERANCE = 1e-11

_ALTERNATIVES = ("two-sided", "greater", "less")


class _Result:
    """Base of the frozen result dataclasses: JSON-ready ``to_dict()``."""

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))  # type: ignore[call-overload]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------
# Validation


def _as_count(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer count, got a bool")
    try:
        count = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer count, got {value!r}") from None
    if count < 0:
        raise ValueError(f"{name} must be >= 0, got {count}")
    return count


def _check_counts(successes: Any, trials: Any, label: str = "") -> tuple[int, int]:
    prefix = f"{label}: " if label else ""
    k = _as_count(successes, f"{prefix}successes")
    n = _as_count(trials, f"{prefix}trials")
    if n == 0:
        raise ValueError(f"{prefix}no trials (0/0): a success rate needs at least one trial")
    if k > n:
        raise ValueError(f"{prefix}successes ({k}) cannot exceed trials ({n})")
    return k, n


def _check_probability_level(value: float, name: str) -> float:
    level = float(value)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return level


def _check_alternative(alternative: str) -> str:
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    return alternative


def _z_two_sided(confidence: float) -> float:
    return float(sps.norm.ppf(0.5 + confidence / 2.0))


# --------------------------------------------------------------------------------------------
# One cell: intervals for a binomial proportion


def wilson_interval(
    successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Wilson (1927) score interval for a success rate.

    Returns ``(low, high)`` with ``0 <= low <= k/n <= high <= 1``; ``low`` is exactly 0 when
    k = 0 and ``high`` exactly 1 when k = n. 7/10 at 95% gives (0.3968, 0.8922).
    Raises ``ValueError`` on 0 trials, negative counts or k > n.
    """
    k, n = _check_counts(successes, trials)
    z = _z_two_sided(_check_probability_level(confidence, "confidence"))
    return _wilson_bounds(k, n, z)


def _wilson_bounds(k: int, n: int, z: float) -> tuple[float, float]:
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
    k, n = _check_counts(successes, trials)
    level = _check_probability_level(confidence, "confidence")
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
class CellSummary(_Result):
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
    k, n = _check_counts(successes, trials)
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


# --------------------------------------------------------------------------------------------
# Two policies: exact tests and the difference interval


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
    a_k, a_n = _check_counts(a_successes, a_trials, "A")
    b_k, b_n = _check_counts(b_successes, b_trials, "B")
    return _fisher_p(a_k, a_n, b_k, b_n, _check_alternative(alternative))


@lru_cache(maxsize=_EXACT_TEST_CACHE_SIZE)
def _fisher_p(a_k: int, a_n: int, b_k: int, b_n: int, alternative: str) -> float:
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
    a_k, a_n = _check_counts(a_successes, a_trials, "A")
    b_k, b_n = _check_counts(b_successes, b_trials, "B")
    return _boschloo_p(a_k, a_n, b_k, b_n, _check_alternative(alternative))


@lru_cache(maxsize=_EXACT_TEST_CACHE_SIZE)
def _boschloo_p(a_k: int, a_n: int, b_k: int, b_n: int, alternative: str) -> float:
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
    a = _as_count(a_only, "a_only")
    b = _as_count(b_only, "b_only")
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
    a_k, a_n = _check_counts(a_successes, a_trials, "A")
    b_k, b_n = _check_counts(b_successes, b_trials, "B")
    z = _z_two_sided(_check_probability_level(confidence, "confidence"))
    p_a, p_b = a_k / a_n, b_k / b_n
    l_a, u_a = _wilson_bounds(a_k, a_n, z)
    l_b, u_b = _wilson_bounds(b_k, b_n, z)
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
        return _boschloo_p(a_k, a_n, b_k, b_n, "two-sided")
    return _fisher_p(a_k, a_n, b_k, b_n, "two-sided")


@dataclasses.dataclass(frozen=True)
class TwoPolicyComparison(_Result):
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
    a_k, a_n = _check_counts(a_successes, a_trials, "A")
    b_k, b_n = _check_counts(b_successes, b_trials, "B")
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


# --------------------------------------------------------------------------------------------
# Many policies: Holm, compact letter display


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the input order.

    With the raw p-values sorted ascending p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)). Adjusted values are >= the raw
    ones, <= 1, and monotone in the raw order; reject H_i when adjusted_i <= alpha. Controls
    the family-wise error rate under any dependence. An empty input gives [].
    """
    raw = np.asarray(list(pvalues), dtype=float)
    if raw.ndim != 1:
        raise ValueError("pvalues must be a flat sequence of numbers")
    if raw.size and (not np.all(np.isfinite(raw)) or raw.min() < 0.0 or raw.max() > 1.0):
        raise ValueError("every p-value must be a finite number in [0, 1]")
    m = raw.size
    order = np.argsort(raw, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * raw[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return [float(value) for value in adjusted]


def compact_letter_display(
    estimates: Sequence[float], significant_pairs: Iterable[tuple[int, int]]
) -> list[str]:
    """Letters such that two items share a letter iff they are not significantly different.

    Piepho's (2004) insert-absorb algorithm: start with one group holding every item; for
    each significant pair (i, j), split every group holding both into one without j and one
    without i, then drop groups contained in another. Groups are lettered in order of their
    best member (highest ``estimate``), so "a" always marks the group of the best item.
    Returns one string per item in input order, e.g. ["a", "ab", "b"]. Indices are 0-based.
    """
    values = [float(value) for value in estimates]
    m = len(values)
    pairs = set()
    for i, j in significant_pairs:
        i, j = operator.index(i), operator.index(j)
        if not (0 <= i < m and 0 <= j < m) or i == j:
            raise ValueError(f"significant pair ({i}, {j}) must name two different items")
        pairs.add((min(i, j), max(i, j)))
    # Rank positions: 0 is the best estimate; ties keep input order.
    position = {item: rank for rank, item in enumerate(sorted(range(m), key=lambda i: -values[i]))}
    groups: list[frozenset[int]] = [frozenset(range(m))] if m else []
    for i, j in sorted(pairs, key=lambda pair: (position[pair[0]], position[pair[1]])):
        split: list[frozenset[int]] = []
        for group in groups:
            if i in group and j in group:
                split.extend((group - {j}, group - {i}))
            else:
                split.append(group)
        groups = _absorb(split)
    groups.sort(key=lambda group: sorted(position[item] for item in group))
    letters = [""] * m
    for index, group in enumerate(groups):
        letter = _letter(index)
        for item in group:
            letters[item] += letter
    return letters


def _absorb(groups: list[frozenset[int]]) -> list[frozenset[int]]:
    unique = list(dict.fromkeys(groups))
    return [g for g in unique if not any(g < other for other in unique)]


def _letter(index: int) -> str:
    # a..z, then aa, ab, ... (spreadsheet style) for displays with more than 26 groups.
    name = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        name = chr(ord("a") + remainder) + name
    return name


@dataclasses.dataclass(frozen=True)
class PairComparison(_Result):
    """One pair of policies: two-sided exact test, Holm-adjusted p, Newcombe interval for
    rate(first) - rate(second). p-values in [0, 1]; ``significant`` = p_adjusted < alpha."""

    first: str
    second: str
    difference: float
    difference_low: float
    difference_high: float
    p_value: float
    p_adjusted: float
    significant: bool
    test: str


@dataclasses.dataclass(frozen=True)
class PairwiseComparisons(_Result):
    """All pairs, Holm-adjusted at ``alpha``, and the compact letter display by policy."""

    pairs: tuple[PairComparison, ...]
    letters: dict[str, str]
    alpha: float


def pairwise_comparisons(
    totals: Mapping[str, tuple[int, int]],
    *,
    alpha: float = DEFAULT_ALPHA,
    test: str = "auto",
) -> PairwiseComparisons:
    """Every pair of policies compared on its pooled (successes, trials), Holm-adjusted.

    On a benchmark every policy runs the same trials per cell, so the pooled rate equals the
    macro average over cells and this tests the leaderboard's headline figure. ``test`` as
    in ``compare_two_policies`` (per pair, so Boschloo only for small arms). A pair is
    significant when its Holm-adjusted p < alpha; the letters follow from those pairs.
    """
    level = _check_probability_level(alpha, "alpha")
    labels = list(totals)
    counts = [_check_counts(*totals[label], label=str(label)) for label in labels]
    compared = [
        (i, j, compare_two_policies(*counts[i], *counts[j], test=test))
        for i in range(len(labels))
        for j in range(i + 1, len(labels))
    ]
    adjusted = holm_adjust([comparison.p_value for _, _, comparison in compared])
    pairs = tuple(
        PairComparison(
            first=labels[i],
            second=labels[j],
            difference=comparison.difference,
            difference_low=comparison.difference_low,
            difference_high=comparison.difference_high,
            p_value=comparison.p_value,
            p_adjusted=p_adjusted,
            significant=p_adjusted < level,
            test=comparison.test,
        )
        for (i, j, comparison), p_adjusted in zip(compared, adjusted, strict=True)
    )
    rates = [k / n for k, n in counts]
    significant = [
        (i, j) for (i, j, _), pair in zip(compared, pairs, strict=True) if pair.significant
    ]
    letters = compact_letter_display(rates, significant)
    return PairwiseComparisons(
        pairs=pairs, letters=dict(zip(labels, letters, strict=True)), alpha=level
    )


# --------------------------------------------------------------------------------------------
# Aggregates: IQM, seeded stratified bootstrap, rank intervals


def interquartile_mean(scores: Sequence[float]) -> float:
    """Interquartile mean (Agarwal et al. 2021): the mean after dropping floor(n/4) sorted
    scores from each end, with no fractional weighting (as ``scipy.stats.trim_mean(x,
    0.25)``). Returns a float within [min, max] of the scores; raises on an empty input."""
    values = np.sort(np.asarray(list(scores), dtype=float))
    if values.ndim != 1 or values.size == 0:
        raise ValueError("interquartile_mean needs at least one score")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores must be finite numbers")
    cut = int(0.25 * values.size)
    return float(values[cut : values.size - cut].mean())


def _seeded_rng(purpose: str, payload: Any) -> np.random.Generator:
    """A generator seeded by SHA-256 of the canonical JSON of the inputs: same data, same
    draws, on any machine (numpy's PCG64 stream is stable across platforms)."""
    canonical = json.dumps([_SEED_NAMESPACE, purpose, payload], separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def _check_cells(cells: Sequence[tuple[int, int]], label: str = "") -> list[tuple[int, int]]:
    checked = [
        _check_counts(*cell, label=f"{label}cell {index}") for index, cell in enumerate(cells)
    ]
    if not checked:
        raise ValueError(f"{label}a macro average needs at least one cell")
    return checked


def _check_resamples(resamples: int) -> int:
    count = operator.index(resamples)
    if count < 100:
        raise ValueError(f"resamples must be at least 100, got {count}")
    return count


def _bootstrap_macro_means(
    cells: list[tuple[int, int]], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Macro averages of ``resamples`` stratified bootstrap replicates, shape (resamples,).

    Resampling a cell's n Bernoulli trials with replacement and counting successes is exactly
    a Binomial(n, k/n) draw, so each cell costs one vectorised binomial draw."""
    counts = np.asarray(cells, dtype=np.int64)
    trials = counts[:, 1]
    rates = counts[:, 0] / trials
    draws = rng.binomial(trials, rates, size=(resamples, len(cells)))
    return (draws / trials).mean(axis=1)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclasses.dataclass(frozen=True)
class MacroAverage(_Result):
    """Mean of the cell rates with a percentile bootstrap interval; all three in [0, 1].

    ``cells`` and ``trials`` give the n behind the figure."""

    estimate: float
    low: float
    high: float
    cells: int
    trials: int
    confidence: float
    resamples: int


def macro_average(
    cells: Sequence[tuple[int, int]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
) -> MacroAverage:
    """Macro average of per-cell success rates with a seeded stratified bootstrap interval.

    ``cells`` is a sequence of (successes, trials), one per task (or task x condition cell),
    each weighted equally. Trials are resampled within each cell (Efron 1979), the seed is
    derived from the counts, so the interval is a pure function of the data. When a cell is
    all successes or all failures the percentile interval is widened to cover the Wilson
    interval at the effective sample size (1/1 gives [0.21, 1], not [1, 1]).
    """
    checked = _check_cells(cells)
    level = _check_probability_level(confidence, "confidence")
    count = _check_resamples(resamples)
    rng = _seeded_rng("macro_average", checked)
    means = _bootstrap_macro_means(checked, count, rng)
    low, high = _percentile_interval(means, level)
    estimate = float(np.mean([k / n for k, n in checked]))
    if any(k in (0, n) for k, n in checked):
        # A cell with all successes (or none) has nothing to resample, so the percentile
        # interval is too narrow there ([1, 1] for 1/1). Widen it to cover the Wilson interval
        # at the effective sample size (Korn & Graubard 1998): the n at which one binomial
        # proportion has the macro average's variance when every cell shares one rate.
        n_eff = len(checked) ** 2 / sum(1.0 / n for _, n in checked)
        w_low, w_high = _wilson_bounds(estimate * n_eff, n_eff, _z_two_sided(level))
        low, high = min(low, w_low), max(high, w_high)
    return MacroAverage(
        estimate=estimate,
        low=min(low, estimate),
        high=max(high, estimate),
        cells=len(checked),
        trials=sum(n for _, n in checked),
        confidence=level,
        resamples=count,
    )


@dataclasses.dataclass(frozen=True)
class LeaderboardRow(_Result):
    """One policy on a leaderboard: its macro average and interval, its rank (1 = best;
    tied estimates share the better rank) and the bootstrap interval of its rank, both ends
    in 1..number of policies."""

    policy: str
    macro: MacroAverage
    rank: int
    rank_low: int
    rank_high: int


def policy_leaderboard(
    policies: Mapping[str, Sequence[tuple[int, int]]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_BOOTSTRAP_RESAMPLES,
) -> tuple[LeaderboardRow, ...]:
    """Macro averages with intervals and rank intervals for every policy, best first.

    ``policies`` maps a policy label to its cells' (successes, trials), the same cells in the
    same order for every policy. Each macro interval is exactly ``macro_average`` of that
    policy (seeded by its own counts, so adding a policy never moves another's interval).
    Ranks use a second, joint bootstrap seeded by all the counts: in each replicate a
    policy's rank is 1 + the number of policies with a strictly higher macro average, and the
    rank interval is the (alpha/2, 1 - alpha/2) quantile of those ranks.
    """
    if not policies:
        return ()
    level = _check_probability_level(confidence, "confidence")
    count = _check_resamples(resamples)
    labels = list(policies)
    cells = {label: _check_cells(policies[label], f"{label}: ") for label in labels}
    macros = {
        label: macro_average(cells[label], confidence=level, resamples=count) for label in labels
    }
    # Canonical order for the joint stream: by counts, so relabelling or reordering the
    # mapping never changes the draws (label breaks ties between identical counts).
    canonical = sorted(labels, key=lambda label: (cells[label], str(label)))
    rng = _seeded_rng("policy_leaderboard", [cells[label] for label in canonical])
    replicates = np.empty((len(labels), count))
    for row, label in enumerate(canonical):
        replicates[row] = _bootstrap_macro_means(cells[label], count, rng)
    boot_ranks = 1 + (replicates[None, :, :] > replicates[:, None, :]).sum(axis=1)
    estimates = np.array([macros[label].estimate for label in canonical])
    observed_ranks = 1 + (estimates[None, :] > estimates[:, None]).sum(axis=1)
    tail = (1.0 - level) / 2.0
    rows = []
    for row, label in enumerate(canonical):
        rank_low = int(np.quantile(boot_ranks[row], tail, method="inverted_cdf"))
        rank_high = int(np.quantile(boot_ranks[row], 1.0 - tail, method="inverted_cdf"))
        rank = int(observed_ranks[row])
        rows.append(
            LeaderboardRow(
                policy=label,
                macro=macros[label],
                rank=rank,
                rank_low=min(rank_low, rank),
                rank_high=max(rank_high, rank),
            )
        )
    order = {label: position for position, label in enumerate(labels)}
    rows.sort(key=lambda r: (r.rank, order[r.policy]))
    return tuple(rows)


# --------------------------------------------------------------------------------------------
# Preferences: Bradley-Terry with ties


def _check_pair_matrix(matrix: Any, name: str) -> np.ndarray:
    array = np.asarray(matrix, dtype=float)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.shape[0] < 2:
        raise ValueError(f"{name} must be a square matrix over at least 2 policies")
    if not np.all(np.isfinite(array)) or array.min() < 0:
        raise ValueError(f"{name} must hold non-negative finite counts")
    if not np.allclose(array, np.round(array)):
        raise ValueError(f"{name} must hold whole-number counts")
    if np.any(np.diag(array) != 0):
        raise ValueError(f"{name} must have a zero diagonal (a policy never meets itself)")
    return np.round(array)


def _bt_inputs(win_matrix: Any, ties: Any | None) -> tuple[np.ndarray, np.ndarray]:
    wins = _check_pair_matrix(win_matrix, "win_matrix")
    if ties is None:
        tie_counts = np.zeros_like(wins)
    else:
        tie_counts = _check_pair_matrix(ties, "ties")
        if tie_counts.shape != wins.shape:
            raise ValueError("ties must have the same shape as win_matrix")
        if not np.array_equal(tie_counts, tie_counts.T):
            raise ValueError("ties must be symmetric: ties[i][j] == ties[j][i]")
    return wins, tie_counts


def _strongly_connected(scores: np.ndarray) -> np.ndarray:
    """For score matrices (..., m, m), whether "i scored against j" is strongly connected:
    Ford's (1957) condition for the Bradley-Terry MLE to exist and be finite."""
    m = scores.shape[-1]
    reach = (scores > 0) | np.eye(m, dtype=bool)
    for _ in range(max(1, math.ceil(math.log2(m)))):
        reach = (reach.astype(np.float64) @ reach.astype(np.float64)) > 0
    return reach.all(axis=(-2, -1))


def _bt_log_likelihood(theta: np.ndarray, scores: np.ndarray) -> np.ndarray:
    diff = theta[..., :, None] - theta[..., None, :]
    return -(scores * np.logaddexp(0.0, -diff)).sum(axis=(-2, -1))


def _bt_information(theta: np.ndarray, games: np.ndarray) -> np.ndarray:
    """Observed (= expected) information: the Laplacian of games * p * (1 - p)."""
    p = special.expit(theta[..., :, None] - theta[..., None, :])
    weight = games * p * (1.0 - p)
    info = -weight
    diagonal = np.arange(theta.shape[-1])
    info[..., diagonal, diagonal] = weight.sum(axis=-1)
    return info


def _fit_bradley_terry(scores: np.ndarray) -> np.ndarray:
    """Batched damped Newton for the Bradley-Terry MLE, centred to sum zero.

    ``scores`` (B, m, m): wins + ties / 2 of row over column, each strongly connected. The
    log-likelihood is concave, so Newton with step halving converges from zero; adding
    J/m to the singular information fixes the free shift (the gradient sums to zero)."""
    batch, m, _ = scores.shape
    games = scores + np.swapaxes(scores, -1, -2)
    shift = np.full((m, m), 1.0 / m)
    theta = np.zeros((batch, m))
    log_lik = _bt_log_likelihood(theta, scores)
    for _ in range(_BT_MAX_NEWTON_STEPS):
        p = special.expit(theta[:, :, None] - theta[:, None, :])
        gradient = (scores - games * p).sum(axis=-1)
        info = _bt_information(theta, games)
        step = np.linalg.solve(info + shift, gradient[..., None])[..., 0]
        scale = np.ones(batch)
        for _ in range(60):
            candidate = theta + scale[:, None] * step
            new_log_lik = _bt_log_likelihood(candidate, scores)
            worse = new_log_lik < log_lik - 1e-12 * (1.0 + np.abs(log_lik))
            if not worse.any():
                break
            scale = np.where(worse, scale / 2.0, scale)
        theta, log_lik = candidate, new_log_lik
        if np.max(np.abs(scale[:, None] * step)) < _BT_STEP_TOLERANCE:
            break
    return theta - theta.mean(axis=-1, keepdims=True)


def bradley_terry(win_matrix: Sequence[Sequence[int]], ties: Any | None = None) -> list[float]:
    """Bradley & Terry (1952) strengths by maximum likelihood.

    ``win_matrix[i][j]`` counts sessions where policy i beat policy j; optional symmetric
    ``ties[i][j]`` counts ties, each worth half a win to both sides. The model is
    P(i beats j) = 1 / (1 + exp(theta_j - theta_i)). Returns theta on the natural-log scale,
    centred to sum zero, in input order (any real values; differences are log-odds). Raises
    ``ValueError`` when the MLE does not exist: some group of policies never scored against
    the rest (Ford 1957), e.g. a policy that won every session it played.
    """
    wins, tie_counts = _bt_inputs(win_matrix, ties)
    scores = wins + tie_counts / 2.0
    if not _strongly_connected(scores):
        raise ValueError(
            "Bradley-Terry strengths are unbounded: some policies never lost (or never won) "
            "against the rest; collect comparisons in both directions"
        )
    return [float(value) for value in _fit_bradley_terry(scores[None])[0]]


def bradley_terry_win_probability(strength_i: float, strength_j: float) -> float:
    """P(i beats j) under Bradley-Terry for natural-log strengths, in (0, 1)."""
    return float(special.expit(strength_i - strength_j))


def bradley_terry_ratings(
    strengths: Sequence[float],
    *,
    points_per_nat: float = 400.0 / math.log(10.0),
    base: float = 1000.0,
    anchor: int | None = None,
) -> list[float]:
    """Map natural-log strengths to an Elo-like scale: ``base + points_per_nat * theta``.

    The default is the Elo/Chatbot Arena scale (400 points per factor 10 in odds, centred on
    1000); RoboArena's is ``points_per_nat=200, base=1500``. With ``anchor`` the policy at
    that index gets exactly ``base`` and the rest shift with it.
    """
    theta = np.asarray(list(strengths), dtype=float)
    ratings = base + points_per_nat * theta
    if anchor is not None:
        ratings = ratings - (ratings[operator.index(anchor)] - base)
    return [float(value) for value in ratings]


@dataclasses.dataclass(frozen=True)
class BradleyTerryFit(_Result):
    """Strengths (natural log, sum zero), their standard errors from the observed
    information (pseudo-inverse, sum-zero constraint) and percentile bootstrap intervals.

    ``degenerate_resamples`` counts replicates in which the MLE did not exist (a policy
    never lost or never won); they are left out of the intervals. When that count is more
    than a few percent of ``resamples`` the intervals are optimistic: collect more data."""

    strengths: tuple[float, ...]
    standard_errors: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    confidence: float
    resamples: int
    degenerate_resamples: int


def bradley_terry_intervals(
    win_matrix: Sequence[Sequence[int]],
    ties: Any | None = None,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_BT_RESAMPLES,
) -> BradleyTerryFit:
    """Bradley-Terry strengths with standard errors and bootstrap intervals.

    The bootstrap resamples sessions within each pair of policies (a multinomial over i wins
    / j wins / tie with that pair's observed frequencies), refits every replicate in one
    batched Newton solve, and is seeded by the counts.
    """
    wins, tie_counts = _bt_inputs(win_matrix, ties)
    level = _check_probability_level(confidence, "confidence")
    count = _check_resamples(resamples)
    strengths = np.asarray(bradley_terry(wins, tie_counts))
    scores = wins + tie_counts / 2.0
    games = scores + scores.T
    covariance = np.linalg.pinv(_bt_information(strengths, games))
    standard_errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))

    m = wins.shape[0]
    upper_i, upper_j = np.triu_indices(m, k=1)
    outcomes = np.stack(
        [wins[upper_i, upper_j], wins[upper_j, upper_i], tie_counts[upper_i, upper_j]], axis=-1
    ).astype(np.int64)
    totals = outcomes.sum(axis=-1)
    frequencies = np.where(
        totals[:, None] > 0, outcomes / np.maximum(totals, 1)[:, None], [1.0, 0.0, 0.0]
    )
    payload = [wins.astype(int).tolist(), tie_counts.astype(int).tolist()]
    rng = _seeded_rng("bradley_terry_intervals", payload)
    draws = rng.multinomial(totals, frequencies, size=(count, totals.size))
    boot_scores = np.zeros((count, m, m))
    boot_scores[:, upper_i, upper_j] = draws[..., 0] + draws[..., 2] / 2.0
    boot_scores[:, upper_j, upper_i] = draws[..., 1] + draws[..., 2] / 2.0
    valid = _strongly_connected(boot_scores)
    fitted = _fit_bradley_terry(boot_scores[valid]) if valid.any() else strengths[None]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(fitted, [tail, 1.0 - tail], axis=0)
    return BradleyTerryFit(
        strengths=tuple(float(v) for v in strengths),
        standard_errors=tuple(float(v) for v in standard_errors),
        low=tuple(float(v) for v in np.minimum(low, strengths)),
        high=tuple(float(v) for v in np.maximum(high, strengths)),
        confidence=level,
        resamples=count,
        degenerate_resamples=int((~valid).sum()),
    )


# --------------------------------------------------------------------------------------------
# Sequential A/B: anytime-valid e-processes


def _as_outcomes(values: Sequence[int], name: str) -> np.ndarray:
    array = np.asarray(list(values))
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of 0/1 outcomes")
    if array.size and not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must hold only 0 (failure) and 1 (success)")
    return array.astype(np.int64)


def _discordant_log_e(a_only: np.ndarray, b_only: np.ndarray) -> np.ndarray:
    """log of the uniform-prior mixture martingale on discordant pairs (Robbins 1970).

    Under H0 each discordant pair favours A with probability 1/2; mixing the likelihood
    ratio over q ~ Uniform(0, 1) gives E = B(s + 1, f + 1) * 2^(s + f), a nonnegative
    martingale with E_0 = 1. Works elementwise on arrays of counts."""
    return special.betaln(a_only + 1.0, b_only + 1.0) + (a_only + b_only) * math.log(2.0)


@dataclasses.dataclass(frozen=True)
class SequentialTestState(_Result):
    """Where a sequential paired A/B test stands.

    ``state`` is "continue" (keep running pairs), "a_better" / "b_better" (stopped: the
    e-value reached 1/alpha) or "inconclusive" (the planned maximum was reached first).
    ``pairs`` is the number of pairs analysed (up to the stop), ``a_only`` / ``b_only`` the
    discordant counts then; ``e_value`` >= 0 is the evidence against "no difference" at
    that point and ``anytime_p_value`` = min(1, 1 / max e-value so far) in (0, 1]."""

    state: str
    pairs: int
    a_only: int
    b_only: int
    e_value: float
    anytime_p_value: float
    alpha: float
    max_pairs: int


def sequential_paired_test(
    a_outcomes: Sequence[int],
    b_outcomes: Sequence[int],
    *,
    max_pairs: int,
    alpha: float = DEFAULT_ALPHA,
) -> SequentialTestState:
    """Anytime-valid test of A vs B on paired trials, checked after every pair.

    ``a_outcomes[t]`` and ``b_outcomes[t]`` are the 0/1 outcomes of pair t (same initial
    condition). Only discordant pairs carry evidence. The test stops at the first pair where
    the mixture e-value reaches 1/alpha and names the policy that won more discordant pairs;
    Ville's (1939) inequality bounds the chance of ever stopping under H0 by alpha, however
    often one looks. The uniform mixture is the average of two one-sided mixtures (q > 1/2
    and q < 1/2), so a wrong direction is also called with probability at most alpha. Passing
    more than ``max_pairs`` pairs raises: the plan is part of the test.
    """
    a = _as_outcomes(a_outcomes, "a_outcomes")
    b = _as_outcomes(b_outcomes, "b_outcomes")
    if a.size != b.size:
        raise ValueError(f"paired outcomes must have equal length, got {a.size} and {b.size}")
    level = _check_probability_level(alpha, "alpha")
    limit = operator.index(max_pairs)
    if limit < 1:
        raise ValueError(f"max_pairs must be at least 1, got {limit}")
    if a.size > limit:
        raise ValueError(f"got {a.size} pairs but the plan allows at most max_pairs={limit}")
    a_only = np.cumsum((a == 1) & (b == 0))
    b_only = np.cumsum((a == 0) & (b == 1))
    log_e = _discordant_log_e(a_only, b_only)
    threshold = math.log(1.0 / level)
    crossed = np.flatnonzero(log_e >= threshold - 1e-12)
    if crossed.size:
        stop = int(crossed[0])
        state = "a_better" if a_only[stop] > b_only[stop] else "b_better"
    else:
        stop = a.size - 1
        state = "inconclusive" if a.size >= limit else "continue"
    if stop < 0:  # no pairs yet
        return SequentialTestState("continue", 0, 0, 0, 1.0, 1.0, level, limit)
    best_log_e = float(np.max(log_e[: stop + 1]))
    return SequentialTestState(
        state=state,
        pairs=stop + 1,
        a_only=int(a_only[stop]),
        b_only=int(b_only[stop]),
        e_value=float(math.exp(log_e[stop])),
        anytime_p_value=float(min(1.0, math.exp(-max(0.0, best_log_e)))),
        alpha=level,
        max_pairs=limit,
    )


def _savi_log_e(first: np.ndarray, second: np.ndarray, alternative: str) -> np.ndarray:
    """Running log e-values of the SAVI test, vectorised over streams (rows).

    Predictive plug-in: before each pair, p_hat = Beta posterior means with pseudo-counts
    Beta(1, 2) for the stream the alternative says is lower and Beta(2, 1) for the higher
    (TRI's savi.py ``reset()``). The null is tested against its reverse-information
    projection: q0 = q1 = (p0_hat + p1_hat) / 2 when p_hat lies in the alternative, else
    q = p_hat (Turner & Grünwald 2023, eq. 11 and Theorem 2)."""
    lower_prior, higher_prior = (1.0, 2.0), (2.0, 1.0)
    prior_0, prior_1 = (
        (lower_prior, higher_prior)
        if alternative == "less"
        else (
            higher_prior,
            lower_prior,
        )
    )
    steps = first.shape[-1]
    seen = np.arange(steps)
    before_0 = np.cumsum(first, axis=-1) - first
    before_1 = np.cumsum(second, axis=-1) - second
    p0 = (prior_0[0] + before_0) / (sum(prior_0) + seen)
    p1 = (prior_1[0] + before_1) / (sum(prior_1) + seen)
    in_null = p0 >= p1 if alternative == "less" else p0 <= p1
    pooled = (p0 + p1) / 2.0
    q0 = np.where(in_null, p0, pooled)
    q1 = np.where(in_null, p1, pooled)

    def log_bernoulli(x: np.ndarray, p: np.ndarray) -> np.ndarray:
        return np.where(x == 1, np.log(p), np.log1p(-p))

    increments = (
        log_bernoulli(first, p0)
        + log_bernoulli(second, p1)
        - log_bernoulli(first, q0)
        - log_bernoulli(second, q1)
    )
    return np.cumsum(increments, axis=-1)


@dataclasses.dataclass(frozen=True)
class SaviResult(_Result):
    """SAVI e-values after each pair (each >= 0), the first pair (1-based) at which the
    e-value reached 1/alpha (None if never), and the anytime p-value min(1, 1/max e)."""

    e_values: tuple[float, ...]
    stopping_time: int | None
    anytime_p_value: float
    alternative: str
    alpha: float


def savi_e_process(
    outcomes_0: Sequence[int],
    outcomes_1: Sequence[int],
    *,
    alternative: str = "less",
    alpha: float = DEFAULT_ALPHA,
) -> SaviResult:
    """One-sided SAVI e-process for two INDEPENDENT Bernoulli streams (Turner & Grünwald
    2023; the form used by TRI's sequentialized Barnard tests).

    ``alternative="less"`` is H1: p0 < p1 (H0: p0 >= p1), ``"greater"`` the reverse. Its
    validity needs the two outcomes of a step to be independent given the past; trials on
    matched initial conditions are usually correlated, so paired A/B uses
    ``sequential_paired_test`` instead.
    """
    if alternative not in ("less", "greater"):
        raise ValueError(f"alternative must be 'less' or 'greater', got {alternative!r}")
    first = _as_outcomes(outcomes_0, "outcomes_0")
    second = _as_outcomes(outcomes_1, "outcomes_1")
    if first.size != second.size:
        raise ValueError(f"streams must have equal length, got {first.size} and {second.size}")
    level = _check_probability_level(alpha, "alpha")
    log_e = _savi_log_e(first, second, alternative)
    crossed = np.flatnonzero(log_e >= math.log(1.0 / level) - 1e-12)
    best = float(np.max(log_e)) if log_e.size else 0.0
    return SaviResult(
        e_values=tuple(float(v) for v in np.exp(log_e)),
        stopping_time=int(crossed[0]) + 1 if crossed.size else None,
        anytime_p_value=float(min(1.0, math.exp(-max(0.0, best)))),
        alternative=alternative,
        alpha=level,
    )


# --------------------------------------------------------------------------------------------
# Robustness across conditions


def chi_square_homogeneity(counts: Sequence[tuple[int, int]]) -> tuple[float, int, float]:
    """Pearson's chi-square test that every group has the same success rate (no continuity
    correction). Returns ``(statistic >= 0, degrees of freedom, p in [0, 1])``; when every
    trial succeeded or every trial failed the rates are trivially equal: (0.0, df, 1.0)."""
    checked = [_check_counts(*cell, label=f"group {index}") for index, cell in enumerate(counts)]
    if len(checked) < 2:
        raise ValueError("a homogeneity test needs at least two groups")
    table = np.array([[k, n - k] for k, n in checked], dtype=float)
    df = len(checked) - 1
    if table[:, 0].sum() == 0 or table[:, 1].sum() == 0:
        return 0.0, df, 1.0
    result = sps.chi2_contingency(table, correction=False)
    return float(result.statistic), int(result.dof), float(result.pvalue)


@dataclasses.dataclass(frozen=True)
class ConditionRate(_Result):
    """One condition: k/n, its own Wilson interval at ``confidence`` and the Bonferroni
    simultaneous Wilson interval (all conditions hold jointly at the family confidence)."""

    condition: str
    successes: int
    trials: int
    rate: float
    wilson_low: float
    wilson_high: float
    simultaneous_low: float
    simultaneous_high: float


@dataclasses.dataclass(frozen=True)
class RobustnessSummary(_Result):
    """Per-condition rates, the worst condition and how far it falls behind.

    ``worst_low``/``worst_high`` = [min_g L_g, min_g U_g] over the simultaneous intervals: a
    valid interval for the lowest true rate, whichever condition it is. ``overall_rate`` is
    pooled (all trials), ``macro_rate`` the mean of condition rates; the gaps are
    differences of rates in [0, 1]; ``worst_over_best`` is None when the best rate is 0."""

    conditions: tuple[ConditionRate, ...]
    worst_condition: str
    worst_rate: float
    worst_low: float
    worst_high: float
    overall_rate: float
    macro_rate: float
    overall_minus_worst: float
    best_minus_worst: float
    worst_over_best: float | None
    heterogeneity_chi2: float | None
    heterogeneity_df: int | None
    heterogeneity_p: float | None
    family_confidence: float


def robustness_summary(
    conditions: Mapping[str, tuple[int, int]],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    family_confidence: float = DEFAULT_CONFIDENCE,
) -> RobustnessSummary:
    """Success by condition and the worst condition with a simultaneous interval.

    Each of the m conditions gets a Wilson interval at level 1 - (1 - family_confidence)/m
    (Bonferroni), so all hold together with probability >= family_confidence and the worst
    condition's interval needs no further correction. The worst condition is the lowest
    observed rate (first in input order on ties). Heterogeneity is Pearson's chi-square
    across conditions (None with a single condition).
    """
    if not conditions:
        raise ValueError("robustness_summary needs at least one condition")
    level = _check_probability_level(confidence, "confidence")
    family = _check_probability_level(family_confidence, "family_confidence")
    names = list(conditions)
    counts = [_check_counts(*conditions[name], label=str(name)) for name in names]
    z = _z_two_sided(level)
    z_simultaneous = _z_two_sided(1.0 - (1.0 - family) / len(names))
    rows = []
    for name, (k, n) in zip(names, counts, strict=True):
        low, high = _wilson_bounds(k, n, z)
        sim_low, sim_high = _wilson_bounds(k, n, z_simultaneous)
        rows.append(ConditionRate(name, k, n, k / n, low, high, sim_low, sim_high))
    rates = [row.rate for row in rows]
    worst = rows[int(np.argmin(rates))]
    best_rate = max(rates)
    overall = sum(k for k, _ in counts) / sum(n for _, n in counts)
    heterogeneity = chi_square_homogeneity(counts) if len(counts) > 1 else (None, None, None)
    return RobustnessSummary(
        conditions=tuple(rows),
        worst_condition=worst.condition,
        worst_rate=worst.rate,
        worst_low=min(row.simultaneous_low for row in rows),
        worst_high=min(row.simultaneous_high for row in rows),
        overall_rate=overall,
        macro_rate=float(np.mean(rates)),
        overall_minus_worst=overall - worst.rate,
        best_minus_worst=best_rate - worst.rate,
        worst_over_best=worst.rate / best_rate if best_rate > 0 else None,
        heterogeneity_chi2=heterogeneity[0],
        heterogeneity_df=heterogeneity[1],
        heterogeneity_p=heterogeneity[2],
        family_confidence=family,
    )


# --------------------------------------------------------------------------------------------
# Planning


def power_trials_per_policy(
    p_baseline: float, p_candidate: float, alpha: float = DEFAULT_ALPHA, power: float = 0.8
) -> int:
    """Trials per policy for a two-sided test at ``alpha`` to detect p_baseline vs
    p_candidate with the given power: n = 2 * ((z_{1-alpha/2} + z_{power}) / h)^2 rounded
    up, with Cohen's (1988) h = |2 asin(sqrt(p_candidate)) - 2 asin(sqrt(p_baseline))|.
    The normal approximation ignores the far rejection tail (negligible). 0.5 vs 0.8: 38.
    Returns an int >= 1; raises when the rates are equal (no finite n detects no effect)."""
    for name, value in (("p_baseline", p_baseline), ("p_candidate", p_candidate)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a rate in [0, 1], got {value!r}")
    level = _check_probability_level(alpha, "alpha")
    target = _check_probability_level(power, "power")
    h = abs(2.0 * math.asin(math.sqrt(p_candidate)) - 2.0 * math.asin(math.sqrt(p_baseline)))
    if h == 0.0:
        raise ValueError("p_baseline and p_candidate are equal: no sample size detects no effect")
    z_sum = float(sps.norm.ppf(1.0 - level / 2.0) + sps.norm.ppf(target))
    return max(1, math.ceil(2.0 * (z_sum / h) ** 2 - 1e-9))
