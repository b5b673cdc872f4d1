"""Queueing a background job by its dotted path (`"teleop.tasks.process_episode_job"`).

An app's `tasks` module imports the services its jobs run. A service that queues one of those
jobs names it by path instead of importing it, so dependencies run one way (tasks -> services)
and the two never import each other. The path is what the database backend stores for a job
and resolves when a worker runs it (`DBTaskResult.task`); here it is resolved when the job is
queued, so a wrong path fails in the service that names it, not later in a worker.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.module_loading import import_string
from django_tasks.base import Task


def task_at(path: str) -> Task:
    """The task defined at the dotted `path`; TypeError if that is not a task."""
    task = import_string(path)
    if not isinstance(task, Task):
        raise TypeError(f"{path} is not a task.")
    return task


def enqueue_on_commit(path: str, *args: str) -> None:
    """Queue the task at `path` with `args` once the current transaction commits (at once
    outside a transaction)."""
    task = task_at(path)
    transaction.on_commit(lambda: task.enqueue(*args))
