"""Task-adjusted policy effects (binomial GLM, cluster-robust by cell)."""

from __future__ import annotations

import numpy as np
import pytest

from proving_ground.stats.logistic import SeparationError, logistic_effects

# Unbalanced: policy A never ran the hard task; B and C ran both, unequally often.
UNBALANCED = [
    ("A", "easy", 22, 30),
    ("A", "easy", 25, 30),
    ("B", "easy", 27, 30),
    ("B", "easy", 28, 30),
    ("B", "hard", 9, 30),
    ("B", "hard", 12, 30),
    ("B", "hard", 10, 30),
    ("C", "easy", 20, 30),
    ("C", "hard", 4, 30),
    ("C", "hard", 7, 20),
]


def _trials(cells):
    """One row per trial: policy, task, outcome, cell id."""
    rows = []
    for cell, (policy, task, k, n) in enumerate(cells):
        rows += [(policy, task, 1, cell)] * k + [(policy, task, 0, cell)] * (n - k)
    return rows


def test_estimates_match_statsmodels_on_individual_trials_with_formula_coding():
    import pandas as pd
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    data = pd.DataFrame(_trials(UNBALANCED), columns=["policy", "task", "y", "cell"])
    reference = smf.glm("y ~ C(policy) + C(task)", data, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": data["cell"], "use_correction": False}
    )
    result = logistic_effects(UNBALANCED)
    assert result.policy_effects["B"][0] == pytest.approx(reference.params["C(policy)[T.B]"])
    assert result.policy_effects["C"][0] == pytest.approx(reference.params["C(policy)[T.C]"])
    assert result.task_effects["hard"][0] == pytest.approx(reference.params["C(task)[T.hard]"])
    # Same clusters, same scores: the robust errors differ only by the small-sample factor,
    # whose N is trials there and cells here: G/(G-1) * (N-1)/(N-K).
    g, k = 10, 4
    factor = np.sqrt(g / (g - 1) * (g - 1) / (g - k))
    assert result.policy_effects["B"][1] == pytest.approx(
        reference.bse["C(policy)[T.B]"] * factor, rel=1e-6
    )
    assert result.task_effects["hard"][1] == pytest.approx(
        reference.bse["C(task)[T.hard]"] * factor, rel=1e-6
    )


def test_standard_errors_are_the_cluster_sandwich_computed_by_hand():
    result = logistic_effects(UNBALANCED)
    policies, tasks = ["A", "B", "C"], ["easy", "hard"]
    x = np.array([[1, p == "B", p == "C", t == "hard"] for p, t, _, _ in UNBALANCED], dtype=float)
    beta = np.array(
        [0.0]  # intercept recovered below from the fit's mean equations
        + [result.policy_effects[p][0] for p in policies[1:]]
        + [result.task_effects[t][0] for t in tasks[1:]]
    )
    k = np.array([c[2] for c in UNBALANCED], float)
    n = np.array([c[3] for c in UNBALANCED], float)
    # Intercept: solve the first score equation sum(k - n p) = 0 by bisection.
    low, high = -10.0, 10.0
    for _ in range(200):
        beta[0] = (low + high) / 2
        p = 1 / (1 + np.exp(-(x @ beta)))
        low, high = (beta[0], high) if (k - n * p).sum() > 0 else (low, beta[0])
    p = 1 / (1 + np.exp(-(x @ beta)))
    bread = np.linalg.inv(x.T @ (x * (n * p * (1 - p))[:, None]))
    scores = x * (k - n * p)[:, None]
    g, params = x.shape
    meat = scores.T @ scores * g / (g - 1) * (g - 1) / (g - params)
    se = np.sqrt(np.diag(bread @ meat @ bread))
    assert result.policy_effects["B"][1] == pytest.approx(se[1], rel=1e-5)
    assert result.policy_effects["C"][1] == pytest.approx(se[2], rel=1e-5)
    assert result.task_effects["hard"][1] == pytest.approx(se[3], rel=1e-5)


def test_reference_levels_are_the_first_in_input_order_and_reported_as_zero():
    result = logistic_effects(UNBALANCED)
    assert (result.reference_policy, result.reference_task) == ("A", "easy")
    assert result.policy_effects["A"] == (0.0, 0.0, 0.0, 0.0)
    assert result.task_effects["easy"] == (0.0, 0.0, 0.0, 0.0)
    assert list(result.policy_effects) == ["A", "B", "C"]
    estimate, error, low, high = result.policy_effects["B"]
    assert low == pytest.approx(estimate - 1.959964 * error, rel=1e-5)
    assert high == pytest.approx(estimate + 1.959964 * error, rel=1e-5)
    assert result.residual_df == 10 - 4 and result.cells == 10
    assert result.to_dict()["policy_effects"]["A"] == [0.0, 0.0, 0.0, 0.0]


def test_the_model_reverses_pooled_rates_when_a_policy_never_ran_the_hard_task():
    cells = [(p, t, k, n) for p, t, k, n in UNBALANCED if p in ("A", "B")]
    pooled = {
        policy: sum(k for p, _, k, _ in cells if p == policy)
        / sum(n for p, _, _, n in cells if p == policy)
        for policy in ("A", "B")
    }
    assert pooled["A"] > pooled["B"]  # 0.78 vs 0.57: A looks better pooled ...
    result = logistic_effects(cells)
    estimate, _, low, _ = result.policy_effects["B"]
    assert estimate > 0  # ... but on the same task B has higher odds than A
    assert result.task_effects["hard"][0] < 0
    assert result.deviance >= 0


def test_the_issue_example_has_a_finite_fit_that_says_the_additive_model_does_not_fit():
    # t1 under three conditions, t2 under one, 30 trials each. A: 30/30 on t1, 0/30 on t2;
    # B: 12/30 on t1, 30/30 on t2. Every A cell and B's t2 cell are all-or-nothing, yet no
    # direction of (policy, task) effects predicts them all (A's t2 failures need a low t2
    # effect, B's t2 successes a high one), so the MLE exists and is finite.
    cells = [("A", "t1", 30, 30)] * 3 + [("A", "t2", 0, 30)]
    cells += [("B", "t1", 12, 30)] * 3 + [("B", "t2", 30, 30)]
    result = logistic_effects(cells)
    estimate, error, low, high = result.policy_effects["B"]
    assert estimate == pytest.approx(-0.9312, abs=1e-3)
    assert low < 0 < high  # the policies rank oppositely on the two tasks: no verdict
    assert error > 1.0
    # Deviance 171 on 5 degrees of freedom: policy and task interact; the additive effect
    # is an average of disagreeing cells and the page must show the cells.
    assert result.deviance == pytest.approx(170.907, abs=1e-2)
    assert result.residual_df == 5


def test_a_policy_perfect_everywhere_raises_separation_error_naming_its_cells():
    cells = [("A", "t1", 30, 30), ("A", "t2", 30, 30)]
    cells += [("B", "t1", 12, 30), ("B", "t2", 20, 30), ("B", "t1", 14, 30)]
    with pytest.raises(SeparationError, match=r"\(A, t1\) 30/30"):
        logistic_effects(cells)
    zero = [(p, t, 0 if p == "A" else k, n) for p, t, k, n in cells]
    with pytest.raises(SeparationError):
        logistic_effects(zero)
    assert issubclass(SeparationError, ValueError)


def test_a_task_every_policy_fails_is_separation_too():
    cells = [("A", "t1", 20, 30), ("B", "t1", 10, 30), ("A", "t2", 0, 30), ("B", "t2", 0, 30)]
    cells += [("A", "t1", 18, 30)]
    with pytest.raises(SeparationError, match="t2"):
        logistic_effects(cells)


def test_designs_it_cannot_fit_are_refused():
    disconnected = [("A", "t1", 5, 10), ("A", "t1", 6, 10), ("B", "t2", 3, 10), ("B", "t2", 4, 10)]
    with pytest.raises(ValueError, match="not identifiable"):
        logistic_effects(disconnected)
    saturated = [("A", "t1", 5, 10), ("B", "t1", 7, 10)]
    with pytest.raises(ValueError, match="more cells than parameters"):
        logistic_effects(saturated)
    with pytest.raises(ValueError, match="no cells"):
        logistic_effects([])
    with pytest.raises(ValueError, match="0/0"):
        logistic_effects([("A", "t1", 0, 0)])
    with pytest.raises(ValueError, match="policy, task, successes, trials"):
        logistic_effects([("A", 5, 10)])
