"""Run a callback once per key after the current transaction commits.

`transaction.on_commit` runs every callback it is given: a transaction that scores a hundred
trials would queue a hundred refreshes of one leaderboard. `on_commit_once(key, callback)`
still registers one callback per call through that public API, so Django keeps its promise
about savepoints (the callbacks of a rolled-back savepoint are dropped, the others run), and
de-duplicates when the callbacks run: the callbacks registered for one commit share a batch,
and within a batch only the first callback of a key that succeeds does its work.

A batch is this thread's, per database alias. It closes when its first callback runs (after
the commit, or at once outside a transaction); a registration after that opens a new one.
A batch whose transaction rolled back never ran anything, so the next transaction may reuse
it without losing a callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from django.db import DEFAULT_DB_ALIAS, transaction

_local = threading.local()


class _Batch:
    __slots__ = ("closed", "done")

    def __init__(self) -> None:
        self.closed = False  # a callback of this batch ran: its transaction committed
        self.done: set = set()  # keys whose callback succeeded


def _open_batch(using: str) -> _Batch:
    batches = _local.__dict__.setdefault("batches", {})
    batch = batches.get(using)
    if batch is None or batch.closed:
        batch = batches[using] = _Batch()
    return batch


def on_commit_once(key: Hashable, callback: Callable[[], object], *, using: str | None = None):
    """Run `callback` after the current transaction on `using` commits, unless a callback
    registered under the same `key` for the same commit already ran. Outside a transaction
    it runs at once. Keys should name their kind (e.g. `("leaderboard-refresh", ...)`), since
    every caller shares the one namespace."""
    using = using or DEFAULT_DB_ALIAS
    batch = _open_batch(using)

    def run_once() -> None:
        batch.closed = True
        if key in batch.done:
            return
        callback()
        batch.done.add(key)

    run_once.commit_key = key  # for tests that capture the callbacks
    transaction.on_commit(run_once, using=using)
