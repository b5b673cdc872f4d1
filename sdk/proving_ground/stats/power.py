"""Planning: trials per policy to detect a difference, from Cohen's (1988) effect size h.

References
    Cohen, J. (1988). Statistical Power Analysis for the Behavioral Sciences, 2nd ed., ch. 6.
"""

from __future__ import annotations

import math

from proving_ground.stats.conventions import DEFAULT_ALPHA, check_probability_level, sps


def power_trials_per_policy(
    p_baseline: float, p_candidate: float, alpha: float = DEFAULT_ALPHA, power: float = 0.8
) -> int:
    """Trials per policy for a two-sided test at ``alpha`` to detect p_baseline vs
    p_candidate with the given power: n = 2 * ((z_{1-alpha/2} + z_{power}) / h)^2 rounded
    up, with Cohen's (1988) h = |2 asin(sqrt(p_candidate)) - 2 asin(sqrt(p_baseline))|.
    The normal approximation ignores the far rejection tail (negligible). 0.5 vs 0.8: 38.
    Returns an int >= 1; raises when the rates are equal (no finite n detects no effect)."""
    for name, value in (("p_baseline", p_baseline), ("p_candidate", p_candidate)):
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a rate in [0, 1], got {value!r}")
    level = check_probability_level(alpha, "alpha")
    target = check_probability_level(power, "power")
    h = abs(2.0 * math.asin(math.sqrt(p_candidate)) - 2.0 * math.asin(math.sqrt(p_baseline)))
    if h == 0.0:
        raise ValueError("p_baseline and p_candidate are equal: no sample size detects no effect")
    z_sum = float(sps.norm.ppf(1.0 - level / 2.0) + sps.norm.ppf(target))
    return max(1, math.ceil(2.0 * (z_sum / h) ** 2 - 1e-9))
