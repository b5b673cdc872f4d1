"""Combinatorial designs behind the trial schedule (``proving_ground.scheduling``).

The constructions, each exact and each specified so that any language can rebuild it (the
steps they implement are numbered as in ``proving_ground.scheduling``'s docstring):

* ``williams_rows``: the run orders of a Williams design (a balanced Latin square; Williams
  1949). With P policies, every policy takes every position within a block equally often
  over the rows, and every policy runs immediately after every other policy equally often
  (first-order carry-over balance). For even P one P x P square does both; for odd P no
  single square can (P - 1 successors per policy over P rows cannot be split evenly), so the
  square is followed by its mirror image: 2P rows (Williams 1949).
  ``williams_block_orders`` deals its rows to the blocks (step 3W).
* ``first_movers`` decides who goes first in each pair of paired mode (step 3), and
  ``orient_by_trails`` orients its left-over pairs so that no policy goes first more than
  once more, or less, often than it goes second (step 3b).

Both take their randomness, when they need any, from a caller's ``RandomWords`` (the
scheduler's PCG64 word stream), never from numpy's ``Generator``. No Django, no numpy.

References
    Williams, E. J. (1949). Experimental designs balanced for the estimation of residual
        effects of treatments. Australian J. Sci. Res. A 2(2), 149-168.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol


class RandomWords(Protocol):
    """What a construction needs from the scheduler's random stream."""

    def below(self, bound: int) -> int: ...

    def shuffle(self, items: list[Any]) -> None: ...


def williams_rows(count: int) -> list[tuple[int, ...]]:
    """The rows of a Williams design on the symbols 0..count-1, in construction order.

    Base sequence ``s = 0, 1, count-1, 2, count-2, 3, ...`` (``s[j] = (j + 1) // 2`` for odd
    j, ``count - j // 2`` for even j > 0); row i (0 <= i < count) is ``(s[pos] + i) mod
    count`` for pos = 0..count-1. For odd count, rows count..2*count-1 are rows 0..count-1
    reversed. Over all rows each symbol is at each position ``len(rows) / count`` times and
    each ordered pair (a, b), a != b, is adjacent (a just before b) ``len(rows) / count``
    times (one symbol: the single row ``(0,)``). ``williams_rows(2) == [(0, 1), (1, 0)]``.
    """
    if count < 1:
        raise ValueError(f"a Williams design needs at least one symbol, got {count}")
    base = [0] + [(j + 1) // 2 if j % 2 else count - j // 2 for j in range(1, count)]
    rows = [tuple((symbol + i) % count for symbol in base) for i in range(count)]
    if count % 2 and count > 1:
        rows += [row[::-1] for row in rows]
    return rows


def orient_by_trails(
    edges: Sequence[tuple[int, int]], vertex_count: int, stream: RandomWords
) -> list[tuple[int, int]]:
    """Orient an undirected simple graph so every vertex's out- and in-degree differ by <= 1.

    Greedy trails: a trail that starts at a vertex of odd degree can only get stuck at
    another vertex of odd degree, so after it both are even; once all are even every trail
    is closed. A vertex is therefore the open end of at most one trail, which is the whole
    imbalance it gets. Each trail's direction is a coin flip, so who leads is not predictable.
    Returns the directed edges (a, b): a goes first.
    """
    neighbours: list[list[int]] = [[] for _ in range(vertex_count)]
    for a, b in edges:
        neighbours[a].append(b)
        neighbours[b].append(a)
    for adjacent in neighbours:
        adjacent.sort()
    degree = [len(adjacent) for adjacent in neighbours]
    # Lazy deletion: next_index[v] skips neighbours whose edge a trail has already used, so
    # "smallest remaining neighbour" costs O(1) amortized instead of a scan.
    next_index = [0] * vertex_count
    used: set[tuple[int, int]] = set()

    def smallest_remaining_neighbour(vertex: int) -> int:
        adjacent = neighbours[vertex]
        while True:
            other = adjacent[next_index[vertex]]
            next_index[vertex] += 1
            if (min(vertex, other), max(vertex, other)) not in used:
                return other

    directed: list[tuple[int, int]] = []
    while True:
        start = next((v for v in range(vertex_count) if degree[v] % 2), None)
        if start is None:
            start = next((v for v in range(vertex_count) if degree[v]), None)
        if start is None:
            return directed
        trail = [start]
        vertex = start
        while degree[vertex]:
            other = smallest_remaining_neighbour(vertex)
            used.add((min(vertex, other), max(vertex, other)))
            degree[vertex] -= 1
            degree[other] -= 1
            trail.append(other)
            vertex = other
        if stream.below(2) == 1:
            trail.reverse()
        directed.extend(zip(trail, trail[1:], strict=False))


def first_movers(
    comparisons: Sequence[tuple[int, int]],
    policy_count: int,
    replicates: Sequence[int],
    stream: RandomWords,
) -> list[list[list[int]]]:
    """``result[c][k][r]``: the policy that goes first in comparison c, cell k, replicate r.

    Within each (comparison, cell) each policy leads ``n // 2`` times; the odd replicates'
    leaders alternate across cells per comparison, and the one left over is oriented by
    ``orient_by_trails``. Balance: within ±1/2 per (comparison, cell), per comparison over
    the campaign, and per policy over all its pairs.
    """
    odd_cells = [k for k, count in enumerate(replicates) if count % 2]
    odd_leader: dict[tuple[int, int], int] = {}
    leftover_edges: list[tuple[int, int]] = []
    leftover_cell: dict[tuple[int, int], tuple[int, int]] = {}
    for c, (i, j) in enumerate(comparisons):
        for t in range(0, len(odd_cells) - 1, 2):
            first, second = (i, j) if stream.below(2) == 0 else (j, i)
            odd_leader[c, odd_cells[t]] = first
            odd_leader[c, odd_cells[t + 1]] = second
        if len(odd_cells) % 2:
            leftover_edges.append((i, j))
            leftover_cell[i, j] = (c, odd_cells[-1])
    for a, b in orient_by_trails(leftover_edges, policy_count, stream):
        odd_leader[leftover_cell[min(a, b), max(a, b)]] = a

    leaders: list[list[list[int]]] = []
    for c, (i, j) in enumerate(comparisons):
        per_cell: list[list[int]] = []
        for k, count in enumerate(replicates):
            order = [i] * (count // 2) + [j] * (count // 2)
            if count % 2:
                order.append(odd_leader[c, k])
            stream.shuffle(order)
            per_cell.append(order)
        leaders.append(per_cell)
    return leaders


def williams_block_orders(
    policy_count: int, replicates: Sequence[int], stream: RandomWords
) -> Callable[[int, int], list[int]]:
    """Step 3W: the running order of block (cell k, replicate r), as policy indices.

    The rows of ``williams_rows(P)`` (R of them: P, or 2P for odd P) are dealt so that every
    R consecutive replicates of a cell (r = cR .. cR + R - 1, "cycle" c) use each row once:
    block (k, r) runs row ``orders[r // R][(rank[k] + r) % R]``. The seed decides which
    policy plays which symbol of the square (``roles``), each cell's offset (``rank``) and,
    afresh for every cycle, the order of the rows (``orders[c]``). Ranks go to the cells
    with the most replicates first, so round r's cells hold ranks 0..(its cells - 1) and
    use consecutive rows of the cycle: each round is balanced too, to within one row.
    """
    rows = williams_rows(policy_count)
    row_count = len(rows)
    roles = list(range(policy_count))
    stream.shuffle(roles)
    by_rank = list(range(len(replicates)))
    stream.shuffle(by_rank)
    by_rank.sort(key=lambda k: -replicates[k])  # stable: ties keep their shuffled order
    rank = {k: position for position, k in enumerate(by_rank)}
    orders = []
    for _ in range(-(-max(replicates) // row_count)):
        order = list(range(row_count))
        stream.shuffle(order)
        orders.append(order)

    def block_order(k: int, replicate: int) -> list[int]:
        row = rows[orders[replicate // row_count][(rank[k] + replicate) % row_count]]
        return [roles[symbol] for symbol in row]

    return block_order
