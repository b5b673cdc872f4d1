"""The trial schedule of an evaluation campaign: planned, randomized, blinded, reproducible.

About 600 lines: a 150-line rationale and one algorithm whose steps share one seeded draw
stream. The pure combinatorial designs it uses are in ``proving_ground.scheduling_designs``.

A robot evaluation is an experiment, and it fails the way experiments fail when it is run
the convenient way: policy A all morning, policy B all afternoon, an operator who knows which
is which. This module turns a campaign's design (policies, cells, robots) and one stored seed
into the ordered list of trials that the robots and operators work through. It is pure Python
with numpy for the random bits, never imports Django (``import proving_ground.scheduling`` works on
a robot), and the same inputs and seed give the same schedule, trial for trial, on any machine
and any future numpy.

Why each rule (the user-facing explanation, with a worked example, is ``docs/scheduling.md``):

* Interleave. Lighting changes over a day, motors warm up, cables and grippers wear, cameras
  drift, operators tire and get better at resets. Anything that drifts with time is
  confounded with the policy when policies run one after the other, and no statistics
  afterwards can separate the two. So trials come in *blocks*: one block is one replicate of
  one cell (a task version under a condition) in which every policy runs once, in a random
  order. Policies compared inside a block share the scene set-up and the hour, so the
  difference between them is not a difference between mornings (a randomized complete block
  design; Fisher 1935, ch. IV).
* Balance positions within blocks (pg-schedule/2). The first run of a block follows a
  scene set-up, the last comes after the operator has watched the others; a random order
  balances these only on average (one seed put a policy first 5 times and last 10). So each
  cell's blocks follow a Williams design (a balanced Latin square; Williams 1949): over
  every full cycle of a cell's blocks (P blocks, or 2P for an odd number P of policies) each
  policy runs in each position equally often and right after each other policy equally
  often. The seed chooses which policy plays which role in the square and the order of the
  square's rows, so the design is balanced but not predictable from the policy list.
* Spread every cell over the campaign. Blocks are issued in *rounds*: round r holds replicate
  r of every cell that has one, in a random order. A campaign stopped early, or a condition
  that is only available for part of the day, leaves every cell and policy equally covered.
* Blind. An operator who knows which policy runs scores borderline outcomes, resets the
  scene and nudges the robot differently (observer-expectancy effects; Rosenthal 1966). The
  operator sees an alias ("policy A"); the display name is never copied into a schedule and
  the policy id only travels to the robot that must load the checkpoint. Aliases come from the
  seed, not the registration order, so "policy A" is not "the one registered first".
* Counterbalance (paired mode). A/B pairs run two policies back to back on the same cell,
  matched on the scene as far as a reset allows, for a paired (McNemar) comparison. The
  second run of a pair differs systematically from the first (the operator has just watched
  a run, the objects were just handled), so which policy goes first is balanced exactly: over
  the campaign each policy goes first in half of its pairs, rounded up or down, and so does
  each policy of each comparison; which pairs get which order is drawn at random, so the
  operator cannot predict it (balance plus randomization, as in the AB/BA crossover design;
  Senn 2002).
* Robots are a nuisance factor too: whole blocks are dealt to robots, so a pair never spans
  robots and every robot runs every policy equally often (to within one block); each cell's
  replicates are spread over the robots too (to within one), so a condition is not tied to
  one robot.

Randomness. The random source is the 64-bit integer stream of ``numpy.random.PCG64(seed)``,
and nothing else from numpy's random module. NumPy guarantees that a PCG64 seeded with a given
integer always produces the same integer stream; it does not guarantee that for
``Generator.shuffle``, ``permutation`` or ``integers``, which may change in a feature release
(numpy "Compatibility policy"), and Python only guarantees ``random.Random(seed).random()``,
not ``shuffle`` or ``randrange`` (which did change in Python 3.2). A stored seed must give the
same schedule years later, so the shuffles are ours: Fisher-Yates (Durstenfeld 1964) over
unbiased bounded integers by rejection, both specified below and reproducible in any language
that has PCG64 and numpy's SeedSequence seeding. A golden test pins the first words of the
stream and whole schedules, so a silent change anywhere fails the suite. (Only the integer
stream is relied on: ``PCG64``'s docstring guarantees it, ``Generator`` methods have no such
guarantee. The server pins numpy exactly in requirements.txt; the SDK allows ``>=1.26,<3``.)

The algorithm, exactly (``SCHEDULE_ALGORITHM = "pg-schedule/2"``; "pg-schedule/1" is the
same without step 3W, its interleaved blocks shuffled in step 4):

0. Canonical order: policies sorted by id, cells by (task version id, condition id), robots
   by id, all by Unicode code point. The schedule therefore depends on the set of inputs, not
   on the order a database query happened to return them in.
1. One stream S of 64-bit words from ``PCG64(seed)``. ``below(m)`` (0 <= value < m): let
   ``limit = 2**64 - (2**64 mod m)``; take words until one is below ``limit``; return it mod
   m. ``shuffle(x)``: for i from len(x)-1 down to 1, swap x[i] with x[below(i + 1)].
2. Aliases: labels "policy A", "policy B", ... (then "policy AA", like spreadsheet columns),
   one per policy; ``shuffle(labels)``; the i-th policy in canonical order gets labels[i].
3. Paired mode only: the comparisons are the policy pairs (i, j), i < j in canonical order.
   For each cell with an odd number n of replicates, one pair per comparison cannot be
   split evenly. For each comparison, those odd cells (in canonical order) are taken two at
   a time: ``below(2) == 0`` puts i first in the odd pair of the first of the two cells and
   j first in the second, else the reverse. An odd cell left over makes an edge i-j of a
   graph on the policies, oriented by trails (3b) so that no policy leads more than once
   more or less often than it follows. Then for each comparison and each cell (canonical
   order) the list of who leads in replicates 0..n-1, ``[i] * (n // 2) + [j] * (n // 2)``
   plus the odd pair's leader at the end, is shuffled.
   3b. Trails: while edges remain, start at the smallest policy with an odd number of
   remaining edges, or else the smallest with any; walk to the smallest remaining neighbour,
   deleting the edge, until stuck; if ``below(2) == 1`` reverse the trail; each step a->b
   means a leads in that left-over pair.
3W. Interleaved mode, pg-schedule/2 only: W = ``williams_rows(P)`` (R rows: P, or 2P for
   odd P). ``shuffle(roles)``, roles = [0..P-1]: symbol v of W is policy roles[v].
   ``shuffle(by_rank)``, a list of the cell indices, then sort it stably by decreasing
   replicate count; rank[k] is cell k's position in it. For each cycle c = 0, 1, ...,
   ceil(largest replicate count / R) - 1: orders[c] = [0..R-1], shuffled. Block (k, r)
   runs row W[orders[r div R][(rank[k] + r) mod R]], mapped through roles.
4. Rounds r = 0, 1, ... up to the largest replicate count: the cells with more than r
   replicates, shuffled; for each, one block: interleaved mode runs the policies in the
   order of step 3W (pg-schedule/1: shuffles them), one trial each; paired mode shuffles
   the comparisons (one pair each: the replicate-r leader of step 3 first, the other
   policy second). Orders, blocks and pair ids count up from 0 in
   the order trials are emitted.
5. Robots, if any: ``shuffle(robots)``, then ``shuffle(cells)`` (a copy of the canonical
   indices); walk the cells in that order and each cell's replicates 0..n-1; the t-th block
   of the walk runs on robots[t mod len(robots)]. Drawn last, so adding or removing robots
   changes which robot runs a block, never the order.

References
    Durstenfeld, R. (1964). Algorithm 235: Random permutation. CACM 7(7), 420.
    Fisher, R. A. (1935). The Design of Experiments. Oliver & Boyd.
    O'Neill, M. E. (2014). PCG: a family of simple fast space-efficient statistically good
        algorithms for random number generation. Harvey Mudd College HMC-CS-2014-0905.
    Rosenthal, R. (1966). Experimenter Effects in Behavioral Research. Appleton-Century-Crofts.
    Senn, S. (2002). Cross-over Trials in Clinical Research, 2nd ed. Wiley.
    Williams, E. J. (1949). Experimental designs balanced for the estimation of residual
        effects of treatments. Australian J. Sci. Res. A 2(2), 149-168.
"""

from __future__ import annotations

import hashlib
import operator
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from proving_ground.scheduling_designs import first_movers, williams_block_orders

__all__ = [
    "ALIAS_PREFIX",
    "FINGERPRINT_FORMAT",
    "MAX_SEED",
    "MAX_TRIALS",
    "MODES",
    "SCHEDULE_ALGORITHM",
    "SCHEDULE_ALGORITHMS",
    "CellSpec",
    "PolicySpec",
    "ScheduleMode",
    "ScheduledTrial",
    "alias_map",
    "build_schedule",
    "schedule_fingerprint",
]

# Names the algorithm above. Stored with a campaign's seed; any change to the steps or the
# canonical order must come with a new name, never silently. New campaigns get
# SCHEDULE_ALGORITHM; every name in SCHEDULE_ALGORITHMS stays buildable, so a campaign keeps
# reproducing the schedule it was started with.
SCHEDULE_ALGORITHM = "pg-schedule/2"
SCHEDULE_ALGORITHMS: tuple[str, ...] = ("pg-schedule/1", "pg-schedule/2")
# The first line of the fingerprint's text: names the text's form, not the algorithm (the
# form is the same for every algorithm, so fingerprints stored before pg-schedule/2 still
# verify). A change to the form needs a new name here.
FINGERPRINT_FORMAT = "pg-schedule/1"
# A campaign of 100,000 trials is years of robot time; a larger request is a typo, and
# refusing it keeps a bad request from building a huge list in a web worker.
MAX_TRIALS = 100_000
# The server stores the seed in a signed 64-bit column (PostgreSQL bigint).
MAX_SEED = 2**63 - 1
ALIAS_PREFIX = "policy "
ScheduleMode = Literal["interleaved", "paired"]
MODES: tuple[str, ...] = ("interleaved", "paired")

_TWO_TO_64 = 2**64
# Words are fetched from PCG64 in batches: one numpy call per batch instead of one per word.
# The words used are the same either way; only unused words at the end differ.
_WORD_BATCH = 1024
_FINGERPRINT_FIELDS = 9


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One policy version taking part in a campaign.

    ``policy_id`` identifies the version (the server uses its primary key or checkpoint
    hash); it appears in the schedule so the robot can load the right checkpoint.
    ``display_name`` is accepted so callers can hand over their rows as they are; it is never
    copied into the schedule, because the operator must not see it.
    """

    policy_id: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class CellSpec:
    """One cell of the design: a task version under a condition, and how often to repeat it.

    ``replicates`` (>= 1) is the number of blocks of this cell. In interleaved mode a block
    runs every policy once, so each policy runs the cell ``replicates`` times. In paired mode
    a block runs one pair per comparison (two policies), so each comparison gets
    ``replicates`` pairs on the cell and each policy runs it ``replicates * (P - 1)`` times:
    with the usual two policies, again ``replicates`` trials each.
    """

    task_version_id: str
    condition_id: str
    replicates: int


@dataclass(frozen=True, slots=True)
class ScheduledTrial:
    """One planned trial.

    ``order``: 0-based position in the campaign; each robot runs its own trials in increasing
    order. ``block``: 0-based block index (one replicate of one cell). ``alias``: what the
    operator sees instead of the policy. ``robot_id``: None when no robots were given.
    ``pair_id`` (0-based) and ``pair_position`` (0 = runs first, 1 = second): paired mode
    only, else None.
    """

    order: int
    block: int
    policy_id: str
    alias: str
    task_version_id: str
    condition_id: str
    robot_id: str | None = None
    pair_id: int | None = None
    pair_position: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (includes ``policy_id``: not for the operator's view)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Random source


class WordStream:
    """The 64-bit words of ``PCG64(seed)`` in order, and the two primitives built on them."""

    def __init__(self, seed: int) -> None:
        self._bits = np.random.PCG64(seed)
        self._buffer: list[int] = []

    def word(self) -> int:
        if not self._buffer:
            # Reversed so pop() hands the words out in stream order.
            self._buffer = self._bits.random_raw(_WORD_BATCH).tolist()[::-1]
        return self._buffer.pop()

    def below(self, bound: int) -> int:
        """Uniform integer in [0, bound), unbiased: words at or above ``limit`` are rejected."""
        limit = _TWO_TO_64 - _TWO_TO_64 % bound
        while True:
            word = self.word()
            if word < limit:
                return word % bound

    def shuffle(self, items: list[Any]) -> None:
        """Fisher-Yates in place, from the last element down."""
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


# --------------------------------------------------------------------------------------------
# Validation


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool):
        raise TypeError("seed must be an integer, got a bool")
    try:
        value = operator.index(seed)
    except TypeError:
        raise TypeError(f"seed must be an integer, got {seed!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and 2**63 - 1, got {value}")
    return value


def _check_identifier(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, got {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    # Control characters (tabs, newlines) would make the fingerprint's line format ambiguous.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(f"{what} {value!r} contains a control character")
    return value


def _check_unique_ids(ids: Iterable[str], what: str) -> None:
    seen: set[str] = set()
    for identifier in ids:
        if identifier in seen:
            raise ValueError(f"duplicate {what} {identifier!r}")
        seen.add(identifier)


def _check_policies(policies: Sequence[PolicySpec]) -> list[PolicySpec]:
    if isinstance(policies, str | bytes) or not policies:
        raise ValueError("a schedule needs at least one policy")
    for policy in policies:
        if not isinstance(policy, PolicySpec):
            raise TypeError(f"policies must be PolicySpec, got {policy!r}")
        _check_identifier(policy.policy_id, "policy id")
        if policy.display_name is not None and not isinstance(policy.display_name, str):
            raise TypeError(f"display name of {policy.policy_id!r} must be a string or None")
    _check_unique_ids((policy.policy_id for policy in policies), "policy id")
    return sorted(policies, key=lambda policy: policy.policy_id)


def _check_cells(cells: Sequence[CellSpec]) -> list[CellSpec]:
    if isinstance(cells, str | bytes) or not cells:
        raise ValueError("a schedule needs at least one cell (task version x condition)")
    seen: set[tuple[str, str]] = set()
    for cell in cells:
        if not isinstance(cell, CellSpec):
            raise TypeError(f"cells must be CellSpec, got {cell!r}")
        _check_identifier(cell.task_version_id, "task version id")
        _check_identifier(cell.condition_id, "condition id")
        key = (cell.task_version_id, cell.condition_id)
        label = f"cell ({cell.task_version_id!r}, {cell.condition_id!r})"
        if isinstance(cell.replicates, bool) or not isinstance(cell.replicates, int):
            raise TypeError(f"{label}: replicates must be an integer, got {cell.replicates!r}")
        if cell.replicates < 1:
            raise ValueError(f"{label}: replicates must be at least 1, got {cell.replicates}")
        if key in seen:
            raise ValueError(f"duplicate {label}")
        seen.add(key)
    return sorted(cells, key=lambda cell: (cell.task_version_id, cell.condition_id))


def _check_robots(robots: Sequence[str] | None) -> list[str]:
    if robots is None:
        return []
    if isinstance(robots, str | bytes):
        raise TypeError("robots must be a sequence of robot ids, not a single string")
    checked = [_check_identifier(robot, "robot id") for robot in robots]
    _check_unique_ids(checked, "robot id")
    return sorted(checked)


# --------------------------------------------------------------------------------------------
# Aliases


def _alias_label(index: int) -> str:
    """0 -> "policy A", 25 -> "policy Z", 26 -> "policy AA" (bijective base 26)."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return ALIAS_PREFIX + letters


def _draw_aliases(sorted_ids: Sequence[str], stream: WordStream) -> dict[str, str]:
    labels = [_alias_label(index) for index in range(len(sorted_ids))]
    stream.shuffle(labels)
    return dict(zip(sorted_ids, labels, strict=True))


def alias_map(policy_ids: Sequence[str], seed: int) -> dict[str, str]:
    """The blinded alias of each policy in a campaign: ``{policy_id: "policy A", ...}``.

    A bijection onto "policy A", "policy B", ... (one label per policy). It depends on the
    set of ids and the seed only: the ids are sorted first, then the labels are shuffled with
    the seed's stream (step 2 of the module docstring), so neither the registration order
    nor the ids' sort order tells which label is which. ``build_schedule`` with the same ids
    and seed uses exactly these aliases.

    Raises ValueError for no ids, empty or duplicate ids, or a seed outside [0, 2**63 - 1].
    """
    if isinstance(policy_ids, str | bytes) or not policy_ids:
        raise ValueError("alias_map needs at least one policy id")
    checked = [_check_identifier(policy_id, "policy id") for policy_id in policy_ids]
    _check_unique_ids(checked, "policy id")
    return _draw_aliases(sorted(checked), WordStream(_check_seed(seed)))


# --------------------------------------------------------------------------------------------
# Robots


def _deal_blocks_to_robots(
    replicates: Sequence[int], robots: Sequence[str], stream: WordStream
) -> dict[tuple[int, int], str]:
    """The robot of each block, keyed by (cell index, replicate); empty without robots.

    The robots are shuffled, then the cells are walked in a shuffled order, each cell's
    replicates 0..n-1 in turn, and the blocks are dealt to the robots round-robin. Dealing
    whole blocks keeps every pair on one robot and gives each robot the same number of blocks
    to within one, hence of every policy (each block holds each policy equally often). Each
    cell's replicates are consecutive in the walk, so they too are split to within one, and a
    condition is not tied to one robot. A shuffled walk rather than the canonical order, so
    that the conditions of one task (adjacent when sorted) do not fall on alternate robots
    in a pattern.
    """
    if not robots:
        return {}
    dealing_order = list(robots)
    stream.shuffle(dealing_order)
    cell_order = list(range(len(replicates)))
    stream.shuffle(cell_order)
    assignment: dict[tuple[int, int], str] = {}
    for k in cell_order:
        for replicate in range(replicates[k]):
            assignment[k, replicate] = dealing_order[len(assignment) % len(dealing_order)]
    return assignment


# --------------------------------------------------------------------------------------------
# The schedule


def build_schedule(
    policies: Sequence[PolicySpec],
    cells: Sequence[CellSpec],
    *,
    seed: int,
    robots: Sequence[str] | None = None,
    mode: ScheduleMode = "interleaved",
    algorithm: str = SCHEDULE_ALGORITHM,
) -> list[ScheduledTrial]:
    """The campaign's trials in the order they are to be run (algorithm: module docstring).

    ``policies``: at least one (two for paired mode), unique ids. ``cells``: at least one,
    unique (task version, condition), ``replicates >= 1``. ``robots``: optional unique ids;
    empty or None leaves ``robot_id`` None. ``seed``: integer in [0, 2**63 - 1], stored with
    the campaign. ``mode``: "interleaved" (every block runs each policy once) or "paired"
    (every block runs one counterbalanced pair per two policies; odd replicate counts are
    allowed, and the leader balance then holds to within one over the campaign).
    ``algorithm``: one of ``SCHEDULE_ALGORITHMS``; a stored campaign passes the name it was
    started with. The two differ in interleaved mode only: "pg-schedule/1" orders each
    block at random, "pg-schedule/2" (the default) by a Williams design (step 3W).

    Returns trials with ``order`` 0..N-1 in list order, N = P * sum(replicates) in
    interleaved mode and P * (P - 1) * sum(replicates) in paired mode, at most
    ``MAX_TRIALS``. Deterministic in (set of policy ids, set of cells, set of robots, seed,
    mode); the order the inputs are listed in does not matter. No side effects.

    Raises ValueError for a missing, empty, duplicate or malformed input, a seed out of range,
    an unknown mode, paired mode with one policy, or more than ``MAX_TRIALS`` trials;
    TypeError for a value of the wrong type.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if algorithm not in SCHEDULE_ALGORITHMS:
        known = ", ".join(SCHEDULE_ALGORITHMS)
        raise ValueError(f"algorithm must be one of {known}; got {algorithm!r}")
    seed = _check_seed(seed)
    sorted_policies = _check_policies(policies)
    sorted_cells = _check_cells(cells)
    sorted_robots = _check_robots(robots)
    policy_count = len(sorted_policies)
    paired = mode == "paired"
    if paired and policy_count < 2:
        raise ValueError("paired mode needs at least two policies")
    replicates = [cell.replicates for cell in sorted_cells]
    trials_per_replicate = policy_count * (policy_count - 1) if paired else policy_count
    total = trials_per_replicate * sum(replicates)
    if total > MAX_TRIALS:
        raise ValueError(
            f"the design asks for {total:,} trials; a schedule holds at most {MAX_TRIALS:,}"
        )

    stream = WordStream(seed)
    policy_ids = [policy.policy_id for policy in sorted_policies]
    aliases = _draw_aliases(policy_ids, stream)
    alias_of = [aliases[policy_id] for policy_id in policy_ids]

    comparisons = [(i, j) for i in range(policy_count) for j in range(i + 1, policy_count)]
    leaders = first_movers(comparisons, policy_count, replicates, stream) if paired else []
    balanced = not paired and algorithm != "pg-schedule/1"
    block_order = williams_block_orders(policy_count, replicates, stream) if balanced else None

    # Step 4: blocks as (cell, replicate, members in running order), round by round.
    blocks: list[tuple[int, int, list[int]]] = []
    for replicate in range(max(replicates)):
        round_cells = [k for k, count in enumerate(replicates) if count > replicate]
        stream.shuffle(round_cells)
        for k in round_cells:
            if block_order is not None:
                members = block_order(k, replicate)
            else:
                members = list(range(len(comparisons) if paired else policy_count))
                stream.shuffle(members)
            blocks.append((k, replicate, members))
    # Step 5 comes last so that adding or removing a robot leaves the order as it was.
    robot_of = _deal_blocks_to_robots(replicates, sorted_robots, stream)

    trials: list[ScheduledTrial] = []
    pair_id = 0
    for block, (k, replicate, members) in enumerate(blocks):
        cell = sorted_cells[k]
        robot_id = robot_of.get((k, replicate))
        if not paired:
            for p in members:
                trials.append(
                    ScheduledTrial(
                        order=len(trials),
                        block=block,
                        policy_id=policy_ids[p],
                        alias=alias_of[p],
                        task_version_id=cell.task_version_id,
                        condition_id=cell.condition_id,
                        robot_id=robot_id,
                    )
                )
            continue
        for c in members:
            i, j = comparisons[c]
            first = leaders[c][k][replicate]
            for position, p in enumerate((first, j if first == i else i)):
                trials.append(
                    ScheduledTrial(
                        order=len(trials),
                        block=block,
                        policy_id=policy_ids[p],
                        alias=alias_of[p],
                        task_version_id=cell.task_version_id,
                        condition_id=cell.condition_id,
                        robot_id=robot_id,
                        pair_id=pair_id,
                        pair_position=position,
                    )
                )
            pair_id += 1
    return trials


def schedule_fingerprint(trials: Iterable[ScheduledTrial]) -> str:
    """SHA-256 (64 lowercase hex digits) of the schedule's canonical text.

    The text is UTF-8: the line ``pg-schedule/1`` (``FINGERPRINT_FORMAT``, the same for
    every algorithm), then one line per trial in list order
    with its nine fields in declaration order (order, block, policy_id, alias,
    task_version_id, condition_id, robot_id, pair_id, pair_position) separated by tabs,
    integers in decimal, None as the empty string, each line ending in a newline. Ids cannot
    hold tabs or newlines (``build_schedule`` refuses control characters), so the text is
    unambiguous and any language can recompute it. The server stores it with the seed and
    recomputes it to verify that the trials it holds are the schedule it generated.

    Raises ValueError if a field contains a tab or newline.
    """
    digest = hashlib.sha256()
    digest.update(f"{FINGERPRINT_FORMAT}\n".encode())
    for trial in trials:
        fields = (
            trial.order,
            trial.block,
            trial.policy_id,
            trial.alias,
            trial.task_version_id,
            trial.condition_id,
            trial.robot_id,
            trial.pair_id,
            trial.pair_position,
        )
        line = "\t".join("" if field is None else str(field) for field in fields)
        if line.count("\t") != _FINGERPRINT_FIELDS - 1 or "\n" in line or "\r" in line:
            raise ValueError(f"trial {trial.order}: a field contains a tab or newline")
        digest.update(f"{line}\n".encode())
    return digest.hexdigest()
