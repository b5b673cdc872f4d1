"""Many policies: all pairwise tests, Holm's adjustment and a compact letter display.

Holm's (1979) step-down adjustment controls the family-wise error at alpha with no
independence assumption. The compact letter display follows Piepho's (2004) insert-absorb
algorithm: policies sharing a letter are not significantly different.

References
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J.
        Statist. 6(2), 65-70.
    Piepho, H.-P. (2004). An algorithm for a letter-based representation of all-pairwise
        comparisons. J. Comput. Graph. Statist. 13(2), 456-466.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from proving_ground.stats.comparisons import compare_two_policies
from proving_ground.stats.conventions import (
    DEFAULT_ALPHA,
    Result,
    check_counts,
    check_probability_level,
)


def holm_adjust(pvalues: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the input order.

    With the raw p-values sorted ascending p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)). Adjusted values are >= the raw
    ones, <= 1, and monotone in the raw order; reject H_i when adjusted_i <= alpha. Controls
    the family-wise error rate under any dependence. An empty input gives [].
    """
    return adjust_pvalues(pvalues, method="holm")


ADJUSTMENT_METHODS = ("holm", "bonferroni", "hommel", "fdr_bh")


def adjust_pvalues(pvalues: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values for a family of tests, in the input order; reject H_i when
    adjusted_i <= alpha. Equal to statsmodels' ``multipletests(p, method=method)[1]``.

    With m tests and the raw p-values sorted p_(1) <= ... <= p_(m):

    - ``"bonferroni"`` (Dunn 1961): min(1, m p_i). Family-wise error <= alpha under any
      dependence; the simplest and the most conservative.
    - ``"holm"`` (Holm 1979): max over j <= i of min(1, (m - j + 1) p_(j)). The same
      guarantee as Bonferroni and never less powerful: the default.
    - ``"hommel"`` (Hommel 1988; the adjusted values as computed by Wright 1992): controls
      the family-wise error when the tests are independent or positively dependent (Sarkar
      1998), as pairwise comparisons sharing a policy usually are; never less powerful than
      Holm. O(m²).
    - ``"fdr_bh"`` (Benjamini & Hochberg 1995): min over j >= i of min(1, m p_(j) / j).
      Controls the false discovery rate (the expected share of false claims among the
      claims) at alpha, under independence or positive dependence: for screening many
      policies, not for "A beats B" headlines.

    Adjusted values are >= the raw ones, <= 1, and keep the raw order. Raises
    ``ValueError`` on an unknown method or a p-value outside [0, 1]; [] gives [].

    References
        Benjamini, Y. & Hochberg, Y. (1995). Controlling the false discovery rate. J. R.
            Statist. Soc. B 57(1), 289-300.
        Dunn, O. J. (1961). Multiple comparisons among means. JASA 56(293), 52-64.
        Hommel, G. (1988). A stagewise rejective multiple test procedure based on a
            modified Bonferroni test. Biometrika 75(2), 383-386.
        Sarkar, S. K. (1998). Some probability inequalities for ordered MTP2 random
            variables: a proof of the Simes conjecture. Ann. Statist. 26(2), 494-504.
        Wright, S. P. (1992). Adjusted p-values for simultaneous inference. Biometrics
            48(4), 1005-1013.
    """
    if method not in ADJUSTMENT_METHODS:
        raise ValueError(f"method must be one of {ADJUSTMENT_METHODS}, got {method!r}")
    raw = np.asarray(list(pvalues), dtype=float)
    if raw.ndim != 1:
        raise ValueError("pvalues must be a flat sequence of numbers")
    if raw.size and (not np.all(np.isfinite(raw)) or raw.min() < 0.0 or raw.max() > 1.0):
        raise ValueError("every p-value must be a finite number in [0, 1]")
    m = raw.size
    order = np.argsort(raw, kind="stable")
    ordered = raw[order]
    if method == "bonferroni":
        scaled = m * ordered
    elif method == "holm":
        scaled = np.maximum.accumulate((m - np.arange(m)) * ordered)
    elif method == "fdr_bh":
        scaled = np.minimum.accumulate((ordered / (np.arange(1, m + 1) / m))[::-1])[::-1]
    else:
        scaled = _hommel_sorted(ordered)
    adjusted = np.empty(m)
    # Floored at the raw values: m p / j can round one ulp below p.
    adjusted[order] = np.minimum(1.0, np.maximum(scaled, ordered))
    return [float(value) for value in adjusted]


def _hommel_sorted(ordered: np.ndarray) -> np.ndarray:
    """Hommel's adjusted p-values of ascending p-values (Wright 1992): for each subset size
    j from m down to 2, c_j = min over the j largest of j p_(m-j+k) / k; the j largest are
    raised to at least c_j and the others to at least min(j p_(i), c_j)."""
    adjusted = ordered.copy()
    m = ordered.size
    for size in range(m, 1, -1):
        tail = ordered[m - size :]
        c_size = float(np.min(size * tail / np.arange(1, size + 1)))
        adjusted[m - size :] = np.maximum(adjusted[m - size :], c_size)
        head = ordered[: m - size]
        adjusted[: m - size] = np.maximum(adjusted[: m - size], np.minimum(size * head, c_size))
    return adjusted


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
class PairComparison(Result):
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
class PairwiseComparisons(Result):
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
    level = check_probability_level(alpha, "alpha")
    labels = list(totals)
    counts = [check_counts(*totals[label], label=str(label)) for label in labels]
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
