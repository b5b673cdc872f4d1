"""Agreement between two raters: Cohen's kappa with a large-sample interval.

Two raters (two operators, or an operator and the automatic success check) label the same
trials. Raw agreement overstates how well they agree: two raters who both say "success" 90%
of the time agree 82% of the time by chance alone. Cohen's (1960) kappa rescales the
observed agreement p_o against the agreement expected by chance from each rater's own label
frequencies, p_e: kappa = (p_o - p_e) / (1 - p_e). 1 is perfect agreement, 0 is chance, and
below 0 worse than chance. Its standard error is the large-sample one of Fleiss, Cohen &
Everitt (1969), as statsmodels' ``cohens_kappa`` computes it.

References
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
        Psychological Measurement 20(1), 37-46.
    Fleiss, J. L., Cohen, J. & Everitt, B. S. (1969). Large sample standard errors of kappa
        and weighted kappa. Psychological Bulletin 72(5), 323-327.
    Landis, J. R. & Koch, G. G. (1977). The measurement of observer agreement for
        categorical data. Biometrics 33(1), 159-174.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    check_probability_level,
    sps,
)
from proving_ground.stats.intervals import wilson_interval


@dataclasses.dataclass(frozen=True)
class CohensKappa(Result):
    """Cohen's kappa, its interval [low, high] (kappa -+ z SE, clipped to [-1, 1]), the
    observed and chance-expected agreement, and the number of trials labelled by both."""

    kappa: float
    low: float
    high: float
    observed_agreement: float
    expected_agreement: float
    n: int


def cohens_kappa(
    labels_a: Sequence[Hashable],
    labels_b: Sequence[Hashable],
    confidence: float = DEFAULT_CONFIDENCE,
    interval: str = "large-sample",
) -> CohensKappa:
    """Cohen's (1960) kappa of two raters' labels of the same items, in the same order.

    Labels are any hashable values (``True``/``False``, ``"success"``/``"failure"``,
    failure categories); the categories are the union of both raters'. With p_ij the share
    of items rater A labelled i and rater B labelled j, row and column shares p_i. and p_.j:

        p_o = sum p_ii,   p_e = sum p_i. p_.i,   kappa = (p_o - p_e) / (1 - p_e)

    and the interval kappa -+ z SE with Fleiss, Cohen & Everitt's (1969) variance

        SE² = [sum p_ii (1 - (p_i. + p_.i)(1 - kappa))²
               + (1 - kappa)² sum_(i != j) p_ij (p_.i + p_j.)²
               - (kappa - p_e (1 - kappa))²] / ((1 - p_e)² n),

    clipped to [-1, 1] (``interval="large-sample"``, the default, as statsmodels). That
    interval is a normal approximation and falls short where raters agree almost always,
    the usual case for operators and automatic checks: measured coverage of a nominal 95%
    is 0.42-0.47 at 20 items and 0.91 at 200 when 97% agree (bench/bench_coverage.py); at
    100% observed agreement its width is 0. ``interval="agreement-score"`` is Wilson's
    interval of the observed agreement p_o rescaled as kappa is, (bound - p_e) / (1 - p_e)
    with p_e held fixed: measured coverage 0.93-0.97 on the same grid; the leaderboard
    shows it. Raises ``ValueError`` when the lists differ in length or are
    empty, and when both raters gave every item the same single label (p_e = 1: kappa is
    0/0; report the raw agreement instead).
    """
    level = check_probability_level(confidence, "confidence")
    first, second = list(labels_a), list(labels_b)
    if len(first) != len(second):
        raise ValueError(
            f"the raters labelled different numbers of items ({len(first)} and {len(second)})"
        )
    if not first:
        raise ValueError("cohens_kappa needs at least one item labelled by both raters")
    categories = {label: index for index, label in enumerate(dict.fromkeys(first + second))}
    table = np.zeros((len(categories), len(categories)))
    for label_a, label_b in zip(first, second, strict=True):
        table[categories[label_a], categories[label_b]] += 1.0
    return _kappa_from_table(table, level, interval)


def cohens_kappa_from_counts(
    counts: Mapping[tuple[Hashable, Hashable], int],
    confidence: float = DEFAULT_CONFIDENCE,
    interval: str = "large-sample",
) -> CohensKappa:
    """``cohens_kappa`` from a contingency table: ``{(label_a, label_b): items}``, how many
    items rater A labelled ``label_a`` and rater B ``label_b`` (a leaderboard's grouped query
    gives this, so no list of a million labels is built). The same result, intervals and
    ``ValueError`` cases as ``cohens_kappa`` on the expanded labels; negative or non-integer
    counts raise ``ValueError``."""
    level = check_probability_level(confidence, "confidence")
    for pair, items in counts.items():
        if isinstance(items, bool) or not isinstance(items, numbers.Integral) or items < 0:
            raise ValueError(f"the count of {pair!r} must be a non-negative integer, got {items!r}")
    present = {pair: int(items) for pair, items in counts.items() if items}
    if not present:
        raise ValueError("cohens_kappa needs at least one item labelled by both raters")
    labels = dict.fromkeys(label for pair in present for label in pair)
    categories = {label: index for index, label in enumerate(labels)}
    table = np.zeros((len(categories), len(categories)))
    for (label_a, label_b), items in present.items():
        table[categories[label_a], categories[label_b]] += items
    return _kappa_from_table(table, level, interval)


INTERVALS = ("large-sample", "agreement-score")


def _kappa_from_table(table: np.ndarray, level: float, interval: str) -> CohensKappa:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    # Agreements from the integer counts, so perfect agreement gives kappa = 1 exactly.
    n = float(table.sum())
    shares = table / n
    rows, columns = shares.sum(axis=1), shares.sum(axis=0)
    observed = float(np.trace(table)) / n
    expected = float(np.sum(table.sum(axis=1) * table.sum(axis=0))) / (n * n)
    if expected >= 1.0:
        raise ValueError(
            "kappa is undefined: both raters gave every item the same label "
            f"(observed agreement {observed:.3f})"
        )
    kappa = (observed - expected) / (1.0 - expected)
    diagonal = np.diag(shares)
    term_a = float(np.sum(diagonal * (1.0 - (rows + columns) * (1.0 - kappa)) ** 2))
    off = shares * (columns[:, None] + rows[None, :]) ** 2
    np.fill_diagonal(off, 0.0)
    term_b = (1.0 - kappa) ** 2 * float(off.sum())
    term_c = (kappa - expected * (1.0 - kappa)) ** 2
    variance = max(0.0, (term_a + term_b - term_c) / (1.0 - expected) ** 2 / n)
    if interval == "agreement-score":
        # Wilson's interval of the observed agreement, rescaled as kappa is with the chance
        # agreement held fixed: it keeps width when the raters agreed on every item, where
        # the large-sample standard error is 0.
        agree_low, agree_high = wilson_interval(int(round(np.trace(table))), int(n), level)
        low = (agree_low - expected) / (1.0 - expected)
        high = (agree_high - expected) / (1.0 - expected)
    else:
        half_width = float(sps.norm.ppf(0.5 + level / 2.0)) * math.sqrt(variance)
        low, high = kappa - half_width, kappa + half_width
    return CohensKappa(
        kappa=kappa,
        low=max(-1.0, low),
        high=min(1.0, high),
        observed_agreement=observed,
        expected_agreement=expected,
        n=int(n),
    )
