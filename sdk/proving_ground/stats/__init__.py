"""Statistics behind every leaderboard figure: success rates, comparisons, rankings.

Robot evaluations are small: ten to fifty trials per cell, a handful of policies, outcomes
that are successes or failures. Normal approximations fail exactly where we live (rates near
0 or 1, n below 30), so every figure here is exact or has a small-sample justification, and
every figure is reproducible from its counts. The package is pure numpy/scipy so the same code
runs on the server, in a notebook and on a robot; it never imports Django. scipy is imported
on first use (the SDK's ``stats`` extra). The full spec, with worked examples, is
``docs/statistics.md``.

Modules (import each name from the module that defines it):

- `conventions`: defaults, the lazily imported scipy, count and level checks, seeded
  generators, the result base with ``to_dict()``.
- `intervals`: one cell, k successes in n trials (Wilson, Clopper-Pearson).
- `comparisons`: two policies (Fisher, Boschloo, McNemar, Newcombe's difference interval).
- `multiple_comparisons`: many policies (Holm, compact letter display).
- `aggregates`: the interquartile mean, macro averages with a stratified bootstrap, ranks.
- `bradley_terry`: preferences from A/B sessions.
- `sequential`: anytime-valid A/B tests (mixture martingale, SAVI).
- `robustness`: per-condition rates, the worst condition, homogeneity.
- `power`: trials per policy to detect a difference.
"""
