"""bench/bench_coverage.py's quick grid runs and measures what the statistics spec claims."""

from __future__ import annotations

import pytest

from bench import bench_coverage


@pytest.mark.slow
def test_quick_coverage_grid_runs_and_shows_the_old_worst_condition_bug():
    results = {result.name: result for result in bench_coverage.run(quick=True)}
    assert min(results["worst condition, clopper-pearson (new)"].values) >= 0.95
    assert min(results["worst condition, wilson (old)"].values) < 0.5
    assert min(results["one cell, Clopper-Pearson 2-sided"].values) >= 0.95
    assert min(results["best minus worst (new)"].values) >= 0.95
    # The board's kappa interval holds close to its level where the large-sample one fails.
    assert min(results["kappa, agreement-score (board)"].values) >= 0.9
    assert min(results["kappa, large-sample (statsmodels)"].values) < 0.6
