"""Sequential A/B: anytime-valid e-processes.

On paired trials, a uniform-prior mixture martingale on the discordant pairs (Robbins 1970).
By Ville's (1939) inequality it may be checked after every pair and stopped at any time with
type I error at most alpha (Howard et al. 2021; Ramdas et al. 2023). The SAVI e-process of
Turner & Grünwald (2023) is provided for independent streams.

References
    Howard, S. R., Ramdas, A., McAuliffe, J. & Sekhon, J. (2021). Time-uniform, nonparametric,
        nonasymptotic confidence sequences. Ann. Statist. 49(2), 1055-1080.
    Ramdas, A., Grünwald, P., Vovk, V. & Shafer, G. (2023). Game-theoretic statistics and
        safe anytime-valid inference. Statist. Sci. 38(4), 576-601.
    Robbins, H. (1970). Statistical methods related to the law of the iterated logarithm.
        Ann. Math. Statist. 41(5), 1397-1409.
    Turner, R. J. & Grünwald, P. D. (2023). Exact anytime-valid confidence intervals for
        contingency tables and beyond. Statist. Probab. Lett. 198, 109835.
    Ville, J. (1939). Étude critique de la notion de collectif. Gauthier-Villars.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_ALPHA,
    Result,
    check_probability_level,
    special,
)


def _as_outcomes(values: Sequence[int], name: str) -> np.ndarray:
    array = np.asarray(list(values))
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of 0/1 outcomes")
    if array.size and not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must hold only 0 (failure) and 1 (success)")
    return array.astype(np.int64)


def discordant_log_e(a_only: np.ndarray, b_only: np.ndarray) -> np.ndarray:
    """log of the uniform-prior mixture martingale on discordant pairs (Robbins 1970).

    Under H0 each discordant pair favours A with probability 1/2; mixing the likelihood
    ratio over q ~ Uniform(0, 1) gives E = B(s + 1, f + 1) * 2^(s + f), a nonnegative
    martingale with E_0 = 1. Works elementwise on arrays of counts."""
    return special.betaln(a_only + 1.0, b_only + 1.0) + (a_only + b_only) * math.log(2.0)


@dataclasses.dataclass(frozen=True)
class SequentialTestState(Result):
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
    level = check_probability_level(alpha, "alpha")
    limit = operator.index(max_pairs)
    if limit < 1:
        raise ValueError(f"max_pairs must be at least 1, got {limit}")
    if a.size > limit:
        raise ValueError(f"got {a.size} pairs but the plan allows at most max_pairs={limit}")
    a_only = np.cumsum((a == 1) & (b == 0))
    b_only = np.cumsum((a == 0) & (b == 1))
    log_e = discordant_log_e(a_only, b_only)
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


def savi_log_e(first: np.ndarray, second: np.ndarray, alternative: str) -> np.ndarray:
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
class SaviResult(Result):
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
    level = check_probability_level(alpha, "alpha")
    log_e = savi_log_e(first, second, alternative)
    crossed = np.flatnonzero(log_e >= math.log(1.0 / level) - 1e-12)
    best = float(np.max(log_e)) if log_e.size else 0.0
    return SaviResult(
        e_values=tuple(float(v) for v in np.exp(log_e)),
        stopping_time=int(crossed[0]) + 1 if crossed.size else None,
        anytime_p_value=float(min(1.0, math.exp(-max(0.0, best)))),
        alternative=alternative,
        alpha=level,
    )
