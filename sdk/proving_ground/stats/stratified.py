"""Two policies compared across strata (tasks, conditions, sites): the Cochran-Mantel-Haenszel
test, the Mantel-Haenszel common odds ratio with the Robins-Breslow-Greenland interval, and
the Breslow-Day test that the odds ratio is the same in every stratum.

Pooling the counts of all strata into one 2x2 table can mislead (Simpson's paradox) when the
policies ran different numbers of trials per stratum; the CMH test compares the policies
within each stratum and adds the evidence up. Each stratum is
``[[a_successes, a_failures], [b_successes, b_failures]]``; the odds ratio is A's odds of
success over B's (above 1: A better).

Conventions (matching statsmodels' ``StratifiedTable`` where it gives a number): a stratum
with an empty row or column (one policy without trials, or every trial a success, or every
one a failure) carries no information about the difference and is left out of every figure;
statsmodels returns NaN for a one-trial stratum, and NaN for Breslow-Day whenever such a
stratum is present. The continuity correction is floored at zero as in R's
``mantelhaen.test`` (statsmodels subtracts 0.5 from |sum(a - E[a])| even when that makes it
negative).

References
    Breslow, N. E. & Day, N. E. (1980). Statistical Methods in Cancer Research, Vol. I: The
        Analysis of Case-Control Studies. IARC, section 4.4.
    Cochran, W. G. (1954). Some methods for strengthening the common chi-square tests.
        Biometrics 10(4), 417-451.
    Mantel, N. & Haenszel, W. (1959). Statistical aspects of the analysis of data from
        retrospective studies of disease. J. Natl. Cancer Inst. 22(4), 719-748.
    Robins, J., Breslow, N. & Greenland, S. (1986). Estimators of the Mantel-Haenszel variance
        consistent in both sparse data and large-strata limiting models. Biometrics 42(2),
        311-323.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    as_count,
    check_probability_level,
    sps,
)


@dataclasses.dataclass(frozen=True)
class StratifiedTest(Result):
    """CMH chi-square (1 degree of freedom) and its p-value for "no difference in any
    stratum"; the Mantel-Haenszel common odds ratio (A's odds of success over B's) with its
    Robins-Breslow-Greenland interval; the Breslow-Day p-value for "the odds ratio is the
    same in every stratum". ``odds_ratio`` is None when it is infinite (B never succeeds
    where A fails), and then, or when it is 0, the interval and the Breslow-Day p are None;
    ``homogeneity_p`` is also None with fewer than two informative strata."""

    statistic: float
    p_value: float
    odds_ratio: float | None
    odds_ratio_low: float | None
    odds_ratio_high: float | None
    homogeneity_p: float | None


def stratified_test(
    strata: Sequence[Sequence[Sequence[int]]],
    correction: bool = False,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
) -> StratifiedTest:
    """Cochran-Mantel-Haenszel test of two policies over strata.

    `strata` is a list of ``[[a_successes, a_failures], [b_successes, b_failures]]``. With
    a, b, c, d a stratum's four cells and n its total:

    - CMH: (sum(a - E a) )² / sum Var a, with E a = (a+b)(a+c)/n and
      Var a = (a+b)(c+d)(a+c)(b+d) / (n²(n-1)); chi-square with 1 degree of freedom.
      ``correction=True`` subtracts 0.5 from |sum(a - E a)| first (floored at 0).
    - Odds ratio: sum(ad/n) / sum(bc/n); its interval exp(log OR +- z SE) with the
      Robins-Breslow-Greenland SE of log OR, valid with many small strata.
    - Breslow-Day: sum over strata of (a - A)² / Var(A), A the expected a under the common
      odds ratio; chi-square with (strata - 1) degrees of freedom. A small p means the
      policies' difference changes from stratum to stratum: report strata separately.

    Raises ``ValueError`` on bad cells or when no stratum has both policies, a success and
    a failure.
    """
    level = check_probability_level(confidence, "confidence")
    table = _informative_strata(strata)
    a, b, c, d = table[:, 0, 0], table[:, 0, 1], table[:, 1, 0], table[:, 1, 1]
    n = a + b + c + d
    row_a, row_b, col_s, col_f = a + b, c + d, a + c, b + d

    deviation = abs(float(np.sum(a - row_a * col_s / n)))
    if correction:
        deviation = max(0.0, deviation - 0.5)
    variance = float(np.sum(row_a * row_b * col_s * col_f / (n**2 * (n - 1.0))))
    statistic = deviation**2 / variance
    p_value = float(sps.chi2.sf(statistic, 1))

    r_terms, s_terms = a * d / n, b * c / n
    r_sum, s_sum = float(np.sum(r_terms)), float(np.sum(s_terms))
    if s_sum == 0.0:
        return StratifiedTest(statistic, p_value, None, None, None, None)
    odds_ratio = r_sum / s_sum
    if r_sum == 0.0:
        return StratifiedTest(statistic, p_value, 0.0, None, None, None)

    p_terms, q_terms = (a + d) / n, (b + c) / n
    log_variance = (
        float(np.sum(p_terms * r_terms)) / (2.0 * r_sum**2)
        + float(np.sum(p_terms * s_terms + q_terms * r_terms)) / (2.0 * r_sum * s_sum)
        + float(np.sum(q_terms * s_terms)) / (2.0 * s_sum**2)
    )
    half_width = float(sps.norm.ppf(0.5 + level / 2.0)) * math.sqrt(log_variance)
    log_or = math.log(odds_ratio)
    return StratifiedTest(
        statistic=statistic,
        p_value=p_value,
        odds_ratio=odds_ratio,
        odds_ratio_low=math.exp(log_or - half_width),
        odds_ratio_high=math.exp(log_or + half_width),
        homogeneity_p=_breslow_day_p(table, odds_ratio),
    )


def _informative_strata(strata: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
    cells = []
    for index, stratum in enumerate(strata):
        label = f"stratum {index}"
        try:
            rows = [list(row) for row in stratum]
        except TypeError:
            raise ValueError(f"{label} must be [[a_s, a_f], [b_s, b_f]]") from None
        if len(rows) != 2 or any(len(row) != 2 for row in rows):
            raise ValueError(f"{label} must be [[a_s, a_f], [b_s, b_f]], got {stratum!r}")
        cells.append([[as_count(value, label) for value in row] for row in rows])
    if not cells:
        raise ValueError("stratified_test needs at least one stratum")
    table = np.asarray(cells, dtype=float)
    rows = table.sum(axis=2)
    columns = table.sum(axis=1)
    informative = np.all(rows > 0, axis=1) & np.all(columns > 0, axis=1)
    if not informative.any():
        raise ValueError(
            "no stratum compares the policies: each needs trials of both policies, "
            "and at least one success and one failure"
        )
    return table[informative]


def _breslow_day_p(table: np.ndarray, odds_ratio: float) -> float | None:
    """Breslow & Day (1980) homogeneity test (no Tarone adjustment, as statsmodels)."""
    if table.shape[0] < 2:
        return None
    a, b, c, d = table[:, 0, 0], table[:, 0, 1], table[:, 1, 0], table[:, 1, 1]
    row_a, col_s = a + b, a + c
    # E[a] under the common odds ratio r solves (1 - r) e² + beta e + gamma = 0 with
    # beta = r (row_a + col_s) + d - a and gamma = -r row_a col_s; the admissible root,
    # (-beta + sqrt(beta² - 4 (1 - r) gamma)) / (2 (1 - r)), is taken in the form without
    # cancellation (it is -gamma / beta when r = 1).
    quad_a = 1.0 - odds_ratio
    quad_b = odds_ratio * (row_a + col_s) + d - a
    quad_c = -odds_ratio * row_a * col_s
    root = np.sqrt(quad_b**2 - 4.0 * quad_a * quad_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(
            quad_b >= 0.0,
            2.0 * quad_c / (-quad_b - root),
            (-quad_b + root) / (2.0 * quad_a),
        )
    variance = 1.0 / (
        1.0 / expected
        + 1.0 / (col_s - expected)
        + 1.0 / (row_a - expected)
        + 1.0 / (d - a + expected)
    )
    statistic = float(np.sum((a - expected) ** 2 / variance))
    return float(sps.chi2.sf(statistic, table.shape[0] - 1))
