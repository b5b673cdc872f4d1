"""Scores over runs and tasks: optimality gap and probability of improvement, with
stratified bootstrap intervals, as defined by Agarwal et al. (2021) and their ``rliable``
library (google-research/rliable, ``metrics.py`` and ``library.py``).

Input is a matrix of ``runs x tasks`` scores (``scores[r][t]``: run r on task t), e.g. a stage
score in [0, 1] per evaluation run. Every policy's matrix has one column per task, in the same
task order; the number of runs may differ between policies.

* ``optimality_gap``: how far below a target ``gamma`` the scores fall, on average:
  mean over runs and tasks of max(gamma - score, 0) (= gamma - mean(min(score, gamma)), rliable's
  form). 0 means every run reached gamma; unlike the mean it gives no credit above gamma.
* ``probability_of_improvement``: P(X > Y), the chance that a run of policy X on a task scores
  above a run of Y on the same task (ties count 1/2: the Mann-Whitney U statistic divided by
  n_x n_y), averaged over tasks. 0.5 means neither is better.

Intervals are percentile intervals of a **stratified bootstrap**: runs are resampled with
replacement within each task (the tasks are fixed by the benchmark; only the runs are random),
independently for X and Y in the probability of improvement (rliable's
``StratifiedBootstrap`` / ``StratifiedIndependentBootstrap``). The generator is seeded by the
scores themselves (``conventions.seeded_rng``): the same scores give the same interval.

References
    Agarwal, R., Schwarzer, M., Castro, P. S., Courville, A. & Bellemare, M. G. (2021). Deep
        reinforcement learning at the edge of the statistical precipice. NeurIPS 34.
    Efron, B. (1979). Bootstrap methods: another look at the jackknife. Ann. Statist. 7(1).
    Mann, H. B. & Whitney, D. R. (1947). On a test of whether one of two random variables is
        stochastically larger than the other. Ann. Math. Statist. 18(1), 50-60.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    check_probability_level,
    check_resamples,
    seeded_rng,
)

DEFAULT_RESAMPLES = 2000
# Resamples computed at once in the probability of improvement (memory: chunk x runs^2).
_CHUNK = 500


@dataclasses.dataclass(frozen=True)
class BootstrapEstimate(Result):
    """A point estimate with its stratified-bootstrap percentile interval [low, high]."""

    estimate: float
    low: float
    high: float
    confidence: float
    resamples: int


def _as_scores(values: Sequence[Sequence[float]] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a runs x tasks matrix with at least one of each")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must hold finite numbers")
    return array


def optimality_gap(scores: Sequence[Sequence[float]] | np.ndarray, gamma: float = 1.0) -> float:
    """Agarwal et al.'s (2021) optimality gap: the mean over runs x tasks of
    max(gamma - score, 0). ``scores`` is runs x tasks. [[1, 0.5], [0.8, 1.2]] at gamma 1:
    (0 + 0.5 + 0.2 + 0) / 4 = 0.175."""
    array = _as_scores(scores, "scores")
    return float(np.mean(np.maximum(float(gamma) - array, 0.0)))


def optimality_gap_interval(
    scores: Sequence[Sequence[float]] | np.ndarray,
    gamma: float = 1.0,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
) -> BootstrapEstimate:
    """``optimality_gap`` with a stratified bootstrap percentile interval (runs resampled
    within each task; seeded by the scores, gamma, confidence and resamples)."""
    array = _as_scores(scores, "scores")
    level = check_probability_level(confidence, "confidence")
    count = check_resamples(resamples)
    gap = np.maximum(float(gamma) - array, 0.0)
    rng = seeded_rng("rliable/optimality_gap", [array.tolist(), float(gamma), level, count])
    runs, tasks = array.shape
    picks = rng.integers(0, runs, size=(count, runs, tasks))
    replicates = gap[picks, np.arange(tasks)].mean(axis=(1, 2))
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return BootstrapEstimate(float(gap.mean()), float(low), float(high), level, count)


def _wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per task, the n_x x n_y matrix of 1 (x wins), 1/2 (tie), 0 (y wins): tasks first."""
    xt, yt = x.T[:, :, None], y.T[:, None, :]
    return (xt > yt).astype(float) + 0.5 * (xt == yt)


def _check_pair(x_runs_by_tasks, y_runs_by_tasks) -> tuple[np.ndarray, np.ndarray]:
    x = _as_scores(x_runs_by_tasks, "x_runs_by_tasks")
    y = _as_scores(y_runs_by_tasks, "y_runs_by_tasks")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X has {x.shape[1]} tasks and Y {y.shape[1]}: they must match")
    return x, y


def probability_of_improvement(
    x_runs_by_tasks: Sequence[Sequence[float]] | np.ndarray,
    y_runs_by_tasks: Sequence[Sequence[float]] | np.ndarray,
) -> float:
    """Agarwal et al.'s (2021) probability of improvement of X over Y: per task, the
    Mann-Whitney U of X vs Y over n_x n_y, i.e. P(X > Y) + P(X = Y) / 2 over all pairs of
    runs, then averaged over tasks. In [0, 1]; 0.5 when neither is better, and
    P(X over Y) + P(Y over X) = 1. Runs x tasks matrices with the same tasks (columns)."""
    x, y = _check_pair(x_runs_by_tasks, y_runs_by_tasks)
    return float(_wins(x, y).mean(axis=(1, 2)).mean())


def probability_of_improvement_interval(
    x_runs_by_tasks: Sequence[Sequence[float]] | np.ndarray,
    y_runs_by_tasks: Sequence[Sequence[float]] | np.ndarray,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = DEFAULT_RESAMPLES,
) -> BootstrapEstimate:
    """``probability_of_improvement`` with a stratified bootstrap percentile interval: X's
    and Y's runs resampled independently, within each task (rliable's
    StratifiedIndependentBootstrap); seeded by both matrices, confidence and resamples."""
    x, y = _check_pair(x_runs_by_tasks, y_runs_by_tasks)
    level = check_probability_level(confidence, "confidence")
    count = check_resamples(resamples)
    wins = _wins(x, y)
    rng = seeded_rng("rliable/probability_of_improvement", [x.tolist(), y.tolist(), level, count])
    (nx, tasks), ny = x.shape, y.shape[0]
    x_picks = rng.integers(0, nx, size=(count, tasks, nx))
    y_picks = rng.integers(0, ny, size=(count, tasks, ny))
    replicates = np.zeros(count)
    for task in range(tasks):
        table = wins[task]
        for start in range(0, count, _CHUNK):
            stop = min(count, start + _CHUNK)
            picked = table[x_picks[start:stop, task, :, None], y_picks[start:stop, task, None, :]]
            replicates[start:stop] += picked.mean(axis=(1, 2))
    replicates /= tasks
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    estimate = float(wins.mean(axis=(1, 2)).mean())
    return BootstrapEstimate(estimate, float(low), float(high), level, count)
