"""Actual coverage of every interval the platform shows, beside its nominal level.

A 95% interval should contain the true value in at least 95% of repeated experiments. This
script measures how often each interval does, over a grid of true rates (0.01-0.99), trials
(5-100) and conditions (1-8): exactly, by summing binomial probabilities over every possible
outcome, where that is feasible; otherwise by simulation, with the Monte Carlo standard
error printed. The baseline is the nominal level: each line prints mean and minimum coverage
and their ratio to it. Run from the repository root:

    .venv/bin/python -m bench.bench_coverage            # full grid, a few minutes
    .venv/bin/python -m bench.bench_coverage --quick    # smaller grid, seconds

Every interval is computed by the platform's own function (tables of its bounds per outcome);
the two that are vectorised here (the worst-condition and best-minus-worst intervals, from
per-condition ``simultaneous_bounds``) are checked against the functions first.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import time

import numpy as np
from scipy import stats

from proving_ground.stats.aggregates import macro_average
from proving_ground.stats.agreement import cohens_kappa_from_counts
from proving_ground.stats.bayes import beta_posterior
from proving_ground.stats.comparisons import newcombe_difference_interval
from proving_ground.stats.intervals import clopper_pearson_interval, wilson_interval
from proving_ground.stats.robustness import robustness_summary, simultaneous_bounds
from proving_ground.stats.uncertainty import (
    best_minus_worst_interval,
    iqm_interval,
    stage_score_interval,
)

NOMINAL = 0.95
COARSE_RATES = (0.01, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99)


@dataclasses.dataclass
class Coverage:
    """Coverage of one interval over its grid: one value per grid point."""

    name: str
    how: str
    values: list[float] = dataclasses.field(default_factory=list)
    points: list[str] = dataclasses.field(default_factory=list)

    def add(self, value: float, point: str) -> None:
        self.values.append(float(value))
        self.points.append(point)

    def line(self) -> str:
        values = np.array(self.values)
        worst = int(np.argmin(values))
        return (
            f"{self.name:<40} {NOMINAL:>7.2f} {values.mean():>6.3f} "
            f"{values.mean() / NOMINAL:>6.3f} {values.min():>6.3f} "
            f"{values.min() / NOMINAL:>6.3f} {len(values):>6}  "
            f"min at {self.points[worst]}; {self.how}"
        )


def _pmf(n: int, rates) -> np.ndarray:
    """P(K = k) for k = 0..n, one row per rate: shape (len(rates), n + 1)."""
    return stats.binom.pmf(np.arange(n + 1)[None, :], n, np.asarray(rates, dtype=float)[:, None])


def single_cell(ns, rates) -> list[Coverage]:
    wilson = Coverage("one cell, Wilson", "exact")
    clopper = Coverage("one cell, Clopper-Pearson 2-sided", "exact")
    # The Bayesian view's credible interval, read as a frequentist one: how often it holds
    # the true rate when the rate is fixed (it promises 95% only averaged over the prior).
    credible = Coverage("one cell, Beta(1,1) credible (Bayes)", "exact")
    rates = np.asarray(rates)
    for n in ns:
        pmf = _pmf(n, rates)
        posteriors = [beta_posterior(k, n) for k in range(n + 1)]
        for result, bounds in (
            (wilson, [wilson_interval(k, n) for k in range(n + 1)]),
            (clopper, [clopper_pearson_interval(k, n) for k in range(n + 1)]),
            (credible, [(b.low, b.high) for b in posteriors]),
        ):
            low, high = np.array(bounds).T
            covers = (low[None, :] <= rates[:, None]) & (rates[:, None] <= high[None, :])
            for rate, value in zip(rates, (pmf * covers).sum(axis=1), strict=True):
                result.add(value, f"p={rate:.2f} n={n}")
    return [wilson, clopper, credible]


def newcombe(ns, rates) -> Coverage:
    result = Coverage("difference, Newcombe", "exact")
    for n in ns:
        table = np.empty((n + 1, n + 1, 2))
        for a, b in itertools.product(range(n + 1), repeat=2):
            table[a, b] = newcombe_difference_interval(a, n, b, n)
        pmf = dict(zip(rates, _pmf(n, rates), strict=True))
        for p_a, p_b in itertools.product(rates, repeat=2):
            d = p_a - p_b
            covers = (table[:, :, 0] <= d + 1e-12) & (d - 1e-12 <= table[:, :, 1])
            result.add(pmf[p_a] @ covers @ pmf[p_b], f"pA={p_a} pB={p_b} n={n}")
    return result


def _bound_table(n: int, m: int, method: str) -> np.ndarray:
    return np.array([simultaneous_bounds(k, n, m, NOMINAL, method) for k in range(n + 1)])


def worst_condition(ns, ms, rates) -> list[Coverage]:
    """[min L, min U] covers p_min iff every U >= p_min and some L <= p_min: with independent
    conditions, P = prod P(U >= p_min) - prod P(U >= p_min and L > p_min) (exact)."""
    out = []
    for method, label in (("clopper-pearson", "new"), ("wilson", "old")):
        result = Coverage(f"worst condition, {method} ({label})", "exact")
        for n, m in itertools.product(ns, ms):
            bounds = _bound_table(n, m, method)
            configs = [(p,) * m for p in rates]
            if m > 1:  # spread rates: the worst is one condition, the rest better
                configs += [tuple(np.linspace(lo, hi, m)) for lo, hi in ((0.5, 0.9), (0.9, 0.99))]
            for config in configs:
                p_min = min(config)
                upper_ok = bounds[:, 1] >= p_min
                above = upper_ok & (bounds[:, 0] > p_min)
                pmf = _pmf(n, config)
                value = pmf[:, upper_ok].sum(axis=1).prod() - pmf[:, above].sum(axis=1).prod()
                result.add(value, f"p={_show(config)} n={n} m={m}")
        out.append(result)
    return out


def _show(config) -> str:
    return f"{config[0]:.2f}" if len(set(config)) == 1 else f"{min(config):.2f}-{max(config):.2f}"


def best_minus_worst(ns, ms, rate_sets, draws: int, rng) -> Coverage:
    result = Coverage("best minus worst (new)", f"exact if (n+1)^m <= 50,000, else {draws:,} draws")
    for n, m in itertools.product(ns, ms):
        low_tab, high_tab = _bound_table(n, m, "clopper-pearson").T
        for low_rate, high_rate in rate_sets:
            config = np.linspace(low_rate, high_rate, m)
            gap = config.max() - config.min()
            if (n + 1) ** m <= 50_000:
                outcomes = np.array(list(itertools.product(range(n + 1), repeat=m)))
                weights = np.prod(_pmf(n, config)[np.arange(m), outcomes], axis=1)
            else:
                outcomes = rng.binomial(n, config, size=(draws, m))
                weights = np.full(draws, 1.0 / draws)
            rates = outcomes / n
            estimate = rates.max(axis=1) - rates.min(axis=1)
            lows, highs = low_tab[outcomes], high_tab[outcomes]
            low = np.minimum(estimate, np.maximum(0.0, lows.max(axis=1) - highs.min(axis=1)))
            high = np.maximum(estimate, highs.max(axis=1) - lows.min(axis=1))
            covers = (low <= gap + 1e-12) & (gap - 1e-12 <= high)
            result.add(weights @ covers, f"p={_show(tuple(config))} n={n} m={m}")
    return result


def macro(ns, ms, rate_sets, runs: int, rng) -> Coverage:
    result = Coverage("macro average, bootstrap", _mc(runs))
    for n, m in itertools.product(ns, ms):
        for low_rate, high_rate in rate_sets:
            config = np.linspace(low_rate, high_rate, m)
            truth = config.mean()
            hits = 0
            for _ in range(runs):
                cells = [(int(k), n) for k in rng.binomial(n, config)]
                interval = macro_average(cells)
                hits += interval.low <= truth <= interval.high
            result.add(hits / runs, f"p={_show(tuple(config))} n={n} m={m}")
    return result


def _mc(runs: int) -> str:
    error = math.sqrt(NOMINAL * (1 - NOMINAL) / runs)
    return f"simulation, {runs:,} runs a point (MC s.e. {error:.3f} at 0.95)"


# Stage-score distributions on [0, 1] with their means.
STAGE_SCORES = {
    "Bernoulli(0.9)": (lambda rng, size: (rng.random(size) < 0.9).astype(float), 0.9),
    "Beta(2,2)": (lambda rng, size: rng.beta(2, 2, size), 0.5),
    "Beta(5,1)": (lambda rng, size: rng.beta(5, 1, size), 5 / 6),
    "Beta(0.5,0.5)": (lambda rng, size: rng.beta(0.5, 0.5, size), 0.5),
    "0:20%, 1:70%, else U": (
        lambda rng, size: np.select(
            [(u := rng.random(size)) < 0.2, u < 0.9], [0.0, 1.0], rng.random(size)
        ),
        0.7 + 0.1 * 0.5,
    ),
}


def stage_score(ns, runs: int, rng) -> Coverage:
    result = Coverage("mean stage score (new)", _mc(runs))
    for name, (draw, truth) in STAGE_SCORES.items():
        for n in ns:
            hits = 0
            for _ in range(runs):
                interval = stage_score_interval(draw(rng, n))
                hits += interval.low <= truth <= interval.high
            result.add(hits / runs, f"{name} n={n}")
    return result


IQM_DISTRIBUTIONS = {"U(0,1)": (1, 1), "Beta(2,5)": (2, 5), "Beta(0.5,0.5)": (0.5, 0.5)}


def iqm(ns, runs: int, rng) -> Coverage:
    result = Coverage("IQM, bootstrap (new)", _mc(runs))
    for name, (a, b) in IQM_DISTRIBUTIONS.items():
        truth = float(np.mean(stats.beta.ppf(np.linspace(0.25, 0.75, 20001), a, b)))
        for n in ns:
            hits = 0
            for _ in range(runs):
                interval = iqm_interval(rng.beta(a, b, n))
                hits += interval.low <= truth <= interval.high
            result.add(hits / runs, f"{name} n={n}")
    return result


# Operator vs automatic check, as a population table {(operator, check): share}, by its
# true kappa: agreement on 80/90/97% of trials with successes at 70%.
KAPPA_TABLES = {
    f"agree {agree:.0%}": {
        ("success", "success"): 0.7 * agree,
        ("success", "failure"): 0.7 * (1 - agree),
        ("failure", "failure"): 0.3 * agree,
        ("failure", "success"): 0.3 * (1 - agree),
    }
    for agree in (0.8, 0.9, 0.97)
}


def kappa(ns, runs: int, rng) -> list[Coverage]:
    """Cohen's kappa's two intervals around the population kappa; draws where kappa is
    undefined (one label only) are left out and counted in the point's label."""
    out = [
        Coverage("kappa, agreement-score (board)", _mc(runs)),
        Coverage("kappa, large-sample (statsmodels)", _mc(runs)),
    ]
    for name, table in KAPPA_TABLES.items():
        cells, shares = list(table), np.array(list(table.values()))
        truth = cohens_kappa_from_counts(
            {cell: int(round(share * 1_000_000)) for cell, share in table.items()}
        ).kappa
        for n in ns:
            hits, undefined = [0, 0], 0
            for draw in rng.multinomial(n, shares, size=runs):
                counts = dict(zip(cells, map(int, draw), strict=True))
                try:
                    intervals = [
                        cohens_kappa_from_counts(counts, interval=method)
                        for method in ("agreement-score", "large-sample")
                    ]
                except ValueError:
                    undefined += 1
                    continue
                for i, interval in enumerate(intervals):
                    hits[i] += interval.low <= truth <= interval.high
            point = f"{name} (kappa {truth:.2f}) n={n}" + (
                f", {undefined} undefined draws" if undefined else ""
            )
            for result, hit in zip(out, hits, strict=True):
                result.add(hit / max(1, runs - undefined), point)
    return out


def check_vectorised_forms() -> None:
    """The worst-condition and gap bounds used above are those of the public functions."""
    cells = {"a": (3, 10), "b": (9, 10), "c": (10, 10)}
    summary = robustness_summary(cells)
    table = _bound_table(10, 3, "clopper-pearson")
    assert math.isclose(summary.worst_low, min(table[k, 0] for k, _ in cells.values()))
    assert math.isclose(summary.worst_high, min(table[k, 1] for k, _ in cells.values()))
    gap = best_minus_worst_interval(cells)
    lows, highs = (np.array([table[k, i] for k, _ in cells.values()]) for i in (0, 1))
    assert math.isclose(gap.low, max(0.0, lows.max() - highs.min()))
    assert math.isclose(gap.high, highs.max() - lows.min())


def run(quick: bool) -> list[Coverage]:
    rng = np.random.default_rng(20240612)
    fine_rates = np.round(np.arange(0.01, 1.0, 0.01), 2)
    if quick:
        cell_ns, pair_ns, ns, ms = (5, 10, 20, 50, 100), (5, 10, 20), (5, 10, 20), (1, 2, 4, 8)
        runs, iqm_runs, draws = 200, 60, 2_000
        cell_rates = COARSE_RATES
    else:
        cell_ns, pair_ns, ns, ms = (
            range(5, 101),
            (5, 10, 20, 50, 100),
            (5, 10, 20, 50, 100),
            (1, 2, 4, 8),
        )
        runs, iqm_runs, draws = 1_000, 300, 20_000
        cell_rates = fine_rates
    check_vectorised_forms()
    gap_rates = ((0.5, 0.5), (0.9, 0.9), (0.99, 0.99), (0.5, 0.9), (0.2, 0.8), (0.9, 0.99))
    macro_rates = ((0.5, 0.5), (0.9, 0.9), (0.99, 0.99), (0.3, 0.95))
    results = single_cell(cell_ns, cell_rates)
    results.append(newcombe(pair_ns, COARSE_RATES))
    results += worst_condition(ns, ms, COARSE_RATES)
    results.append(macro((10, 20), (1, 3, 8), macro_rates, runs // 4 if quick else runs // 2, rng))
    results.append(stage_score((5, 10, 20, 50), runs, rng))
    results.append(iqm((10, 30) if quick else (10, 20, 50), iqm_runs, rng))
    results += kappa((20, 50, 100, 200), runs, rng)
    results.append(
        best_minus_worst(
            (5, 10, 20) if quick else (5, 10, 20, 50), (2, 4, 8), gap_rates, draws, rng
        )
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid (seconds)")
    args = parser.parse_args()
    start = time.perf_counter()
    results = run(args.quick)
    print(f"Coverage at nominal {NOMINAL:.0%} ({'quick' if args.quick else 'full'} grid)")
    print(
        f"{'interval':<40} {'nominal':>7} {'mean':>6} {'ratio':>6} {'min':>6} {'ratio':>6} "
        f"{'points':>6}  where the minimum is; how measured"
    )
    for result in results:
        print(result.line())
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
