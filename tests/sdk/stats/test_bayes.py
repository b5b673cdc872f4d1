"""proving_ground.stats.bayes against references: scipy's Beta quantiles and statsmodels'
Jeffreys interval for the posterior, Miller's (2015) closed form and Monte Carlo for
P(A > B), Monte Carlo and a sum-to-one property for P(best), exact sums for pass^k."""

from __future__ import annotations

import math

import numpy as np
import pytest

# Imported here so the one-off import cost stays out of hypothesis' deadline.
import scipy.integrate  # noqa: F401
import scipy.special as special
import scipy.stats as sps
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from proving_ground.stats.bayes import (
    beta_posterior,
    pass_hat_k,
    probability_best,
    probability_greater,
)


def miller_probability_greater(a_alpha: int, a_beta: int, b_alpha: int, b_beta: int) -> float:
    """P(p_A > p_B) for integer Beta parameters (Miller 2015, with A and B swapped):
    sum over i < alpha_A of B(alpha_B + i, beta_A + beta_B) /
    ((beta_A + i) B(1 + i, beta_A) B(alpha_B, beta_B)), summed in log space."""
    total = 0.0
    for i in range(a_alpha):
        total += math.exp(
            special.betaln(b_alpha + i, a_beta + b_beta)
            - math.log(a_beta + i)
            - special.betaln(1 + i, a_beta)
            - special.betaln(b_alpha, b_beta)
        )
    return total


# --------------------------------------------------------------------------------------------
# beta_posterior


def test_the_uniform_prior_posterior_of_7_of_10_is_beta_8_4_with_scipy_quantiles():
    posterior = beta_posterior(7, 10)
    assert (posterior.alpha, posterior.beta) == (8.0, 4.0)
    assert posterior.mean == pytest.approx(8 / 12, abs=1e-15)
    low, high = sps.beta.interval(0.95, 8, 4)
    assert posterior.low == pytest.approx(low, abs=1e-12)
    assert posterior.high == pytest.approx(high, abs=1e-12)
    assert (round(posterior.low, 3), round(posterior.high, 3)) == (0.390, 0.891)
    assert posterior.to_dict() == {
        "alpha": 8.0,
        "beta": 4.0,
        "mean": posterior.mean,
        "low": posterior.low,
        "high": posterior.high,
    }


@pytest.mark.parametrize(("k", "n"), [(1, 10), (7, 10), (45, 50), (3, 400)])
def test_the_jeffreys_prior_gives_statsmodels_jeffreys_interval(k, n):
    posterior = beta_posterior(k, n, prior=(0.5, 0.5), confidence=0.9)
    low, high = proportion_confint(k, n, alpha=0.1, method="jeffreys")
    assert posterior.low == pytest.approx(low, abs=1e-10)
    assert posterior.high == pytest.approx(high, abs=1e-10)


@given(
    st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.sampled_from([0.5, 0.8, 0.95, 0.99]),
)
def test_the_credible_interval_holds_the_mean_and_stays_in_the_unit_interval(count, level):
    posterior = beta_posterior(*count, confidence=level)
    assert 0.0 <= posterior.low <= posterior.mean <= posterior.high <= 1.0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((0, 0), ValueError),
        ((5, 4), ValueError),
        ((-1, 4), ValueError),
        ((1.5, 4), TypeError),
        ((1, 4, (0.0, 1.0)), ValueError),
        ((1, 4, (1.0, math.inf)), ValueError),
        ((1, 4, "ab"), TypeError),
        ((1, 4, (1.0, 1.0), 1.0), ValueError),
    ],
)
def test_bad_counts_priors_and_levels_raise(args, error):
    with pytest.raises(error):
        beta_posterior(*args)


# --------------------------------------------------------------------------------------------
# probability_greater


@pytest.mark.parametrize(
    "counts",
    [
        (18, 20, 10, 20),
        (7, 10, 3, 10),
        (0, 5, 0, 20),
        (10, 10, 9, 10),
        (1, 2, 30, 40),
        (55, 100, 50, 100),
        (480, 1000, 520, 1000),
        (2, 1000, 0, 3),
        (900, 1000, 1, 1),
    ],
)
def test_probability_greater_matches_millers_closed_form_to_1e_9(counts):
    a_k, a_n, b_k, b_n = counts
    exact = miller_probability_greater(a_k + 1, a_n - a_k + 1, b_k + 1, b_n - b_k + 1)
    assert probability_greater(*counts) == pytest.approx(exact, abs=1e-9)


def test_probability_greater_worked_example():
    assert round(probability_greater(18, 20, 10, 20), 4) == 0.9968


def test_probability_greater_under_a_non_integer_prior_matches_monte_carlo():
    rng = np.random.default_rng(20240612)
    draws = 2_000_000
    for a_k, a_n, b_k, b_n in [(3, 12, 5, 12), (0, 4, 1, 30), (19, 20, 20, 20)]:
        a = rng.beta(a_k + 0.5, a_n - a_k + 0.5, draws)
        b = rng.beta(b_k + 0.5, b_n - b_k + 0.5, draws)
        estimate = float(np.mean(a > b))
        se = math.sqrt(estimate * (1 - estimate) / draws)
        value = probability_greater(a_k, a_n, b_k, b_n, prior=(0.5, 0.5))
        assert abs(value - estimate) < 5 * se + 1e-9


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_probability_greater_is_exact_for_integer_parameters_and_complementary(a, b):
    value = probability_greater(*a, *b)
    exact = miller_probability_greater(a[0] + 1, a[1] - a[0] + 1, b[0] + 1, b[1] - b[0] + 1)
    assert value == pytest.approx(exact, abs=1e-6)
    assert value + probability_greater(*b, *a) == pytest.approx(1.0, abs=1e-6)


def test_equal_counts_are_a_coin_flip():
    assert probability_greater(7, 10, 7, 10) == 0.5


# --------------------------------------------------------------------------------------------
# probability_best


def test_probability_best_of_two_arms_is_probability_greater():
    best = probability_best({"A": (18, 20), "B": (10, 20)})
    assert best["A"] == pytest.approx(probability_greater(18, 20, 10, 20), abs=1e-9)
    assert list(best) == ["A", "B"]


def test_probability_best_matches_monte_carlo():
    arms = {"a": (7, 10), "b": (3, 10), "c": (9, 10), "d": (8, 10)}
    best = probability_best(arms)
    rng = np.random.default_rng(7)
    draws = 1_000_000
    samples = np.stack([rng.beta(k + 1, n - k + 1, draws) for k, n in arms.values()])
    shares = np.bincount(np.argmax(samples, axis=0), minlength=len(arms)) / draws
    for name, share in zip(arms, shares, strict=True):
        se = math.sqrt(share * (1 - share) / draws)
        assert abs(best[name] - share) < 5 * se + 1e-9
    assert round(best["c"], 3) == 0.648


arm = st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@settings(max_examples=40, deadline=None)
@given(st.lists(arm, min_size=1, max_size=6), st.sampled_from([(1.0, 1.0), (0.5, 0.5)]))
def test_probabilities_of_being_best_sum_to_one(arms, prior):
    best = probability_best({f"arm{i}": counts for i, counts in enumerate(arms)}, prior)
    assert sum(best.values()) == pytest.approx(1.0, abs=1e-6)
    assert all(0.0 <= value <= 1.0 for value in best.values())


def test_probability_best_rejects_no_arms_and_bad_counts():
    with pytest.raises(ValueError):
        probability_best({})
    with pytest.raises(ValueError, match="B"):
        probability_best({"A": (1, 2), "B": (3, 2)})


# --------------------------------------------------------------------------------------------
# pass_hat_k


def test_pass_hat_k_is_the_ratio_of_binomial_coefficients():
    assert pass_hat_k(7, 10, 1) == 0.7
    assert pass_hat_k(7, 10, 2) == pytest.approx(21 / 45, abs=1e-15)
    assert pass_hat_k(7, 10, 3) == pytest.approx(35 / 120, abs=1e-15)
    assert pass_hat_k(7, 10, 8) == 0.0
    assert pass_hat_k(10, 10, 10) == 1.0
    assert pass_hat_k(9, 10, 10) == 0.0


@pytest.mark.parametrize(("n", "k", "p"), [(10, 3, 0.7), (8, 8, 0.9), (20, 5, 0.35)])
def test_pass_hat_k_is_unbiased_for_k_successes_in_a_row(n, k, p):
    # E[C(C, k) / C(n, k)] over C ~ Binomial(n, p) is p^k exactly.
    expectation = sum(sps.binom.pmf(c, n, p) * pass_hat_k(c, n, k) for c in range(n + 1))
    assert expectation == pytest.approx(p**k, abs=1e-12)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((3, 10, 0), ValueError),
        ((3, 10, 11), ValueError),
        ((3, 10, -1), ValueError),
        ((3, 10, 2.0), TypeError),
        ((3, 10, True), TypeError),
        ((0, 0, 1), ValueError),
        ((11, 10, 1), ValueError),
    ],
)
def test_pass_hat_k_validates_its_arguments(args, error):
    with pytest.raises(error):
        pass_hat_k(*args)
