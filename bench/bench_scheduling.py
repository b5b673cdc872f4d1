"""Cost of building a campaign schedule, next to the least a randomized schedule costs.

A large benchmark: 20 policies x 50 cells (10 tasks x 5 conditions) x 10 replicates = 10,000
trials dealt to 3 robots, then fingerprinted (what `start_campaign` does before storing the
trials). The baseline, in the same run: the same 10,000 (policy, cell, replicate) tuples
shuffled with a seeded `random.Random` and hashed with SHA-256 — no blocking, balancing or
aliases. Run from the repository root:

    .venv/bin/python -m bench.bench_scheduling
"""

from __future__ import annotations

import hashlib
import random

from bench.timing import best_of
from proving_ground.scheduling import CellSpec, PolicySpec, build_schedule, schedule_fingerprint

POLICIES = [PolicySpec(f"pv-{index:02d}") for index in range(20)]
CELLS = [CellSpec(f"tv-{t}", f"cond-{c}", 10) for t in range(10) for c in range(5)]
ROBOTS = ["arm-1", "arm-2", "arm-3"]
REPEATS = 7


def _baseline() -> str:
    trials = [
        (policy.policy_id, cell.task_version_id, cell.condition_id, replicate)
        for cell in CELLS
        for replicate in range(cell.replicates)
        for policy in POLICIES
    ]
    random.Random(1).shuffle(trials)
    return hashlib.sha256(repr(trials).encode()).hexdigest()


def _schedule() -> str:
    return schedule_fingerprint(build_schedule(POLICIES, CELLS, seed=1, robots=ROBOTS))


def main() -> None:
    trials = len(build_schedule(POLICIES, CELLS, seed=1, robots=ROBOTS))
    baseline_s = best_of(_baseline, REPEATS)
    schedule_s = best_of(_schedule, REPEATS)
    print(f"{trials:,} trials, best of {REPEATS}")
    print(f"{'baseline: shuffle + sha256':34s} {baseline_s * 1e3:8.1f} ms")
    print(
        f"{'build_schedule + fingerprint':34s} {schedule_s * 1e3:8.1f} ms"
        f"  ratio {schedule_s / baseline_s:.1f}x"
    )


if __name__ == "__main__":
    main()
