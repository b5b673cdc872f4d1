"""`on_commit_once`: a callback per key runs once after the commit, however many times it was
asked for; never for a rolled-back transaction or savepoint; at once outside a transaction.
Real commits (transactional tests): the test transaction of the `db` fixture never commits."""

import pytest
from django.db import transaction

from core.commit_hooks import on_commit_once

pytestmark = pytest.mark.django_db(transaction=True)


class Abort(Exception):
    """Rolls back the block it leaves."""


@pytest.fixture
def ran():
    return []


def _ask(ran, key):
    on_commit_once(("test", key), lambda: ran.append(key))


def test_many_requests_in_one_transaction_run_once_after_the_commit(ran):
    with transaction.atomic():
        for key in ("a", "b", "a", "a", "b"):
            _ask(ran, key)
        assert ran == []
    assert ran == ["a", "b"]


def test_a_rolled_back_transaction_runs_nothing_and_the_next_one_runs_its_own(ran):
    with pytest.raises(Abort), transaction.atomic():
        _ask(ran, "a")
        raise Abort
    assert ran == []
    with transaction.atomic():
        _ask(ran, "a")
    assert ran == ["a"]


def test_a_request_in_a_rolled_back_savepoint_does_not_hide_a_later_one(ran):
    with transaction.atomic():
        with pytest.raises(Abort), transaction.atomic():
            _ask(ran, "a")
            raise Abort
        _ask(ran, "a")
    assert ran == ["a"]


def test_a_request_only_in_a_rolled_back_savepoint_does_not_run(ran):
    with transaction.atomic():
        _ask(ran, "kept")
        with pytest.raises(Abort), transaction.atomic():
            _ask(ran, "dropped")
            raise Abort
    assert ran == ["kept"]


def test_a_request_in_a_committed_savepoint_counts_once_with_the_outer_one(ran):
    with transaction.atomic():
        with transaction.atomic():
            _ask(ran, "a")
        _ask(ran, "a")
    assert ran == ["a"]


def test_each_commit_runs_its_own(ran):
    for _ in range(3):
        with transaction.atomic():
            _ask(ran, "a")
            _ask(ran, "a")
    assert ran == ["a", "a", "a"]


def test_outside_a_transaction_each_request_runs_at_once(ran):
    _ask(ran, "a")
    _ask(ran, "a")
    assert ran == ["a", "a"]


def test_a_callback_may_ask_again_for_a_later_commit(ran):
    def first():
        ran.append("first")
        with transaction.atomic():
            _ask(ran, "again")
            _ask(ran, "again")

    with transaction.atomic():
        on_commit_once(("test", "first"), first)
        on_commit_once(("test", "first"), first)
    assert ran == ["first", "again"]
