"""Preferences (A/B sessions): the Bradley & Terry (1952) model by maximum likelihood.

A tie counts half a win to each side (the convention of Chatbot Arena's FastChat code;
Davidson's 1970 tie model uses the same sufficient statistic, wins + ties / 2). The MLE exists
only if the "has beaten" graph is strongly connected (Ford 1957); otherwise we raise.

References
    Bradley, R. A. & Terry, M. E. (1952). Rank analysis of incomplete block designs I.
        Biometrika 39(3/4), 324-345.
    Davidson, R. R. (1970). On extending the Bradley-Terry model to accommodate ties in paired
        comparison experiments. JASA 65(329), 317-328.
    Ford, L. R. (1957). Solution of a ranking problem from binary comparisons. Amer. Math.
        Monthly 64(8), 28-33.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    check_probability_level,
    check_resamples,
    seeded_rng,
    special,
)
from proving_ground.stats.intervals import z_two_sided

# Bradley-Terry refits per resample cost a batched Newton solve; 2,000 is plenty for a
# percentile interval on a handful of policies.
DEFAULT_BT_RESAMPLES = 2_000
_BT_MAX_NEWTON_STEPS = 100
_BT_STEP_TOLERANCE = 1e-11


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
class BradleyTerryFit(Result):
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
    batched Newton solve, and is seeded by the counts. When some pair's sessions all went
    one way (all ties, or all wins of one side) the bootstrap cannot vary that pair, so the
    intervals are widened to cover strength +- z x standard error.
    """
    wins, tie_counts = _bt_inputs(win_matrix, ties)
    level = check_probability_level(confidence, "confidence")
    count = check_resamples(resamples)
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
    rng = seeded_rng("bradley_terry_intervals", payload)
    draws = rng.multinomial(totals, frequencies, size=(count, totals.size))
    boot_scores = np.zeros((count, m, m))
    boot_scores[:, upper_i, upper_j] = draws[..., 0] + draws[..., 2] / 2.0
    boot_scores[:, upper_j, upper_i] = draws[..., 1] + draws[..., 2] / 2.0
    valid = _strongly_connected(boot_scores)
    fitted = _fit_bradley_terry(boot_scores[valid]) if valid.any() else strengths[None]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(fitted, [tail, 1.0 - tail], axis=0)
    if np.any((totals > 0) & (frequencies.max(axis=-1) >= 1.0)):
        # A pair whose sessions all went one way (all ties, say) has nothing to resample: its
        # bootstrap replicates are all alike and the percentile interval collapses (every
        # session a tie gave [0, 0] with a standard error of 0.42). Widen to cover the Wald
        # interval from the observed information, as the macro average widens to Wilson.
        z = z_two_sided(level)
        low = np.minimum(low, strengths - z * standard_errors)
        high = np.maximum(high, strengths + z * standard_errors)
    return BradleyTerryFit(
        strengths=tuple(float(v) for v in strengths),
        standard_errors=tuple(float(v) for v in standard_errors),
        low=tuple(float(v) for v in np.minimum(low, strengths)),
        high=tuple(float(v) for v in np.maximum(high, strengths)),
        confidence=level,
        resamples=count,
        degenerate_resamples=int((~valid).sum()),
    )
