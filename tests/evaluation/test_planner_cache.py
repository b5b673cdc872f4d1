"""The planner's trials-needed search runs once across web workers: its answer is kept in the
shared cache, not only in one process's memory."""

from __future__ import annotations

from evaluation import planner


def test_a_second_process_reads_the_searched_answer_from_the_shared_cache(monkeypatch):
    calls = []
    real = planner._search_needed

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(planner, "_search_needed", counting)
    planner._needed.cache_clear()
    first = planner._needed(0.5, 0.9, 0.05, 1, "fisher")
    planner._needed.cache_clear()  # as a fresh worker process starts with no memory
    second = planner._needed(0.5, 0.9, 0.05, 1, "fisher")
    assert first == second
    assert first[0] is not None and first[0] > 0
    assert len(calls) == 1
