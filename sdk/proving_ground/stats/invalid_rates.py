"""Invalid trials by policy: is some policy's invalid-trial rate out of line with the rest?

An invalid trial is excluded from success rates (unless the policy caused it), so a policy
whose trials are invalid more often than the others' is measured on a selected subset: its
rate may be biased. Each policy's invalid count over its settled trials is compared with the
rest of the board pooled (exact two-sided test, ``comparisons.compare_two_policies``:
Boschloo for small arms, Fisher above), Holm-adjusted across the policies tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from proving_ground.stats.comparisons import compare_two_policies
from proving_ground.stats.conventions import (
    DEFAULT_ALPHA,
    Result,
    as_count,
    check_probability_level,
)
from proving_ground.stats.multiple_comparisons import holm_adjust


@dataclasses.dataclass(frozen=True)
class InvalidRate(Result):
    """``rate`` = invalid / settled (None with no settled trial); ``p_adjusted`` the Holm-
    adjusted p against the rest (None when untested); ``flagged`` when significant at alpha
    and higher than the rest's rate."""

    invalid: int
    settled: int
    rate: float | None
    p_adjusted: float | None
    flagged: bool


def invalid_rate_tests(
    counts: Mapping[str, tuple[int, int]], *, alpha: float = DEFAULT_ALPHA
) -> dict[str, InvalidRate]:
    """``counts`` maps a policy to (invalid trials, settled trials = done + invalid). A policy
    is tested when it and the rest both have settled trials. Returns one result per policy."""
    level = check_probability_level(alpha, "alpha")
    checked = {}
    for policy, (bad, settled) in counts.items():
        bad, settled = as_count(bad, f"{policy}: invalid"), as_count(settled, "settled")
        if bad > settled:
            raise ValueError(f"{policy}: invalid trials ({bad}) exceed settled ({settled})")
        checked[policy] = (bad, settled)
    tested, raw = [], []
    for policy, (bad, settled) in checked.items():
        rest_bad = sum(b for p, (b, _) in checked.items() if p != policy)
        rest_settled = sum(n for p, (_, n) in checked.items() if p != policy)
        if settled and rest_settled:
            tested.append((policy, bad * rest_settled > rest_bad * settled))
            raw.append(compare_two_policies(bad, settled, rest_bad, rest_settled).p_value)
    adjusted = dict(zip((p for p, _ in tested), holm_adjust(raw), strict=True))
    higher = dict(tested)
    return {
        policy: InvalidRate(
            invalid=bad,
            settled=settled,
            rate=bad / settled if settled else None,
            p_adjusted=adjusted.get(policy),
            flagged=bool(higher.get(policy)) and adjusted.get(policy, 1.0) < level,
        )
        for policy, (bad, settled) in checked.items()
    }
