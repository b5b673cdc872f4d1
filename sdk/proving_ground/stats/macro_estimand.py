"""One estimand for a whole leaderboard: the macro average, ranked, compared and lettered.

Used by scoring version ``pg-score/2``. A policy's figure is the macro average over tasks:
each task's rate pooled over its cells (task x condition), tasks weighted equally. The same
quantity is

* estimated exactly (rational arithmetic, so equal averages are equal: ties share a rank),
* given a stratified bootstrap interval (trials resampled within each cell),
* ranked, with bootstrap rank intervals from the same replicates,
* compared pair by pair with a stratified permutation test whose statistic is the difference
  of the two macro averages (trials of the two policies exchanged within each cell, so the
  null is "the same success rate in every cell"), Holm-adjusted,
* and lettered from those comparisons.

Two guarantees tie the outputs to the order of the estimates. Significance is closed
inwards: a pair counts as significant only when every pair enclosing it on the board (a
policy at least as high against one at least as low) is significant too, which only drops
rejections, so the family-wise error stays controlled; the letters are then contiguous
runs down the board. Rank interval ends are widened (never narrowed) to be non-decreasing
down the board. So neither a letter nor a rank interval ever puts a lower estimate above a
higher one.

Determinism. Every stream is seeded by a SHA-256 of canonical, order-free content (sorted
cell counts, never names or their order), and the draws come from numpy's legacy
``RandomState`` (binomial, hypergeometric), whose stream numpy freezes across versions
(NEP 19: "RandomState ... stream-compatible"; only fixes of incorrect values excepted),
unlike ``Generator``'s methods.

References
    Efron, B. (1979). Bootstrap methods: another look at the jackknife. Ann. Statist. 7(1).
    Good, P. (2005). Permutation, Parametric, and Bootstrap Tests of Hypotheses. Springer.
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J.
        Statist. 6(2), 65-70.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_ALPHA,
    DEFAULT_CONFIDENCE,
    Result,
    as_count,
    check_probability_level,
    check_resamples,
)
from proving_ground.stats.intervals import wilson_bounds, z_two_sided
from proving_ground.stats.multiple_comparisons import (
    PairComparison,
    compact_letter_display,
    holm_adjust,
)

_SEED_NAMESPACE = "proving-ground/macro-estimand/1"
# Replicate macro averages closer than this are equal (float noise of the same rationals).
_TOLERANCE = 1e-12

# A policy's design: per task, the (successes, trials) of its cells.
Design = Sequence[Sequence[tuple[int, int]]]


def stable_rng(purpose: str, payload: object) -> np.random.RandomState:
    """A legacy ``RandomState`` seeded by SHA-256 of canonical JSON: its binomial and
    hypergeometric streams are frozen by numpy (NEP 19), so the draws are the same on any
    machine and numpy version."""
    text = json.dumps([_SEED_NAMESPACE, purpose, payload], separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).digest()
    return np.random.RandomState(np.frombuffer(digest, dtype=">u4").astype(np.uint32))


def _check_design(design: Design, label: str) -> list[list[tuple[int, int]]]:
    tasks = []
    for t, cells in enumerate(design):
        checked = []
        for c, (k, n) in enumerate(cells):
            k, n = as_count(k, f"{label}task {t} cell {c} successes"), as_count(n, "trials")
            if k > n:
                raise ValueError(f"{label}task {t} cell {c}: successes exceed trials")
            checked.append((k, n))
        if not checked or sum(n for _, n in checked) == 0:
            raise ValueError(f"{label}task {t} has no trials: a macro average needs every task")
        tasks.append(checked)
    if not tasks:
        raise ValueError(f"{label}a macro average needs at least one task")
    return tasks


def _canonical(tasks: list[list[tuple[int, int]]]) -> list[list[list[int]]]:
    """Order-free form: each task's cells sorted, tasks sorted."""
    return sorted(sorted([k, n] for k, n in cells) for cells in tasks)


def exact_macro(tasks: Design) -> Fraction:
    """The macro average as an exact fraction: mean over tasks of (sum k) / (sum n)."""
    rates = [Fraction(sum(k for k, _ in c), sum(n for _, n in c)) for c in tasks]
    return sum(rates, Fraction(0)) / len(rates)


def _indicator(task_of: np.ndarray, tasks: int) -> np.ndarray:
    """(cells, tasks) 0/1 matrix: summing cells into tasks is one matrix product."""
    return (task_of[:, None] == np.arange(tasks)[None, :]).astype(np.float64)


def _bootstrap(canonical: list[list[list[int]]], resamples: int, rng) -> np.ndarray:
    """Macro averages of stratified bootstrap replicates (k* ~ Binomial(n, k/n) per cell)."""
    flat = np.array([cell for cells in canonical for cell in cells], dtype=np.int64)
    task_of = np.repeat(np.arange(len(canonical)), [len(cells) for cells in canonical])
    draws = rng.binomial(flat[:, 1], flat[:, 0] / np.maximum(flat[:, 1], 1), (resamples, len(flat)))
    per_task = draws @ _indicator(task_of, len(canonical))
    task_n = np.bincount(task_of, weights=flat[:, 1])
    return (per_task / task_n).mean(axis=1)


@dataclasses.dataclass(frozen=True)
class MacroRow(Result):
    """A policy: exact macro average (and as a float), bootstrap interval, rank (ties share
    the better rank), rank interval and letters, all about the same quantity."""

    policy: str
    estimate: float
    low: float
    high: float
    rank: int
    rank_low: int
    rank_high: int
    letters: str


@dataclasses.dataclass(frozen=True)
class MacroBoard(Result):
    rows: tuple[MacroRow, ...]
    # Pairs as `multiple_comparisons.PairComparison`: difference of macro averages with a
    # bootstrap interval, stratified permutation p, Holm-adjusted, ``significant`` after the
    # inward closure (see the module docstring).
    pairs: tuple[PairComparison, ...]
    confidence: float
    alpha: float
    resamples: int


def _interval(estimate: float, reps: np.ndarray, tasks, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = (float(v) for v in np.quantile(reps, [tail, 1.0 - tail]))
    cells = [cell for cells in tasks for cell in cells if cell[1]]
    if any(k in (0, n) for k, n in cells):
        # Nothing to resample in an all-or-nothing cell: widen to the Wilson interval at the
        # effective sample size, as ``aggregates.macro_average`` does.
        task_n = [sum(n for _, n in c) for c in tasks]
        n_eff = len(task_n) ** 2 / math.fsum(1.0 / n for n in task_n)  # order-free
        w_low, w_high = wilson_bounds(estimate * n_eff, n_eff, z_two_sided(level))
        low, high = min(low, w_low), max(high, w_high)
    return max(0.0, min(low, estimate)), min(1.0, max(high, estimate))


def _permutation_p(a, b, observed: Fraction, resamples: int) -> float:
    """Stratified permutation test of "same rate in every cell": within each cell the pooled
    successes are re-dealt to the two policies (hypergeometric), and the statistic is the
    difference of the macro averages. Monte Carlo p = (1 + #{|D*| >= |D|}) / (B + 1)."""
    if observed == 0:
        return 1.0
    rows = sorted(
        sorted([ka, na, kb, nb] for (ka, na), (kb, nb) in zip(ca, cb, strict=True))
        for ca, cb in zip(a, b, strict=True)
    )
    rng = stable_rng("permutation", rows)
    flat = np.array([cell for cells in rows for cell in cells], dtype=np.int64)
    task_of = np.repeat(np.arange(len(rows)), [len(cells) for cells in rows])
    good, total, n_a = flat[:, 0] + flat[:, 2], flat[:, 1] + flat[:, 3], flat[:, 1]
    if np.all((good == 0) | (good == total) | (n_a == 0) | (n_a == total)):
        x = np.broadcast_to(flat[:, 0], (resamples, len(flat)))
    else:
        x = rng.hypergeometric(good, total - good, np.maximum(n_a, 0), (resamples, len(flat)))
    indicator = _indicator(task_of, len(rows))
    sums_a, sums_b = x @ indicator, (good - x) @ indicator
    rate_a = sums_a / np.bincount(task_of, weights=flat[:, 1])
    rate_b = sums_b / np.bincount(task_of, weights=flat[:, 3])
    stats = (rate_a - rate_b).mean(axis=1)
    extreme = np.abs(stats) >= abs(float(observed)) - _TOLERANCE
    return float((1 + int(extreme.sum())) / (resamples + 1))


def _close_inwards(significant: np.ndarray) -> np.ndarray:
    """Keep (p, q) (board positions, p < q) only if every enclosing pair is significant."""
    m = significant.shape[0]
    closed = np.zeros_like(significant)
    for p in range(m):
        for q in range(m - 1, p, -1):
            closed[p, q] = (
                significant[p, q]
                and (p == 0 or closed[p - 1, q])
                and (q == m - 1 or closed[p, q + 1])
            )
    return closed


def macro_leaderboard(
    policies: Mapping[str, Design],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = 10_000,
) -> MacroBoard:
    """Rank, interval, compare and letter policies on one estimand, the macro average.

    ``policies`` maps a label to its design: per task, its cells' (successes, trials), the
    same tasks and cells in the same positions for every policy (a cell may be 0/0 only if
    its task has other trials). Rows come best first (ties share the better rank, then input
    order); pairs in board order, ``first`` above ``second``. Pure function of the counts:
    renaming or reordering tasks, cells or policies changes nothing but labels and order.
    """
    level = check_probability_level(confidence, "confidence")
    cut = check_probability_level(alpha, "alpha")
    count = check_resamples(resamples)
    labels = list(policies)
    designs = {label: _check_design(policies[label], f"{label}: ") for label in labels}
    estimates = {label: exact_macro(designs[label]) for label in labels}
    canonical = {label: _canonical(designs[label]) for label in labels}
    seen: dict[str, int] = {}
    replicates = {}
    for label in sorted(labels, key=lambda lab: (canonical[lab], str(lab))):
        key = json.dumps(canonical[label])
        occurrence = seen[key] = seen.get(key, -1) + 1
        rng = stable_rng("bootstrap", [canonical[label], occurrence])
        replicates[label] = _bootstrap(canonical[label], count, rng)

    rank = {lab: 1 + sum(estimates[o] > estimates[lab] for o in labels) for lab in labels}
    order = sorted(labels, key=lambda lab: (rank[lab], labels.index(lab)))
    m = len(order)
    reps = np.array([replicates[lab] for lab in order]).reshape(m, count)
    boot_ranks = 1 + (reps[None, :, :] > reps[:, None, :] + _TOLERANCE).sum(axis=1)
    tail = (1.0 - level) / 2.0
    lows = [int(np.quantile(boot_ranks[i], tail, method="inverted_cdf")) for i in range(m)]
    highs = [int(np.quantile(boot_ranks[i], 1 - tail, method="inverted_cdf")) for i in range(m)]
    lows = [min(low, rank[lab]) for low, lab in zip(lows, order, strict=True)]
    highs = [max(high, rank[lab]) for high, lab in zip(highs, order, strict=True)]
    # Widen so both ends are non-decreasing down the board.
    for i in range(m - 2, -1, -1):
        lows[i] = min(lows[i], lows[i + 1])
    for i in range(1, m):
        highs[i] = max(highs[i], highs[i - 1])

    compared = []
    for p in range(m):
        for q in range(p + 1, m):
            a, b = order[p], order[q]
            diff = estimates[a] - estimates[b]
            d_low, d_high = np.quantile(replicates[a] - replicates[b], [tail, 1.0 - tail])
            p_value = _permutation_p(designs[a], designs[b], diff, count)
            compared.append((p, q, float(diff), float(d_low), float(d_high), p_value))
    adjusted = holm_adjust([c[-1] for c in compared])
    significant = np.zeros((m, m), dtype=bool)
    for (p, q, *_), p_adj in zip(compared, adjusted, strict=True):
        significant[p, q] = p_adj < cut
    closed = _close_inwards(significant)
    letters = compact_letter_display(
        [float(m - i) for i in range(m)],
        [(p, q) for p in range(m) for q in range(p + 1, m) if closed[p, q]],
    )
    pairs = tuple(
        PairComparison(
            first=order[p],
            second=order[q],
            difference=diff,
            difference_low=min(d_low, diff),
            difference_high=max(d_high, diff),
            p_value=p_value,
            p_adjusted=p_adj,
            significant=bool(closed[p, q]),
            test="stratified permutation (macro average)",
        )
        for (p, q, diff, d_low, d_high, p_value), p_adj in zip(compared, adjusted, strict=True)
    )
    rows = []
    for i, label in enumerate(order):
        estimate = float(estimates[label])
        low, high = _interval(estimate, replicates[label], designs[label], level)
        rows.append(
            MacroRow(label, estimate, low, high, rank[label], lows[i], highs[i], letters[i])
        )
    return MacroBoard(tuple(rows), pairs, level, cut, count)
