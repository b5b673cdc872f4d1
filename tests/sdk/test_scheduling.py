"""proving_ground.scheduling: determinism, interleaving, blinding, counterbalancing, robots,
limits."""

import hashlib
import itertools
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground import scheduling
from proving_ground.scheduling import CellSpec, PolicySpec, build_schedule, schedule_fingerprint
from proving_ground.scheduling_designs import orient_by_trails, williams_rows

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = REPO_ROOT / "docs" / "scheduling.md"

POLICIES = [
    PolicySpec("pv-diffusion-3", "Diffusion Policy v3"),
    PolicySpec("pv-act-7", "ACT baseline"),
    PolicySpec("pv-pi0-ft-2", "pi0 fine-tuned"),
    PolicySpec("pv-bc-rnn-1", "BC-RNN"),
]
CELLS = [
    CellSpec("tv-pick-cube-2", "bright", 3),
    CellSpec("tv-pick-cube-2", "dim", 3),
    CellSpec("tv-stack-cups-1", "bright", 2),
    CellSpec("tv-stack-cups-1", "novel-objects", 4),
]
ROBOTS = ["arm-1", "arm-2", "arm-3"]


def by_block(trials):
    blocks = defaultdict(list)
    for trial in trials:
        blocks[trial.block].append(trial)
    return blocks


def by_pair(trials):
    pairs = defaultdict(list)
    for trial in trials:
        pairs[trial.pair_id].append(trial)
    return pairs


def cell_of(trial):
    return (trial.task_version_id, trial.condition_id)


def first_position_counts(trials):
    return Counter(trial.policy_id for trial in trials if trial.pair_position == 0)


# --------------------------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_identical_schedule_and_fingerprint():
    first = build_schedule(POLICIES, CELLS, seed=42, robots=ROBOTS)
    second = build_schedule(POLICIES, CELLS, seed=42, robots=ROBOTS)
    assert first == second
    assert schedule_fingerprint(first) == schedule_fingerprint(second)


def test_different_seed_gives_different_order():
    first = build_schedule(POLICIES, CELLS, seed=42)
    second = build_schedule(POLICIES, CELLS, seed=43)
    assert [(t.policy_id, cell_of(t)) for t in first] != [(t.policy_id, cell_of(t)) for t in second]
    assert schedule_fingerprint(first) != schedule_fingerprint(second)


def test_schedule_does_not_depend_on_the_order_inputs_are_listed_in():
    listed = build_schedule(POLICIES, CELLS, seed=7, robots=ROBOTS, mode="paired")
    reordered = build_schedule(
        POLICIES[::-1],
        [CELLS[2], CELLS[0], CELLS[3], CELLS[1]],
        seed=7,
        robots=ROBOTS[::-1],
        mode="paired",
    )
    assert listed == reordered


def test_adding_robots_changes_only_which_robot_runs_a_block():
    without = build_schedule(POLICIES, CELLS, seed=11)
    with_robots = build_schedule(POLICIES, CELLS, seed=11, robots=ROBOTS)
    assert {t.robot_id for t in without} == {None}
    assert [
        scheduling.ScheduledTrial(**{**t.to_dict(), "robot_id": None}) for t in with_robots
    ] == without


def test_pcg64_word_stream_is_pinned():
    # The schedule rests on numpy's promise that PCG64(seed) always yields the same integers.
    # If an upgrade ever broke it, every stored seed would silently give another schedule.
    words = np.random.PCG64(0).random_raw(3).tolist()
    assert words == [11749869230777074271, 4976686463289251617, 755828109848996024]


def test_pcg64_word_stream_is_pinned_at_the_largest_seed():
    words = np.random.PCG64(scheduling.MAX_SEED).random_raw(2).tolist()
    assert words == PINNED_MAX_SEED_WORDS


PINNED_MAX_SEED_WORDS = [3236778688619115796, 8668653565307110780]


def test_the_scheduler_takes_nothing_from_numpy_but_the_pcg64_integer_stream():
    # Generator.integers/permutation/shuffle carry no cross-version stream guarantee (numpy's
    # compatibility policy, NEP 19); PCG64's integer stream does.
    source = "".join(
        (REPO_ROOT / "sdk" / "proving_ground" / name).read_text(encoding="utf-8")
        for name in ("scheduling.py", "scheduling_designs.py")
    )
    assert re.findall(r"\bnp\.[\w.]+", source) == ["np.random.PCG64"]
    assert "import numpy as np" in source and "from numpy import" not in source


def test_golden_schedule_of_the_first_algorithm_is_still_reproduced():
    # Campaigns started with pg-schedule/1 must keep rebuilding the schedule they stored.
    old = "pg-schedule/1"
    trials = build_schedule(
        POLICIES, CELLS, seed=123456789, robots=ROBOTS, mode="paired", algorithm=old
    )
    assert len(trials) == 4 * 3 * (3 + 3 + 2 + 4)
    assert schedule_fingerprint(trials) == GOLDEN_PAIRED_FINGERPRINT
    trials = build_schedule(POLICIES, CELLS, seed=987654321, robots=ROBOTS, algorithm=old)
    assert schedule_fingerprint(trials) == GOLDEN_INTERLEAVED_FINGERPRINT


def test_golden_schedule_of_the_current_algorithm_is_pinned():
    # Pins the whole algorithm (draw order, shuffles, rejection sampling, Williams rows,
    # dealing), not just numpy: a change here needs a new SCHEDULE_ALGORITHM name.
    assert scheduling.SCHEDULE_ALGORITHM == "pg-schedule/2"
    trials = build_schedule(POLICIES, CELLS, seed=987654321, robots=ROBOTS)
    assert schedule_fingerprint(trials) == GOLDEN_INTERLEAVED_V2_FINGERPRINT
    trials = build_schedule(POLICIES[:3], CELLS, seed=987654321, robots=ROBOTS)
    assert schedule_fingerprint(trials) == GOLDEN_INTERLEAVED_V2_ODD_FINGERPRINT


def test_paired_mode_is_the_same_under_both_algorithms():
    for seed in range(5):
        assert build_schedule(
            POLICIES, CELLS, seed=seed, robots=ROBOTS, mode="paired", algorithm="pg-schedule/1"
        ) == build_schedule(POLICIES, CELLS, seed=seed, robots=ROBOTS, mode="paired")


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algorithm must be one of pg-schedule/1, pg-schedule/2"):
        build_schedule(POLICIES, CELLS, seed=1, algorithm="pg-schedule/3")


GOLDEN_PAIRED_FINGERPRINT = "dfe7537dffdf22184c457618b1535842edf857f1ca613a196739d4a7eb61c8c7"
GOLDEN_INTERLEAVED_FINGERPRINT = "d51b16ef30acbf5de1313e462fc0d2ed7b4e2c49c431857cd465fdb44d21b2e8"
GOLDEN_INTERLEAVED_V2_FINGERPRINT = (
    "f6f9d2c0d93211d259e020cce77eeb3ad4cb8f29e968d835d467a7a20359bf48"
)
GOLDEN_INTERLEAVED_V2_ODD_FINGERPRINT = (
    "5203ba1b361cbeb5466ea3685ab6cb1361e813c1db76a34850b09adaa8e19503"
)


def test_aliases_follow_the_documented_steps_from_raw_pcg64_words():
    # An independent reading of steps 1-2 of the module docstring, from the raw words only.
    words = iter(np.random.PCG64(2024).random_raw(64).tolist())

    def below(bound):
        limit = 2**64 - 2**64 % bound
        while (word := next(words)) >= limit:
            pass
        return word % bound

    labels = ["policy A", "policy B", "policy C", "policy D"]
    for i in range(len(labels) - 1, 0, -1):
        j = below(i + 1)
        labels[i], labels[j] = labels[j], labels[i]
    ids = sorted(p.policy_id for p in POLICIES)
    assert scheduling.alias_map(ids[::-1], seed=2024) == dict(zip(ids, labels, strict=True))


def test_a_single_cell_interleaved_schedule_follows_the_documented_steps():
    # Steps 1, 2 and 4 by hand for one policy pair on one cell with three replicates.
    words = iter(np.random.PCG64(99).random_raw(64).tolist())

    def shuffle(items):
        for i in range(len(items) - 1, 0, -1):
            bound = i + 1
            limit = 2**64 - 2**64 % bound
            while (word := next(words)) >= limit:
                pass
            j = word % bound
            items[i], items[j] = items[j], items[i]

    labels = ["policy A", "policy B"]
    shuffle(labels)
    expected = []
    for _ in range(3):
        shuffle([0])  # the round's cell list: one cell, no draw
        members = ["a", "b"]
        shuffle(members)
        expected += [(member, labels["ab".index(member)]) for member in members]
    trials = build_schedule(
        [PolicySpec("b"), PolicySpec("a")],
        [CellSpec("t", "c", 3)],
        seed=99,
        algorithm="pg-schedule/1",
    )
    assert [(t.policy_id, t.alias) for t in trials] == expected


def test_a_single_cell_balanced_schedule_follows_the_documented_steps():
    # Steps 1, 2, 3W and 4 of pg-schedule/2 by hand: two policies, one cell, three replicates.
    words = iter(np.random.PCG64(99).random_raw(64).tolist())

    def shuffle(items):
        for i in range(len(items) - 1, 0, -1):
            bound = i + 1
            limit = 2**64 - 2**64 % bound
            while (word := next(words)) >= limit:
                pass
            j = word % bound
            items[i], items[j] = items[j], items[i]

    labels = ["policy A", "policy B"]
    shuffle(labels)
    roles = [0, 1]
    shuffle(roles)
    shuffle([0])  # by_rank: one cell, no draw
    rows = [(0, 1), (1, 0)]  # williams_rows(2)
    orders = []
    for _ in range(2):  # ceil(3 / 2) cycles
        order = [0, 1]
        shuffle(order)
        orders.append(order)
    expected = []
    for replicate in range(3):
        shuffle([0])  # the round's cell list: one cell, no draw
        row = rows[orders[replicate // 2][replicate % 2]]
        expected += [("ab"[roles[symbol]], labels[roles[symbol]]) for symbol in row]
    trials = build_schedule([PolicySpec("b"), PolicySpec("a")], [CellSpec("t", "c", 3)], seed=99)
    assert [(t.policy_id, t.alias) for t in trials] == expected


# --------------------------------------------------------------------------------------------
# Interleaving and counts


def test_every_block_contains_each_policy_exactly_once_in_interleaved_mode():
    trials = build_schedule(POLICIES, CELLS, seed=3, robots=ROBOTS)
    policy_ids = sorted(policy.policy_id for policy in POLICIES)
    for block in by_block(trials).values():
        assert sorted(trial.policy_id for trial in block) == policy_ids
        assert len({cell_of(trial) for trial in block}) == 1
        assert len({trial.robot_id for trial in block}) == 1


def test_blocks_are_contiguous_runs_of_the_order():
    trials = build_schedule(POLICIES, CELLS, seed=3)
    assert [t.block for t in trials] == sorted(t.block for t in trials)
    assert sorted({t.block for t in trials}) == list(range(sum(c.replicates for c in CELLS)))


def test_no_policy_runs_all_its_trials_first():
    trials = build_schedule(POLICIES, CELLS, seed=5)
    half = len(trials) // 2
    first_half = Counter(trial.policy_id for trial in trials[:half])
    # Blocks of four fill the first half exactly, so each policy has exactly half its trials.
    assert set(first_half.values()) == {half // len(POLICIES)}


def test_each_policy_runs_each_cell_the_requested_number_of_times():
    trials = build_schedule(POLICIES, CELLS, seed=8, robots=ROBOTS)
    counts = Counter((trial.policy_id, cell_of(trial)) for trial in trials)
    expected = {
        (policy.policy_id, (cell.task_version_id, cell.condition_id)): cell.replicates
        for policy in POLICIES
        for cell in CELLS
    }
    assert counts == expected


def test_rounds_run_replicate_r_of_every_cell_before_any_replicate_r_plus_one():
    trials = build_schedule(POLICIES, CELLS, seed=9)
    cells_in_block = [cell_of(block[0]) for _, block in sorted(by_block(trials).items())]
    # Round 0 holds every cell once; then the three cells with a second replicate; and so on.
    round_sizes = [4, 4, 3, 1]
    start = 0
    for size in round_sizes:
        assert len(set(cells_in_block[start : start + size])) == size
        start += size
    assert start == len(cells_in_block)
    assert cells_in_block[-1] == ("tv-stack-cups-1", "novel-objects")


def position_counts(trials):
    return Counter(
        (trial.policy_id, trial.order - block[0].order)
        for block in by_block(trials).values()
        for trial in block
    )


def successor_counts(trials):
    return Counter(
        (a.policy_id, b.policy_id)
        for block in by_block(trials).values()
        for a, b in itertools.pairwise(block)
    )


def spread(counts, keys):
    values = [counts[key] for key in keys]
    return max(values) - min(values)


@pytest.mark.parametrize("count", range(1, 9))
def test_williams_rows_balance_positions_and_successors(count):
    rows = williams_rows(count)
    assert len(rows) == (2 * count if count % 2 and count > 1 else count)
    each = len(rows) // count
    positions = Counter((symbol, i) for row in rows for i, symbol in enumerate(row))
    assert positions == {(s, i): each for s in range(count) for i in range(count)}
    successors = Counter(pair for row in rows for pair in itertools.pairwise(row))
    assert successors == {(a, b): each for a in range(count) for b in range(count) if a != b}


@pytest.mark.parametrize("policy_count", [2, 3, 4, 5, 6, 7])
def test_each_cell_is_exactly_balanced_over_every_full_cycle_of_its_blocks(policy_count):
    # A full cycle is P blocks of a cell (2P for odd P): every policy in every position, and
    # right after every other policy, equally often, whatever the seed.
    policies = [PolicySpec(f"pv-{index}") for index in range(policy_count)]
    cycle = 2 * policy_count if policy_count % 2 else policy_count
    cells = [CellSpec("t", "a", 2 * cycle), CellSpec("t", "b", cycle), CellSpec("u", "a", cycle)]
    ids = [policy.policy_id for policy in policies]
    positions = [(p, i) for p in ids for i in range(policy_count)]
    successors = [(a, b) for a in ids for b in ids if a != b]
    for seed in range(8):
        trials = build_schedule(policies, cells, seed=seed, robots=ROBOTS)
        for cell in cells:
            key = (cell.task_version_id, cell.condition_id)
            own = [t for t in trials if cell_of(t) == key]
            assert set(position_counts(own).values()) == {cell.replicates // policy_count}
            if policy_count > 1:
                assert set(successor_counts(own).values()) == {cell.replicates // policy_count}
        assert spread(position_counts(trials), positions) == 0
        assert spread(successor_counts(trials), successors) == 0


@pytest.mark.parametrize(("policy_count", "replicates"), [(2, 5), (3, 7), (4, 6), (5, 3)])
def test_a_partial_cycle_keeps_each_cell_balanced_to_within_one_row(policy_count, replicates):
    # Replicate counts that are no multiple of the cycle: per cell, each policy's count in
    # each position is within one (even P) or two (odd P: a partial cycle may hold a row of
    # each square) of every other's. (Campaign-wide, the cells' partial cycles may overlap:
    # not bounded here; see docs/scheduling.md.)
    policies = [PolicySpec(f"pv-{index}") for index in range(policy_count)]
    cells = [CellSpec("t", f"c{k}", replicates) for k in range(3)]
    ids = [policy.policy_id for policy in policies]
    keys = [(p, i) for p in ids for i in range(policy_count)]
    bound = 2 if policy_count % 2 else 1
    for seed in range(20):
        trials = build_schedule(policies, cells, seed=seed)
        for cell in cells:
            own = [t for t in trials if t.condition_id == cell.condition_id]
            assert spread(position_counts(own), keys) <= bound


def test_each_round_spreads_its_blocks_over_the_rows_of_the_square():
    # Round r holds replicate r of every cell: its blocks use distinct rows when there are
    # no more cells than rows, so the operator does not see one order repeated all round.
    policies = [PolicySpec(f"pv-{index}") for index in range(4)]
    cells = [CellSpec("t", f"c{k}", 8) for k in range(4)]
    trials = build_schedule(policies, cells, seed=21)
    blocks = [block for _, block in sorted(by_block(trials).items())]
    for r in range(8):
        orders = {tuple(t.policy_id for t in block) for block in blocks[4 * r : 4 * r + 4]}
        assert len(orders) == 4


def test_the_seed_decides_which_policy_plays_which_role_in_the_square():
    policies = [PolicySpec(f"pv-{index}") for index in range(4)]
    cells = [CellSpec("t", "c", 4)]
    first_blocks = set()
    cell_orders = set()
    for seed in range(60):
        trials = build_schedule(policies, cells, seed=seed)
        blocks = [tuple(t.policy_id for t in b) for _, b in sorted(by_block(trials).items())]
        first_blocks.add(blocks[0])
        cell_orders.add(tuple(blocks))
    # 4! role assignments x 4 row starts; 60 seeds see most first blocks and many sequences.
    assert len(first_blocks) >= 20
    assert len(cell_orders) >= 50


def test_the_balanced_design_beats_random_block_orders_on_the_same_designs():
    policies = [PolicySpec(f"pv-{index}") for index in range(3)]
    cells = [CellSpec("t", f"c{k}", 6) for k in range(4)]
    keys = [(p.policy_id, i) for p in policies for i in range(3)]
    worst = {}
    for algorithm in scheduling.SCHEDULE_ALGORITHMS:
        worst[algorithm] = max(
            spread(
                position_counts(build_schedule(policies, cells, seed=s, algorithm=algorithm)), keys
            )
            for s in range(30)
        )
    assert worst["pg-schedule/2"] == 0 < worst["pg-schedule/1"]


def test_position_within_a_block_varies_across_blocks():
    trials = build_schedule(POLICIES, CELLS, seed=10)
    openers = Counter(block[0].policy_id for block in by_block(trials).values())
    assert len(openers) == len(POLICIES)


# --------------------------------------------------------------------------------------------
# Blinding


def test_aliases_are_a_bijection_onto_policy_letters():
    aliases = scheduling.alias_map([p.policy_id for p in POLICIES], seed=1)
    assert sorted(aliases) == sorted(p.policy_id for p in POLICIES)
    assert sorted(aliases.values()) == ["policy A", "policy B", "policy C", "policy D"]


def test_aliases_never_contain_the_policy_id_or_display_name():
    trials = build_schedule(POLICIES, CELLS, seed=2)
    for trial in trials:
        policy = next(p for p in POLICIES if p.policy_id == trial.policy_id)
        assert trial.policy_id.lower() not in trial.alias.lower()
        assert policy.display_name.lower() not in trial.alias.lower()
        assert re.fullmatch(r"policy [A-Z]+", trial.alias)


def test_display_names_never_appear_anywhere_in_a_schedule():
    for mode in scheduling.MODES:
        trials = build_schedule(POLICIES, CELLS, seed=2, robots=ROBOTS, mode=mode)
        text = repr([trial.to_dict() for trial in trials])
        for policy in POLICIES:
            assert policy.display_name not in text


def test_each_policy_keeps_one_alias_through_the_schedule():
    trials = build_schedule(POLICIES, CELLS, seed=4, mode="paired")
    aliases = {(trial.policy_id, trial.alias) for trial in trials}
    assert len(aliases) == len(POLICIES)
    assert dict(aliases) == scheduling.alias_map([p.policy_id for p in POLICIES], seed=4)


def test_aliases_do_not_follow_registration_order():
    registered = [p.policy_id for p in POLICIES]
    first_aliases = {scheduling.alias_map(registered, seed)[registered[0]] for seed in range(40)}
    assert first_aliases == {"policy A", "policy B", "policy C", "policy D"}
    assert scheduling.alias_map(registered, 5) == scheduling.alias_map(registered[::-1], 5)


def test_alias_labels_continue_past_z_like_spreadsheet_columns():
    ids = [f"pv-{index:02d}" for index in range(28)]
    labels = set(scheduling.alias_map(ids, seed=0).values())
    assert {"policy A", "policy Z", "policy AA", "policy AB"} <= labels
    assert len(labels) == 28


# --------------------------------------------------------------------------------------------
# Counterbalanced pairs


def test_each_pair_runs_both_policies_back_to_back_on_one_cell_and_one_robot():
    two = POLICIES[:2]
    trials = build_schedule(two, CELLS, seed=6, robots=ROBOTS, mode="paired")
    pairs = by_pair(trials)
    assert len(pairs) == sum(cell.replicates for cell in CELLS)
    for first, second in pairs.values():
        assert (first.pair_position, second.pair_position) == (0, 1)
        assert second.order == first.order + 1
        assert {first.policy_id, second.policy_id} == {p.policy_id for p in two}
        assert cell_of(first) == cell_of(second)
        assert first.robot_id == second.robot_id is not None
        assert first.block == second.block


def test_first_position_is_balanced_within_one_for_two_policies():
    two = POLICIES[:2]
    # Odd replicate counts on purpose: 3 + 3 + 4 + 1 = 11 pairs, so one policy leads 6 times.
    cells = [
        CellSpec("t", "a", 3),
        CellSpec("t", "b", 3),
        CellSpec("t", "c", 4),
        CellSpec("t", "d", 1),
    ]
    for seed in range(30):
        trials = build_schedule(two, cells, seed=seed, mode="paired")
        assert sorted(first_position_counts(trials).values()) == [5, 6]
        per_cell = Counter((cell_of(t), t.policy_id) for t in trials if t.pair_position == 0)
        for cell in cells:
            leads = [per_cell[(cell.task_version_id, cell.condition_id), p.policy_id] for p in two]
            assert abs(leads[0] - leads[1]) <= 1


def test_first_position_is_balanced_per_policy_and_per_comparison_for_many_policies():
    cells = [CellSpec("t", "a", 3), CellSpec("t", "b", 1), CellSpec("t", "c", 5)]
    policies = [PolicySpec(f"pv-{index}") for index in range(6)]
    for seed in range(10):
        trials = build_schedule(policies, cells, seed=seed, mode="paired")
        pairs = by_pair(trials).values()
        leads = first_position_counts(trials)
        runs = Counter(trial.policy_id for trial in trials)
        for policy in policies:
            assert abs(2 * leads[policy.policy_id] - runs[policy.policy_id]) <= 1
        comparison_leads = Counter(
            (frozenset((a.policy_id, b.policy_id)), a.policy_id) for a, b in pairs
        )
        for i, j in itertools.combinations([p.policy_id for p in policies], 2):
            key = frozenset((i, j))
            assert abs(comparison_leads[key, i] - comparison_leads[key, j]) <= 1


def test_paired_mode_runs_every_comparison_replicates_times_per_cell():
    trials = build_schedule(POLICIES[:3], CELLS, seed=12, mode="paired")
    comparisons = Counter(
        (frozenset((a.policy_id, b.policy_id)), cell_of(a)) for a, b in by_pair(trials).values()
    )
    assert len(comparisons) == 3 * len(CELLS)
    for (_, cell), count in comparisons.items():
        assert count == next(
            c.replicates for c in CELLS if (c.task_version_id, c.condition_id) == cell
        )
    # Each policy is in two of the three comparisons.
    assert set(Counter(t.policy_id for t in trials).values()) == {
        2 * sum(c.replicates for c in CELLS)
    }


def test_interleaved_mode_has_no_pairs():
    trials = build_schedule(POLICIES, CELLS, seed=1)
    assert {(t.pair_id, t.pair_position) for t in trials} == {(None, None)}


def test_trail_orientation_balances_every_vertex_of_any_graph():
    rng = np.random.default_rng(0)
    for _ in range(200):
        vertices = int(rng.integers(2, 9))
        edges = [e for e in itertools.combinations(range(vertices), 2) if rng.random() < 0.6]
        directed = orient_by_trails(edges, vertices, scheduling.WordStream(1))
        assert sorted(tuple(sorted(e)) for e in directed) == sorted(edges)
        balance = Counter()
        for a, b in directed:
            balance[a] += 1
            balance[b] -= 1
        assert all(abs(value) <= 1 for value in balance.values())


# --------------------------------------------------------------------------------------------
# Robots


def test_each_robot_gets_a_balanced_share_of_every_policy_and_cell():
    trials = build_schedule(POLICIES, CELLS, seed=13, robots=ROBOTS)
    for policy in POLICIES:
        per_robot = Counter(t.robot_id for t in trials if t.policy_id == policy.policy_id)
        assert set(per_robot) == set(ROBOTS)
        assert max(per_robot.values()) - min(per_robot.values()) <= 1
    blocks = by_block(trials).values()
    for cell in CELLS:
        key = (cell.task_version_id, cell.condition_id)
        per_robot = Counter(b[0].robot_id for b in blocks if cell_of(b[0]) == key)
        shares = [per_robot[robot] for robot in ROBOTS]
        assert max(shares) - min(shares) <= 1, (key, shares)


def test_each_robot_runs_its_own_trials_in_increasing_order_through_every_round():
    trials = build_schedule(POLICIES, CELLS, seed=14, robots=ROBOTS[:2])
    for robot in ROBOTS[:2]:
        own = [t for t in trials if t.robot_id == robot]
        assert len(own) == len(trials) // 2
        assert {cell_of(t) for t in own} == {(c.task_version_id, c.condition_id) for c in CELLS}


# --------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policies": []}, "at least one policy"),
        ({"policies": [PolicySpec("a"), PolicySpec("a")]}, "duplicate policy id 'a'"),
        ({"policies": [PolicySpec("")]}, "policy id must not be empty"),
        ({"policies": [PolicySpec("a\tb")]}, "control character"),
        ({"cells": []}, "at least one cell"),
        ({"cells": [CellSpec("t", "c", 0)]}, r"cell \('t', 'c'\): replicates must be at least 1"),
        ({"cells": [CellSpec("t", "c", 1), CellSpec("t", "c", 2)]}, r"duplicate cell \('t', 'c'\)"),
        ({"cells": [CellSpec("", "c", 1)]}, "task version id must not be empty"),
        ({"robots": ["arm-1", "arm-1"]}, "duplicate robot id 'arm-1'"),
        ({"robots": [""]}, "robot id must not be empty"),
        ({"seed": -1}, r"seed must be between 0 and 2\*\*63 - 1"),
        ({"seed": 2**63}, r"seed must be between 0 and 2\*\*63 - 1"),
        ({"mode": "sequential"}, "mode must be one of interleaved, paired"),
        ({"mode": "paired", "policies": [PolicySpec("a")]}, "paired mode needs at least two"),
        ({"cells": [CellSpec("t", "c", 25_001)]}, "asks for 100,004 trials; .* at most 100,000"),
        (
            {
                "mode": "paired",
                "policies": [PolicySpec(str(i)) for i in range(11)],
                "cells": [CellSpec("t", "c", 1000)],
            },
            "asks for 110,000 trials",
        ),
    ],
)
def test_invalid_designs_raise_value_error_with_a_clear_message(kwargs, message):
    arguments = {"policies": POLICIES, "cells": CELLS, "seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_schedule(**arguments)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": "42"},
        {"seed": True},
        {"seed": 1.5},
        {"cells": [CellSpec("t", "c", 2.0)]},
        {"cells": [CellSpec("t", "c", True)]},
        {"policies": [PolicySpec(7)]},
        {"policies": ["pv-1"]},
        {"robots": "arm-1"},
    ],
)
def test_values_of_the_wrong_type_raise_type_error(kwargs):
    arguments = {"policies": POLICIES, "cells": CELLS, "seed": 1, **kwargs}
    with pytest.raises(TypeError):
        build_schedule(**arguments)


def test_alias_map_refuses_empty_and_duplicate_ids():
    with pytest.raises(ValueError, match="at least one policy id"):
        scheduling.alias_map([], seed=1)
    with pytest.raises(ValueError, match="duplicate policy id 'x'"):
        scheduling.alias_map(["x", "x"], seed=1)
    with pytest.raises(ValueError, match="seed must be between"):
        scheduling.alias_map(["x"], seed=-5)


def test_a_design_at_the_cap_is_accepted():
    trials = build_schedule(
        [PolicySpec("a"), PolicySpec("b")], [CellSpec("t", "c", 50_000)], seed=0
    )
    assert len(trials) == scheduling.MAX_TRIALS


def test_empty_robot_list_means_no_robots():
    assert build_schedule(POLICIES, CELLS, seed=1, robots=[]) == build_schedule(
        POLICIES, CELLS, seed=1
    )


def test_a_single_policy_campaign_is_allowed_in_interleaved_mode():
    trials = build_schedule([PolicySpec("solo")], [CellSpec("t", "c", 3)], seed=1)
    assert [(t.order, t.block, t.alias) for t in trials] == [(i, i, "policy A") for i in range(3)]


# --------------------------------------------------------------------------------------------
# Fingerprint


def test_fingerprint_is_sha256_of_the_documented_canonical_text():
    trials = build_schedule(POLICIES[:2], CELLS[:1], seed=1, robots=ROBOTS[:1], mode="paired")
    lines = ["pg-schedule/1"] + [
        "\t".join(
            "" if value is None else str(value)
            for value in (
                t.order,
                t.block,
                t.policy_id,
                t.alias,
                t.task_version_id,
                t.condition_id,
                t.robot_id,
                t.pair_id,
                t.pair_position,
            )
        )
        for t in trials
    ]
    text = "".join(line + "\n" for line in lines)
    assert schedule_fingerprint(trials) == hashlib.sha256(text.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", schedule_fingerprint(trials))


def test_fingerprint_changes_when_any_trial_changes():
    trials = build_schedule(POLICIES, CELLS, seed=1, robots=ROBOTS, mode="paired")
    original = schedule_fingerprint(trials)
    swapped = list(trials)
    swapped[0] = scheduling.ScheduledTrial(**{**trials[0].to_dict(), "alias": trials[1].alias})
    assert schedule_fingerprint(swapped) != original
    assert schedule_fingerprint(trials[:-1]) != original
    moved = scheduling.ScheduledTrial(**{**trials[5].to_dict(), "robot_id": None})
    assert schedule_fingerprint([*trials[:5], moved, *trials[6:]]) != original


def test_fingerprint_refuses_fields_with_tabs_or_newlines():
    bad = scheduling.ScheduledTrial(0, 0, "a\tb", "policy A", "t", "c")
    with pytest.raises(ValueError, match="tab or newline"):
        schedule_fingerprint([bad])


# --------------------------------------------------------------------------------------------
# Documentation, isolation, speed


def markdown_table(trials):
    """The table format used in docs/scheduling.md."""
    lines = [
        "| order | block | robot | task version | condition | alias | policy | pair | position |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in trials:
        pair = "" if t.pair_id is None else str(t.pair_id)
        position = "" if t.pair_position is None else str(t.pair_position)
        lines.append(
            f"| {t.order} | {t.block} | {t.robot_id} | {t.task_version_id} | {t.condition_id} "
            f"| {t.alias} | {t.policy_id} | {pair} | {position} |"
        )
    return "\n".join(lines)


def test_worked_example_in_the_docs_matches_the_code():
    doc = DOC_PATH.read_text(encoding="utf-8")
    policies = [
        PolicySpec("pv-diffusion-3", "Diffusion Policy v3"),
        PolicySpec("pv-act-7", "ACT baseline"),
    ]
    cells = [CellSpec("tv-pick-cube-2", "bright", 2), CellSpec("tv-pick-cube-2", "dim", 2)]
    for mode in scheduling.MODES:
        trials = build_schedule(
            policies, cells, seed=20240620, robots=["arm-1", "arm-2"], mode=mode
        )
        assert markdown_table(trials) in doc, mode
        assert f"`{schedule_fingerprint(trials)}`" in doc, mode
    aliases = scheduling.alias_map(["pv-diffusion-3", "pv-act-7"], seed=20240620)
    assert aliases == {"pv-act-7": "policy B", "pv-diffusion-3": "policy A"}


def test_twenty_policies_fifty_cells_ten_replicates_schedule_every_policy_in_every_block():
    # The size of a large benchmark; its build time is measured by bench/bench_scheduling.py.
    policies = [PolicySpec(f"pv-{index:02d}") for index in range(20)]
    cells = [CellSpec(f"tv-{t}", f"cond-{c}", 10) for t in range(10) for c in range(5)]
    trials = build_schedule(policies, cells, seed=1, robots=ROBOTS)
    assert len(trials) == 10_000
    per_block = defaultdict(set)
    for trial in trials:
        per_block[trial.block].add(trial.policy_id)
    assert len(per_block) == 500
    assert all(len(ids) == 20 for ids in per_block.values())
    assert schedule_fingerprint(trials) == schedule_fingerprint(
        build_schedule(policies, cells, seed=1, robots=ROBOTS)
    )


# --------------------------------------------------------------------------------------------
# Properties over random small designs


@st.composite
def designs(draw):
    mode = draw(st.sampled_from(scheduling.MODES))
    policy_count = draw(st.integers(2 if mode == "paired" else 1, 5))
    policy_ids = draw(
        st.lists(
            st.text(min_size=1, max_size=6).filter(str.isprintable),
            min_size=policy_count,
            max_size=policy_count,
            unique=True,
        )
    )
    cell_keys = draw(
        st.lists(
            st.tuples(st.sampled_from(["t1", "t2"]), st.sampled_from(["c1", "c2", "c3"])),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    cells = [CellSpec(t, c, draw(st.integers(1, 4))) for t, c in cell_keys]
    robots = [f"r{i}" for i in range(draw(st.integers(0, 3)))]
    seed = draw(st.integers(0, scheduling.MAX_SEED))
    return [PolicySpec(p) for p in policy_ids], cells, robots, seed, mode


@settings(max_examples=150, deadline=None)
@given(designs())
def test_property_counts_are_preserved_and_orders_are_contiguous(design):
    policies, cells, robots, seed, mode = design
    trials = build_schedule(policies, cells, seed=seed, robots=robots, mode=mode)
    policy_count = len(policies)
    per_cell = policy_count - 1 if mode == "paired" else 1
    counts = Counter((t.policy_id, cell_of(t)) for t in trials)
    assert counts == {
        (p.policy_id, (c.task_version_id, c.condition_id)): c.replicates * per_cell
        for p in policies
        for c in cells
    }
    assert [t.order for t in trials] == list(range(len(trials)))
    blocks = [t.block for t in trials]
    assert blocks == sorted(blocks) and set(blocks) == set(range(sum(c.replicates for c in cells)))
    for block in by_block(trials).values():
        assert Counter(t.policy_id for t in block) == {p.policy_id: per_cell for p in policies}
    if robots:
        per_robot = Counter(b[0].robot_id for b in by_block(trials).values())
        assert max(per_robot.values()) - min(per_robot.get(r, 0) for r in robots) <= 1
    if mode == "paired":
        leads = first_position_counts(trials)
        runs = Counter(t.policy_id for t in trials)
        for p in policies:
            assert abs(2 * leads[p.policy_id] - runs[p.policy_id]) <= 1


@settings(max_examples=50, deadline=None)
@given(designs())
def test_property_the_same_design_and_seed_give_the_same_schedule(design):
    policies, cells, robots, seed, mode = design
    first = build_schedule(policies, cells, seed=seed, robots=robots, mode=mode)
    again = build_schedule(policies[::-1], cells[::-1], seed=seed, robots=robots[::-1], mode=mode)
    assert first == again
    assert schedule_fingerprint(first) == schedule_fingerprint(again)
