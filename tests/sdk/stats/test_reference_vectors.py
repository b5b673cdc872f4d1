"""proving_ground.stats against the reference vectors, and two checks the vectors suggest.

The reference vectors (``stats_reference_vectors.json``) were produced by
numpy/scipy/statsmodels; each names the call that produced it. Every
vector id must have a checker below and every output field must either be checked against
our functions or be listed in ``NOT_OFFERED`` with the reason we do not compute it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proving_ground.stats.aggregates import interquartile_mean
from proving_ground.stats.bradley_terry import (
    bradley_terry,
    bradley_terry_intervals,
    bradley_terry_ratings,
    bradley_terry_win_probability,
)
from proving_ground.stats.comparisons import (
    boschloo_exact,
    compare_two_policies,
    fisher_exact,
    mcnemar_exact,
    newcombe_difference_interval,
)
from proving_ground.stats.intervals import cell_summary, clopper_pearson_interval, wilson_interval
from proving_ground.stats.multiple_comparisons import holm_adjust
from proving_ground.stats.robustness import chi_square_homogeneity, robustness_summary
from proving_ground.stats.sequential import savi_e_process

VECTORS_PATH = Path(__file__).with_name("stats_reference_vectors.json")
VECTORS = json.loads(VECTORS_PATH.read_text())["vectors"]

CLOSED_FORM = 1e-6  # reference values are rounded to 6 decimals
OPTIMIZER = 1e-5
BOSCHLOO = 1e-3  # scipy maximises over a 32-point grid of the nuisance parameter
EXACT = 0.0  # strings, booleans, integers

# Reference outputs we deliberately do not compute, with the reason. Everything else is
# checked against proving_ground.stats.
NOT_OFFERED = {
    "CI-*.jeffreys_statsmodels": "the leaderboard uses Wilson (two-sided) and Clopper-Pearson",
    "CI-*.jeffreys_raw_beta_quantiles": "Jeffreys interval not offered (Wilson chosen)",
    "CI-*.agresti_coull": "Agresti-Coull not offered: Wilson is its exact-score version",
    "2x2-*.fisher_sample_odds_ratio": "we report the difference in rates, not odds ratios",
    "2x2-*.barnard_two_sided_p": "Boschloo is offered instead; it is never less powerful",
    "2x2-*.barnard_greater_p": "Boschloo is offered instead",
    "2x2-*.barnard_wald_statistic": "Barnard's statistic is not reported",
    "2x2-*.agresti_caffo_diff_ci95": "Newcombe's hybrid score interval is the one offered",
    "2x2-*.wald_diff_ci95": "the Wald difference interval undercovers at small n",
    "2x2-*.PITFALL_barnard_two_sided_p_with_rows_as_samples": (
        "a trap, not a target: test_boschloo_reads_samples_as_columns_not_rows"
    ),
    "MCNEMAR-*.exact_statistic_min_discordant": "the statistic is just min(a_only, b_only)",
    "MCNEMAR-*.chi2_cc_p": "the exact McNemar test is used at every n",
    "MCNEMAR-*.chi2_cc_stat": "the exact McNemar test is used at every n",
    "IQM-*.mean": "context for the reader (plain numpy), not an output of the module",
    "IQM-*.median": "context for the reader (plain numpy), not an output of the module",
    "IQM-*.n_trimmed_each_side": (
        "the trimming convention, checked by test_interquartile_mean_trims_a_floor_quarter"
    ),
    "BT-*.choix_agrees": "a note on the reference's own cross-check",
}


def _flatten(outputs: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in outputs.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _check_interval_vector(vector: dict) -> dict:
    inputs = vector["inputs"]
    k, n, confidence = inputs["successes"], inputs["trials"], inputs["confidence"]
    cell = cell_summary(k, n, confidence)
    return {
        "point_estimate": (cell.rate, CLOSED_FORM),
        "wilson": (wilson_interval(k, n, confidence), CLOSED_FORM),
        "clopper_pearson": (clopper_pearson_interval(k, n, confidence), CLOSED_FORM),
    }


def _check_two_proportion_vector(vector: dict) -> dict:
    a, b = vector["inputs"]["A"], vector["inputs"]["B"]
    comparison = compare_two_policies(*a, *b, test="boschloo")
    return {
        "diff_pA_minus_pB": (comparison.difference, CLOSED_FORM),
        "fisher_two_sided_p": (fisher_exact(*a, *b), CLOSED_FORM),
        "fisher_greater_p": (fisher_exact(*a, *b, alternative="greater"), CLOSED_FORM),
        "boschloo_two_sided_p": (boschloo_exact(*a, *b), BOSCHLOO),
        "boschloo_greater_p": (boschloo_exact(*a, *b, alternative="greater"), BOSCHLOO),
        "pearson_chi2_uncorrected_p": (chi_square_homogeneity([a, b])[2], CLOSED_FORM),
        "newcombe_hybrid_score_diff_ci95": (
            newcombe_difference_interval(*a, *b, 0.95),
            CLOSED_FORM,
        ),
    }


def _check_mcnemar_vector(vector: dict) -> dict:
    (_, a_only), (b_only, _) = vector["inputs"]["table"]
    assert [a_only, b_only] == vector["inputs"]["discordant"]
    return {"exact_p": (mcnemar_exact(a_only, b_only), CLOSED_FORM)}


def _check_holm_vector(vector: dict) -> dict:
    adjusted = holm_adjust(vector["inputs"]["pvalues"])
    alpha = vector["inputs"]["alpha"]
    return {
        "p_adjusted": (adjusted, CLOSED_FORM),
        # The module's convention (pairwise_comparisons): significant when adjusted < alpha.
        "reject": ([p < alpha for p in adjusted], EXACT),
    }


def _check_iqm_vector(vector: dict) -> dict:
    return {"iqm": (interquartile_mean(vector["inputs"]["scores"]), CLOSED_FORM)}


def _check_bradley_terry_vector(vector: dict) -> dict:
    labels = vector["inputs"]["policies"]
    wins = vector["inputs"]["win_matrix_row_beats_col"]
    fit = bradley_terry_intervals(wins, resamples=200)
    theta = bradley_terry(wins)
    index = {label: i for i, label in enumerate(labels)}
    checks = {
        "theta_natural_sum_zero": (theta, OPTIMIZER),
        "se_theta_observed_information_pinv": (fit.standard_errors, OPTIMIZER),
        "elo_fastchat_scale_400_init_1000_unanchored": (
            bradley_terry_ratings(theta),
            OPTIMIZER,
        ),
        "elo_anchored_D_eq_1000": (
            bradley_terry_ratings(theta, anchor=index["D"]),
            OPTIMIZER,
        ),
        "roboarena_scale_200th_plus_1500": (
            bradley_terry_ratings(theta, points_per_nat=200.0, base=1500.0),
            OPTIMIZER,
        ),
        "ranking": (sorted(labels, key=lambda label: -theta[index[label]]), EXACT),
    }
    for name in vector["outputs"]["model_win_probabilities"]:
        first, second = name[2:-1].split(">")  # "P(A>B)"
        probability = bradley_terry_win_probability(theta[index[first]], theta[index[second]])
        checks[f"model_win_probabilities.{name}"] = (probability, OPTIMIZER)
    return checks


def _check_savi_vector(vector: dict) -> dict:
    inputs = vector["inputs"]
    assert inputs["alternative"] == "p0 < p1"
    result = savi_e_process(
        inputs["seq_policy0"], inputs["seq_policy1"], alternative="less", alpha=inputs["alpha"]
    )
    return {
        "e_value_trajectory": (result.e_values, CLOSED_FORM),
        "stopping_time_first_E_ge_20": (result.stopping_time, EXACT),
        "final_anytime_p": (result.anytime_p_value, CLOSED_FORM),
    }


def _check_worst_group_vector(vector: dict) -> dict:
    groups = {name: tuple(counts) for name, counts in vector["inputs"]["groups"].items()}
    # The vector is of the Bonferroni-Wilson method (``wilson_bonf_simul``), the one boards
    # scored before the exact default keep.
    summary = robustness_summary(
        groups,
        confidence=0.95,
        family_confidence=1 - vector["inputs"]["family_alpha"],
        method="wilson",
    )
    checks = {
        "worst_group_observed": (summary.worst_condition, EXACT),
        "worst_group_rate": (summary.worst_rate, CLOSED_FORM),
        "worst_group_simultaneous_ci": ((summary.worst_low, summary.worst_high), CLOSED_FORM),
        "pooled_rate": (summary.overall_rate, CLOSED_FORM),
        "macro_avg_rate": (summary.macro_rate, CLOSED_FORM),
        "max_minus_min_gap": (summary.best_minus_worst, CLOSED_FORM),
        "min_over_max_ratio": (summary.worst_over_best, CLOSED_FORM),
        "heterogeneity_chi2": (summary.heterogeneity_chi2, CLOSED_FORM),
        "heterogeneity_df": (summary.heterogeneity_df, EXACT),
        "heterogeneity_p": (summary.heterogeneity_p, CLOSED_FORM),
    }
    for row in summary.conditions:
        prefix = f"per_group.{row.condition}"
        checks[f"{prefix}.rate"] = (row.rate, CLOSED_FORM)
        checks[f"{prefix}.wilson95"] = ((row.wilson_low, row.wilson_high), CLOSED_FORM)
        checks[f"{prefix}.wilson_bonf_simul"] = (
            (row.simultaneous_low, row.simultaneous_high),
            CLOSED_FORM,
        )
    return checks


# Vector id prefix -> checker. A new vector family must be added here or the suite fails.
CHECKERS = {
    "CI-": _check_interval_vector,
    "2x2-": _check_two_proportion_vector,
    "MCNEMAR-": _check_mcnemar_vector,
    "MULT-holm": _check_holm_vector,
    "IQM-": _check_iqm_vector,
    "BT-": _check_bradley_terry_vector,
    "SAVI-": _check_savi_vector,
    "WORSTGROUP-": _check_worst_group_vector,
}


def _family(vector_id: str) -> str | None:
    matches = [prefix for prefix in CHECKERS if vector_id.startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def _declared_not_offered(family: str, field: str) -> bool:
    return f"{family.rstrip('-')}-*.{field}" in NOT_OFFERED or f"{family}*.{field}" in NOT_OFFERED


def _assert_close(actual, expected, tolerance: float, where: str) -> None:
    if isinstance(expected, list):
        actual = list(actual)
        assert len(actual) == len(expected), where
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            _assert_close(got, want, tolerance, f"{where}[{index}]")
    elif isinstance(expected, bool | str) or expected is None or tolerance == EXACT:
        assert actual == expected, f"{where}: got {actual!r}, want {expected!r}"
    else:
        assert actual == pytest.approx(expected, abs=tolerance), (
            f"{where}: got {actual!r}, want {expected!r} (tolerance {tolerance})"
        )


@pytest.mark.parametrize("vector", VECTORS, ids=[vector["id"] for vector in VECTORS])
def test_reference_vector_is_reproduced(vector):
    family = _family(vector["id"])
    assert family is not None, f"no checker for vector {vector['id']!r}"
    checks = CHECKERS[family](vector)
    expected = _flatten(vector["outputs"])
    for field, (actual, tolerance) in checks.items():
        assert field in expected, f"{vector['id']}: checker names unknown field {field!r}"
        _assert_close(actual, expected[field], tolerance, f"{vector['id']}.{field}")


def test_every_reference_vector_id_has_exactly_one_checker():
    unhandled = [vector["id"] for vector in VECTORS if _family(vector["id"]) is None]
    assert unhandled == []


def test_every_reference_output_is_checked_or_declared_not_offered():
    missing = []
    for vector in VECTORS:
        family = _family(vector["id"])
        checked = set(CHECKERS[family](vector))
        for field in _flatten(vector["outputs"]):
            if field not in checked and not _declared_not_offered(family, field):
                missing.append(f"{vector['id']}.{field}")
    assert missing == []


def test_boschloo_reads_samples_as_columns_not_rows():
    vector = next(v for v in VECTORS if v["id"] == "2x2-18_20vs10_20")
    pitfall = vector["outputs"]["PITFALL_barnard_two_sided_p_with_rows_as_samples"]
    p_value = boschloo_exact(18, 20, 10, 20)
    assert abs(p_value - pitfall) > 1e-3
    assert p_value == pytest.approx(vector["outputs"]["boschloo_two_sided_p"], abs=BOSCHLOO)


def test_interquartile_mean_trims_a_floor_quarter_from_each_end():
    vector = next(v for v in VECTORS if v["id"] == "IQM-n10")
    scores = vector["inputs"]["scores"]
    trimmed = vector["outputs"]["n_trimmed_each_side"]
    middle = sorted(scores)[trimmed : len(scores) - trimmed]
    assert interquartile_mean(scores) == pytest.approx(sum(middle) / len(middle))
    assert interquartile_mean([5.0]) == 5.0
    assert interquartile_mean([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5)
