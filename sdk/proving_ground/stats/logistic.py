"""Task-adjusted policy effects: a binomial GLM, logit(p) = policy + task.

Pooled success rates compare policies fairly only when every policy ran the same tasks the
same number of times. When the design is unbalanced (a policy never ran the hard task, or ran
it more often), pooled rates can even reverse the order of two policies. A logistic regression
with an additive policy effect and an additive task effect compares policies *as if* each had
run every task: the policy effect is a log-odds ratio against the reference policy, holding
the task fixed (Agresti 2013, ch. 5).

Standard errors are **cluster-robust, clustered by cell** (one cell = one input row, a policy
on a task under one condition): the sandwich estimator (Liang & Zeger 1986) stays valid when
trials within a cell are correlated (same objects, same lighting, same day) or when the
additive model does not hold exactly, where the model-based binomial errors would be too
small. Its caveat: it is an asymptotic in the number of *cells*, and with few cells (under
about 30-50, Cameron & Miller 2015) it is biased downwards even with statsmodels' small-sample
correction G/(G-1) * (N-1)/(N-K). A design with no more cells than parameters has zero
residuals and a meaningless robust error, so it is refused.

Separation. When some combination of effects predicts every trial perfectly (a policy with
0/n or n/n in every cell, say), the maximum likelihood estimate does not exist: the
likelihood keeps rising as an effect goes to infinity (Albert & Anderson 1984). Any finite
number reported would be an artefact of when the optimiser stopped. ``logistic_effects``
checks for separation with a linear program (Konis 2007) before fitting and raises
``SeparationError`` (a ``ValueError``) naming the cells involved, the same choice
``bradley_terry`` makes for a policy that never lost. Show such a policy's cell rates instead.

References
    Agresti, A. (2013). Categorical Data Analysis, 3rd ed. Wiley.
    Albert, A. & Anderson, J. A. (1984). On the existence of maximum likelihood estimates in
        logistic regression models. Biometrika 71(1), 1-10.
    Cameron, A. C. & Miller, D. L. (2015). A practitioner's guide to cluster-robust
        inference. J. Human Resources 50(2), 317-372.
    Konis, K. (2007). Linear programming algorithms for detecting separated data in binary
        logistic regression models. DPhil thesis, University of Oxford.
    Liang, K.-Y. & Zeger, S. L. (1986). Longitudinal data analysis using generalized linear
        models. Biometrika 73(1), 13-22.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    _ImportedOnUse,
    check_counts,
    check_probability_level,
)
from proving_ground.stats.intervals import z_two_sided

sm = _ImportedOnUse("statsmodels.api")
optimize = _ImportedOnUse("scipy.optimize")

# A direction whose LP objective exceeds this (with coefficients bounded by 1) separates.
_SEPARATION_TOLERANCE = 1e-7


class SeparationError(ValueError):
    """The maximum likelihood estimate does not exist: the data are (quasi-)separated."""


@dataclasses.dataclass(frozen=True)
class LogisticEffects(Result):
    """Effects on the log-odds scale against the reference policy and the reference task
    (the first of each in input order), each ``(estimate, standard_error, low, high)`` with
    a Wald interval from the cluster-robust error. The reference levels are included as
    ``(0.0, 0.0, 0.0, 0.0)``. ``deviance`` is the residual deviance of the grouped fit (on
    ``residual_df`` degrees of freedom: cells minus parameters); a deviance far above its
    degrees of freedom says the additive model fits poorly (policies rank differently on
    different tasks) and the effects are averages of disagreeing cells."""

    policy_effects: dict[str, tuple[float, float, float, float]]
    task_effects: dict[str, tuple[float, float, float, float]]
    deviance: float
    residual_df: int
    reference_policy: str
    reference_task: str
    cells: int
    confidence: float


def _parse_cells(cells: Iterable[tuple]) -> tuple[list[str], list[str], np.ndarray]:
    policies, tasks, counts = [], [], []
    for index, row in enumerate(cells):
        try:
            policy, task, successes, trials = row
        except (TypeError, ValueError):
            raise ValueError(
                f"cell {index} must be (policy, task, successes, trials), got {row!r}"
            ) from None
        k, n = check_counts(successes, trials, f"cell {index} ({policy}, {task})")
        policies.append(str(policy))
        tasks.append(str(task))
        counts.append((k, n))
    if not counts:
        raise ValueError("no cells: logistic_effects needs at least one (policy, task) cell")
    return policies, tasks, np.asarray(counts, dtype=float)


def _design(policies: list[str], tasks: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    policy_levels = list(dict.fromkeys(policies))
    task_levels = list(dict.fromkeys(tasks))
    columns = [np.ones(len(policies))]
    columns += [np.array([p == level for p in policies], float) for level in policy_levels[1:]]
    columns += [np.array([t == level for t in tasks], float) for level in task_levels[1:]]
    return np.column_stack(columns), policy_levels, task_levels


def separated_cells(design: np.ndarray, counts: np.ndarray) -> list[int]:
    """Indices of the cells a separating direction predicts perfectly; [] when the MLE exists.

    Konis's (2007) linear program: find d with |d_j| <= 1, x_i.d = 0 for cells with both
    outcomes, x_i.d >= 0 for all-success cells and <= 0 for all-failure cells, maximising
    the sum of |x_i.d| over the one-outcome cells. A positive optimum is a direction along
    which the likelihood rises forever (Albert & Anderson 1984)."""
    k, n = counts[:, 0], counts[:, 1]
    all_success, all_failure = k == n, k == 0
    if not (all_success.any() or all_failure.any()):
        return []
    sign = np.where(all_success, 1.0, np.where(all_failure, -1.0, 0.0))
    mixed = sign == 0.0
    objective = -(sign[:, None] * design).sum(axis=0)
    one_sided = ~mixed
    result = optimize.linprog(
        objective,
        A_ub=-(sign[one_sided, None] * design[one_sided]) if one_sided.any() else None,
        b_ub=np.zeros(one_sided.sum()) if one_sided.any() else None,
        A_eq=design[mixed] if mixed.any() else None,
        b_eq=np.zeros(mixed.sum()) if mixed.any() else None,
        bounds=[(-1.0, 1.0)] * design.shape[1],
        method="highs",
    )
    if result.status != 0 or -result.fun <= _SEPARATION_TOLERANCE:
        return []
    margin = sign * (design @ result.x)
    return [int(i) for i in np.flatnonzero(margin > _SEPARATION_TOLERANCE)]


def logistic_effects(
    cells: Iterable[tuple[str, str, int, int]], *, confidence: float = DEFAULT_CONFIDENCE
) -> LogisticEffects:
    """Task-adjusted policy effects from ``[(policy, task, successes, trials), ...]``.

    Fits the binomial GLM logit(p) = intercept + policy + task (statsmodels ``GLM`` with
    ``family=Binomial()`` on (successes, failures) per cell) with treatment coding: the first
    policy and the first task in input order are the references. Several cells may share a
    (policy, task) (conditions); each is its own cluster. Standard errors are cluster-robust,
    clustered by cell (``cov_type="cluster"``), Wald intervals at ``confidence``.

    Raises ``SeparationError`` (a ValueError) when the MLE does not exist (a policy 0/n or
    n/n everywhere, or any other separation; see the module docstring), ``ValueError`` when
    the design cannot separate policy from task effects (e.g. two policies that share no task
    and no chain of tasks) or has no more cells than parameters.
    """
    level = check_probability_level(confidence, "confidence")
    policies, tasks, counts = _parse_cells(cells)
    design, policy_levels, task_levels = _design(policies, tasks)
    rows, parameters = design.shape
    if np.linalg.matrix_rank(design) < parameters:
        raise ValueError(
            "policy and task effects are not identifiable from these cells: every policy must "
            "be connected to the others through shared tasks"
        )
    if rows <= parameters:
        raise ValueError(
            f"{rows} cells for {parameters} parameters: cluster-robust errors need more cells "
            "than parameters (with none left over every residual is zero)"
        )
    separated = separated_cells(design, counts)
    if separated:
        named = ", ".join(
            f"({policies[i]}, {tasks[i]}) {counts[i, 0]:.0f}/{counts[i, 1]:.0f}" for i in separated
        )
        raise SeparationError(
            "the maximum likelihood estimate does not exist (separation, Albert & Anderson "
            f"1984): the model can predict these cells perfectly with an infinite effect: {named}"
        )
    endog = np.column_stack([counts[:, 0], counts[:, 1] - counts[:, 0]])
    model = sm.GLM(endog, design, family=sm.families.Binomial())
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": np.arange(rows)})
    estimates = np.asarray(fit.params, dtype=float)
    errors = np.asarray(fit.bse, dtype=float)
    z = z_two_sided(level)

    def effect(column: int) -> tuple[float, float, float, float]:
        estimate, error = float(estimates[column]), float(errors[column])
        return estimate, error, estimate - z * error, estimate + z * error

    zero = (0.0, 0.0, 0.0, 0.0)
    policy_effects = {policy_levels[0]: zero}
    policy_effects.update({name: effect(1 + i) for i, name in enumerate(policy_levels[1:])})
    offset = len(policy_levels)
    task_effects = {task_levels[0]: zero}
    task_effects.update({name: effect(offset + i) for i, name in enumerate(task_levels[1:])})
    return LogisticEffects(
        policy_effects=policy_effects,
        task_effects=task_effects,
        deviance=float(fit.deviance),
        residual_df=rows - parameters,
        reference_policy=policy_levels[0],
        reference_task=task_levels[0],
        cells=rows,
        confidence=level,
    )
