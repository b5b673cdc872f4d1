"""Statistics behind every leaderboard figure: success rates, comparisons, rankings.

Robot evaluations are small: ten to fifty trials per cell, a handful of policies, outcomes
that are successes or failures. Normal approximations fail exactly where we live (rates near
0 or 1, n below 30), so every figure here is exact or has a small-sample justification, and
every figure is reproducible from its counts. The package is numpy, with scipy and
statsmodels imported on first use (the SDK's ``stats`` extra), so the same code runs on the
server, in a notebook and on a robot; it never imports Django. The full spec, with worked
examples, is ``docs/statistics.md``.

Modules (import each name from the module that defines it):

- `conventions`: defaults, the lazily imported scipy, count and level checks, seeded
  generators, the result base with ``to_dict()``.
- `intervals`: one cell, k successes in n trials (Wilson, Clopper-Pearson).
- `comparisons`: two policies (Fisher, Boschloo, McNemar, Newcombe's difference interval).
- `multiple_comparisons`: many policies (Holm, compact letter display, `adjust_pvalues`).
- `aggregates`: the interquartile mean, macro averages with a stratified bootstrap, ranks.
- `macro_estimand`: one estimand per board (pg-score/2): ranks, intervals, pairwise tests
  and letters all on the macro average.
- `invalid_rates`: invalid-trial rates per policy and the test for differences.
- `bradley_terry`: preferences from A/B sessions.
- `sequential`: anytime-valid A/B tests (mixture martingale, SAVI).
- `betting`: anytime-valid tests on partial credit (betting e-processes).
- `robustness`: per-condition rates, the worst condition (exact simultaneous bounds),
  homogeneity.
- `uncertainty`: intervals for the mean stage score, the IQM and the best-minus-worst gap.
- `bayes`: Beta posteriors, P(A > B), P(best), pass^k.
- `stratified`: the Cochran-Mantel-Haenszel test over tasks.
- `logistic`: task-adjusted policy effects (binomial GLM, cluster-robust errors).
- `rliable`: optimality gap and probability of improvement (Agarwal et al. 2021).
- `agreement`: Cohen's kappa between raters or between a rater and the automatic checks.
- `power`: trials per policy to detect a difference (exact, and a quick estimate).
"""
