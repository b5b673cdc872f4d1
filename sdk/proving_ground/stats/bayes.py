"""Bayesian views of success rates: Beta posteriors, "chance A is better", "chance each
policy is best", and pass^k (the chance that k tries in a row all succeed).

A success rate with a Beta(a0, b0) prior and k successes in n trials has the Beta(a0 + k,
b0 + n - k) posterior (the conjugate update; Gelman et al. 2013, ch. 2). The default prior
Beta(1, 1) is uniform on [0, 1]. Posterior probabilities of orderings are one-dimensional
integrals of a density against a product of distribution functions, computed by adaptive
Gauss-Kronrod quadrature (QUADPACK's QAGS through ``scipy.integrate.quad``), each half of
the integrating density taken from its own end so that neither tail loses precision;
results are accurate to well within 1e-6 (about 1e-12 in the tests). For integer
parameters, Miller's (2015) closed form gives ``probability_greater`` exactly; the tests
compare against it.

pass^k (Yao et al. 2024, tau-bench) is the chance that k tries drawn without replacement
from a task's n recorded trials, c of them successes, all succeed: C(c, k) / C(n, k). It
estimates the rate at which a policy succeeds k times in a row, a reliability figure, as
opposed to pass@k (at least one success in k).

References
    Gelman, A., Carlin, J. B., Stern, H. S., Dunson, D. B., Vehtari, A. & Rubin, D. B.
        (2013). Bayesian Data Analysis, 3rd ed. CRC Press, ch. 2.
    Miller, E. (2015). Formulas for Bayesian A/B testing.
        https://www.evanmiller.org/bayesian-ab-testing.html
    Piessens, R., de Doncker-Kapenga, E., Ueberhuber, C. W. & Kahaner, D. K. (1983).
        QUADPACK: a subroutine package for automatic integration. Springer.
    Yao, S., Shinn, N., Razavi, P. & Narasimhan, K. (2024). tau-bench: a benchmark for
        tool-agent-user interaction in real-world domains. arXiv:2406.12045.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from proving_ground.stats.conventions import (
    DEFAULT_CONFIDENCE,
    Result,
    _ImportedOnUse,
    as_count,
    check_counts,
    check_probability_level,
    special,
    sps,
)

integrate = _ImportedOnUse("scipy.integrate")

UNIFORM_PRIOR = (1.0, 1.0)
# Quadrature break points: quantiles of the integrating density (its lower half), and of
# each other density (both tails, where its distribution function rises fastest).
_TARGET_LEVELS = (1e-12, 1e-8, 1e-4, 1e-2, 0.1, 0.3)
_STEP_LEVELS = (1e-9, 1e-3, 0.5, 1.0 - 1e-3, 1.0 - 1e-9)


@dataclasses.dataclass(frozen=True)
class BetaPosterior(Result):
    """The Beta(alpha, beta) posterior of a success rate, its mean and an equal-tailed
    credible interval [low, high]: the true rate lies below ``low`` with posterior
    probability (1 - confidence) / 2, and above ``high`` with the same probability."""

    alpha: float
    beta: float
    mean: float
    low: float
    high: float


def beta_posterior(
    successes: int,
    trials: int,
    prior: Sequence[float] = UNIFORM_PRIOR,
    confidence: float = DEFAULT_CONFIDENCE,
) -> BetaPosterior:
    """The Beta posterior of a success rate after k successes in n trials.

    alpha = a0 + k, beta = b0 + n - k for the prior Beta(a0, b0) (default uniform); the mean
    is alpha / (alpha + beta) and [low, high] the equal-tailed credible interval at
    `confidence`, from Beta quantiles. 7/10 with the uniform prior: Beta(8, 4), mean 0.667,
    95% [0.390, 0.891]. With the Jeffreys prior (0.5, 0.5) the interval is Jeffreys'
    confidence interval (Brown, Cai & DasGupta 2001). 0/0 raises ``ValueError`` as
    everywhere in the package.
    """
    k, n = check_counts(successes, trials)
    level = check_probability_level(confidence, "confidence")
    alpha, beta = _posterior_parameters(k, n, prior)
    tail = (1.0 - level) / 2.0
    return BetaPosterior(
        alpha=alpha,
        beta=beta,
        mean=alpha / (alpha + beta),
        low=float(sps.beta.ppf(tail, alpha, beta)),
        high=float(sps.beta.isf(tail, alpha, beta)),
    )


def probability_greater(
    a_successes: int,
    a_trials: int,
    b_successes: int,
    b_trials: int,
    prior: Sequence[float] = UNIFORM_PRIOR,
) -> float:
    """P(p_A > p_B) for independent Beta posteriors of the two rates (same prior for both).

    The integral of A's posterior density times B's posterior distribution function, by
    adaptive quadrature, accurate to 1e-6 (in practice about 1e-10). It is the Bayesian
    reading of an A/B comparison: 18/20 against 10/20 gives 0.9968 ("A is better with
    probability 99.7%"); equal counts give exactly 0.5 by symmetry. It is not a p-value and
    does not control error rates over repeated looks.
    """
    a = _posterior_parameters(*check_counts(a_successes, a_trials, "a"), prior)
    b = _posterior_parameters(*check_counts(b_successes, b_trials, "b"), prior)
    if a == b:
        return 0.5
    return min(1.0, max(0.0, _probability_largest(a, [b])))


def probability_best(
    arms: Mapping[Hashable, tuple[int, int]],
    prior: Sequence[float] = UNIFORM_PRIOR,
) -> dict[Hashable, float]:
    """P(each arm has the highest true rate), from ``{name: (successes, trials)}``.

    For arm i, the integral of its posterior density times the product of the other arms'
    posterior distribution functions (Thompson sampling's allocation probabilities; the
    quantity behind "probability to be best" on A/B dashboards). Returns ``{name:
    probability}`` in input order; the probabilities sum to 1 within 1e-6. One arm gets 1.
    """
    if not arms:
        raise ValueError("probability_best needs at least one arm")
    names = list(arms)
    parameters = [
        _posterior_parameters(*check_counts(*arms[name], label=str(name)), prior) for name in names
    ]
    result = {}
    for index, name in enumerate(names):
        others = parameters[:index] + parameters[index + 1 :]
        value = _probability_largest(parameters[index], others) if others else 1.0
        result[name] = min(1.0, max(0.0, value))
    return result


def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """pass^k (tau-bench): C(c, k) / C(n, k), the chance that k of the n recorded trials,
    drawn without replacement, are all successes (c = successes).

    An unbiased estimate of p^k, the chance that k fresh tries in a row all succeed, when
    the n trials are independent with success rate p (Yao et al. 2024). Averaged over tasks
    it is the benchmark's pass^k. k must be between 1 and n; pass^1 is the rate c/n. 7/10
    gives pass^2 = 21/45 = 0.467 and pass^3 = 35/120 = 0.292. Exact integer arithmetic, one
    rounding.
    """
    c, n = check_counts(successes, trials)
    tries = as_count(k, "k")
    if not 1 <= tries <= n:
        raise ValueError(f"k must be between 1 and trials ({n}), got {tries}")
    return math.comb(c, tries) / math.comb(n, tries)


def _posterior_parameters(k: int, n: int, prior: Sequence[float]) -> tuple[float, float]:
    a0, b0 = _check_prior(prior)
    return a0 + k, b0 + (n - k)


def _check_prior(prior: Any) -> tuple[float, float]:
    try:
        a0, b0 = (float(value) for value in prior)
    except (TypeError, ValueError):
        raise TypeError(f"prior must be a pair of numbers (a0, b0), got {prior!r}") from None
    if not (math.isfinite(a0) and math.isfinite(b0) and a0 > 0.0 and b0 > 0.0):
        raise ValueError(f"prior parameters must be finite and > 0, got {prior!r}")
    return a0, b0


def _probability_largest(
    target: tuple[float, float], others: Sequence[tuple[float, float]]
) -> float:
    """P(X > every Y) for X ~ Beta(target) and Y ~ Beta(other), all independent: the
    integral of f_X(x) prod F_Y(x) dx.

    Split at X's median m: [0, m] is integrated in x, [m, 1] in y = 1 - x (X mirrored is
    Beta(b, a), and F_Y(1 - y) is the complemented regularized beta at y), so both pieces
    start at 0, where doubles are finest."""
    a, b = target
    median = float(special.betaincinv(a, b, 0.5))
    return _half_integral(a, b, median, others, mirrored=False) + _half_integral(
        b, a, 1.0 - median, others, mirrored=True
    )


def _half_integral(
    first: float,
    second: float,
    end: float,
    others: Sequence[tuple[float, float]],
    *,
    mirrored: bool,
) -> float:
    """The integral over [0, end] of the Beta(first, second) density times the others'
    distribution functions (at 1 - t when `mirrored`). With first < 1 the density's factor
    t^(first - 1) is infinite at 0; in s = t^first it becomes the constant 1 / first and
    the integrand is smooth. Break points at the density's quantiles guide the refinement
    to its mass; at each other density's median and far quantiles, to the steps."""
    power = first if first < 1.0 else 1.0
    log_norm = float(special.betaln(first, second)) + math.log(power)
    if mirrored:
        pairs = [(other_b, other_a) for other_a, other_b in others]
        distribution = special.betaincc
    else:
        pairs = list(others)
        distribution = special.betainc

    def integrand(s: float) -> float:
        t = s ** (1.0 / power)
        log_density = special.xlogy(first - power, t) + special.xlog1py(second - 1.0, -t)
        value = math.exp(log_density - log_norm)
        for p, q in pairs:
            value *= distribution(p, q, t)
        return float(value)

    candidates = list(special.betaincinv(first, second, _TARGET_LEVELS))
    for p, q in pairs:
        candidates.extend(special.betaincinv(p, q, _STEP_LEVELS))
    points = sorted({float(t) ** power for t in candidates if 0.0 < t < end})
    value, _ = integrate.quad(
        integrand,
        0.0,
        end**power,
        points=points or None,
        epsabs=1e-13,
        epsrel=1e-10,
        limit=500,
    )
    return float(value)
