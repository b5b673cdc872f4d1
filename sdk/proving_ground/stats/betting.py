"""Anytime-valid tests on partial credit by betting (Waudby-Smith & Ramdas 2023).

For scores in [0, 1] (stage scores, partial credit) rather than successes and failures. The
test plays a betting game against the null hypothesis "the mean score is m": starting with
wealth 1, before each new score x_t it stakes a fraction lambda_t (chosen from the past only,
"predictable") and its wealth is multiplied by 1 + lambda_t (x_t - m). If the mean really is m
the game is fair (the wealth is a nonnegative martingale) and by Ville's (1939) inequality the
wealth ever reaching 1/alpha has probability at most alpha: so the test may be looked at after
every trial and stopped at any time. The wealth is the e-value.

Bets are aGRAPA's (Waudby-Smith & Ramdas 2023, section 5.3): lambda_t = (mu_t - m) /
(sigma2_t + (mu_t - m)^2), from the running mean mu_t and variance sigma2_t of the past scores
(both started at 1/2 and 1/4 as one pseudo-observation), truncated to stake at most half of the
wealth that a worst-case score could take (c = 1/2). A two-sided test averages a game betting
on "above m" and one betting on "below m" (hedged capital, their section 4.2); when it reaches
1/alpha the direction whose game carries the wealth is named, and the wrong direction is named
with probability at most alpha as well.

* ``betting_paired_test``: two policies on paired trials; differences a - b in [-1, 1] are
  mapped to (d + 1) / 2 in [0, 1] and tested against m = 1/2 (no difference in mean score).
* ``betting_threshold_test``: one policy's mean score against a threshold m.

References
    Ville, J. (1939). Étude critique de la notion de collectif. Gauthier-Villars.
    Waudby-Smith, I. & Ramdas, A. (2023). Estimating means of bounded random variables by
        betting. J. R. Statist. Soc. B 86(1), 1-27 (read before the Society in 2023).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from proving_ground.stats.conventions import DEFAULT_ALPHA, Result, check_probability_level

# Truncation: a bet may lose at most this fraction of the wealth on the worst possible score.
_MAX_STAKE = 0.5
_ALTERNATIVES = ("two-sided", "greater", "less")


def betting_e_process(
    values: Sequence[float] | np.ndarray, null_mean: float, alternative: str = "two-sided"
) -> np.ndarray:
    """The e-process (wealth) after each score: array of the same shape as ``values``.

    ``values`` in [0, 1]: one sequence, or a 2-D array with one sequence per row (scored
    independently, for simulation). ``alternative``: "greater" bets on mean > null_mean
    (valid for H0: mean <= null_mean), "less" the reverse, "two-sided" the average of both.
    """
    x = np.asarray(values, dtype=float)
    m = float(null_mean)
    if not 0.0 < m < 1.0:
        raise ValueError(f"null_mean must be strictly between 0 and 1, got {null_mean!r}")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if x.ndim not in (1, 2):
        raise ValueError("values must be a sequence or a 2-D array of sequences")
    if x.size and (not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0):
        raise ValueError("every value must be a number in [0, 1]")
    rows = np.atleast_2d(x)
    count, length = rows.shape
    up, down = np.ones(count), np.ones(count)
    total, squares = np.zeros(count), np.zeros(count)
    mean = np.full(count, 0.5)
    up_path, down_path = np.empty((count, length)), np.empty((count, length))
    for t in range(length):
        # Predictable: everything below uses scores 0..t-1 only.
        estimate = (0.5 + total) / (t + 1)
        variance = (0.25 + squares) / (t + 1)
        edge = estimate - m
        bet = edge / (variance + edge**2)
        score = rows[:, t]
        up *= 1.0 + np.clip(bet, 0.0, _MAX_STAKE / m) * (score - m)
        down *= 1.0 - np.clip(-bet, 0.0, _MAX_STAKE / (1.0 - m)) * (score - m)
        up_path[:, t], down_path[:, t] = up, down
        total += score
        squares += (score - mean) ** 2
        mean = (0.5 + total) / (t + 2)
    if alternative == "greater":
        path = up_path
    elif alternative == "less":
        path = down_path
    else:
        path = (up_path + down_path) / 2.0
    return path.reshape(x.shape)


@dataclasses.dataclass(frozen=True)
class BettingTest(Result):
    """Where an anytime-valid betting test stands after ``observations`` scores.

    ``decision``: "continue" (not yet), or the named direction once the e-value reached
    1/alpha ("a_better" / "b_better" for paired trials, "above" / "below" for a threshold);
    the test stops there and ``e_value`` / ``stopped_at`` (1-based) are those of the stop.
    ``anytime_p_value`` = min(1, 1 / largest e-value so far), valid at any stopping time."""

    decision: str
    rejected: bool
    e_value: float
    anytime_p_value: float
    stopped_at: int | None
    observations: int
    null_mean: float
    alternative: str
    alpha: float


def _decide(
    scores: np.ndarray, m: float, alternative: str, alpha: float, names: tuple[str, str]
) -> BettingTest:
    level = check_probability_level(alpha, "alpha")
    path = betting_e_process(scores, m, alternative)
    crossed = np.flatnonzero(path >= 1.0 / level)
    if crossed.size:
        stop = int(crossed[0])
        if alternative == "two-sided":
            up = betting_e_process(scores[: stop + 1], m, "greater")[-1]
            down = betting_e_process(scores[: stop + 1], m, "less")[-1]
            decision = names[0] if up >= down else names[1]
        else:
            decision = names[0] if alternative == "greater" else names[1]
        e_value, largest, stopped_at = float(path[stop]), float(path[: stop + 1].max()), stop + 1
    else:
        decision, stopped_at = "continue", None
        e_value = float(path[-1]) if path.size else 1.0
        largest = float(path.max()) if path.size else 1.0
    return BettingTest(
        decision=decision,
        rejected=stopped_at is not None,
        e_value=e_value,
        anytime_p_value=min(1.0, 1.0 / max(largest, 1.0)),
        stopped_at=stopped_at,
        observations=int(scores.size),
        null_mean=m,
        alternative=alternative,
        alpha=level,
    )


def _as_scores(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(list(values), dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of scores")
    if array.size and (not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1):
        raise ValueError(f"{name} must hold scores in [0, 1]")
    return array


def betting_paired_test(
    a_scores: Sequence[float],
    b_scores: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    alternative: str = "two-sided",
) -> BettingTest:
    """Anytime-valid test that policies A and B have the same mean score on paired trials.

    ``a_scores[i]`` and ``b_scores[i]`` are A's and B's scores in [0, 1] on pair i (same
    initial condition), in the order the pairs completed. The differences d = a - b in
    [-1, 1] are bet on as (d + 1) / 2 against 1/2. "greater" tests H1: A better, "less" H1:
    B better. Stops at the first pair where the e-value reaches 1/alpha.
    """
    a = _as_scores(a_scores, "a_scores")
    b = _as_scores(b_scores, "b_scores")
    if a.size != b.size:
        raise ValueError(f"paired scores must have equal lengths, got {a.size} and {b.size}")
    return _decide((a - b + 1.0) / 2.0, 0.5, alternative, alpha, ("a_better", "b_better"))


def betting_threshold_test(
    scores: Sequence[float],
    threshold: float,
    *,
    alpha: float = DEFAULT_ALPHA,
    alternative: str = "greater",
) -> BettingTest:
    """Anytime-valid test of one policy's mean score in [0, 1] against ``threshold``.

    Default "greater": H0 mean <= threshold vs H1 mean > threshold (a certification claim:
    "above" once the e-value reaches 1/alpha). "less" and "two-sided" as in
    ``betting_e_process``. ``threshold`` strictly between 0 and 1.
    """
    values = _as_scores(scores, "scores")
    return _decide(values, float(threshold), alternative, alpha, ("above", "below"))
