"""Cost of the leaderboard statistics, measured side by side.

Prints two tables: Boschloo's exact test against Fisher's at the same trials per arm (the
ratio is why leaderboards use Boschloo only for small arms, see
``proving_ground.stats.BOSCHLOO_MAX_TRIALS_PER_ARM``), and the leaderboard-size bootstrap (20
policies x 50 cells x 10,000 resamples). Run from the repository root:

    .venv/bin/python -m bench.bench_stats
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np

from bench.timing import best_of
from proving_ground.stats.aggregates import macro_average, policy_leaderboard
from proving_ground.stats.comparisons import boschloo_exact, cached_boschloo_p, cached_fisher_p
from proving_ground.stats.multiple_comparisons import pairwise_comparisons

POLICIES = 20
CELLS = 50
TRIALS_PER_CELL = 10
RESAMPLES = 10_000


def _uncached(test: Callable[..., float], *counts: int) -> Callable[[], float]:
    # The public functions cache by counts; time the computation, not the cache.
    def run() -> float:
        test.cache_clear()  # type: ignore[attr-defined]
        return test(*counts, "two-sided")

    return run


def bench_exact_tests() -> None:
    print("Exact tests, two-sided, rates 0.7 vs 0.5 (uncached, best of runs)")
    print(f"{'n per arm':>10} {'fisher ms':>10} {'boschloo ms':>12} {'ratio':>8}")
    for n in (50, 200, 500):
        counts = (int(0.7 * n), n, int(0.5 * n), n)
        repeats = 5 if n <= 200 else 2
        fisher_s = best_of(_uncached(cached_fisher_p, *counts), 20)
        boschloo_s = best_of(_uncached(cached_boschloo_p, *counts), repeats)
        print(
            f"{n:>10} {fisher_s * 1e3:>10.2f} {boschloo_s * 1e3:>12.1f} "
            f"{boschloo_s / fisher_s:>8.0f}"
        )
    cached = best_of(lambda: boschloo_exact(350, 500, 250, 500), 5)
    print(f"cached repeat at n=500: {cached * 1e6:.1f} us")


def _leaderboard_data() -> dict[str, list[tuple[int, int]]]:
    rng = np.random.default_rng(0)
    policies = {}
    for index in range(POLICIES):
        rates = rng.beta(2 + index / 4, 2, size=CELLS)
        successes = rng.binomial(TRIALS_PER_CELL, rates)
        policies[f"policy-{index:02d}"] = [(int(k), TRIALS_PER_CELL) for k in successes]
    return policies


def bench_bootstrap() -> None:
    policies = _leaderboard_data()
    one_policy = next(iter(policies.values()))
    print()
    print(
        f"Bootstrap: {POLICIES} policies x {CELLS} cells x {RESAMPLES:,} resamples "
        f"({TRIALS_PER_CELL} trials per cell)"
    )
    macro_s = best_of(lambda: macro_average(one_policy, resamples=RESAMPLES), 5)
    board_runs = [
        best_of(lambda: policy_leaderboard(policies, resamples=RESAMPLES), 1) for _ in range(3)
    ]
    totals = {
        label: (sum(k for k, _ in cells), sum(n for _, n in cells))
        for label, cells in policies.items()
    }

    def pairwise_uncached() -> None:
        cached_fisher_p.cache_clear()
        pairwise_comparisons(totals, test="fisher")

    pairwise_s = best_of(pairwise_uncached, 3)
    print(f"{'figure':<60} {'seconds':>8}")
    print(f"{'macro_average, one policy':<60} {macro_s:>8.3f}")
    print(
        f"{'policy_leaderboard (macro + rank intervals), median of 3':<60} "
        f"{statistics.median(board_runs):>8.3f}"
    )
    print(f"{'pairwise_comparisons, 190 pairs Fisher + Holm + letters':<60} {pairwise_s:>8.3f}")


if __name__ == "__main__":
    bench_exact_tests()
    bench_bootstrap()
