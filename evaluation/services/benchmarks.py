"""Benchmarks: their task version x condition cells, editing until published, publishing."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.utils import timezone

from core import access
from core.errors import Conflict, InvalidInput
from core.models import Condition, Task, TaskVersion, Team, Visibility
from core.services import audit
from core.services import task_versions as task_version_services
from evaluation.errors import BenchmarkFrozen, DesignNotVisible
from evaluation.models import Benchmark, BenchmarkCell
from evaluation.services._common import require_designer, set_shared_with
from evaluation.services.leaderboard_queue import enqueue_benchmark_refresh
from proving_ground.scoring import DEFAULT_SCORING_VERSION, SCORING_VERSIONS

MAX_CELLS = 1_000


# --- Benchmarks -----------------------------------------------------------------------------


def design_grid(
    task_versions: Iterable[TaskVersion], conditions: Iterable[Condition]
) -> list[tuple[TaskVersion, Condition]]:
    """The cells of a design: every task version with every condition (duplicates dropped).
    Raises InvalidInput (no cell, or more than MAX_CELLS)."""
    versions = list(dict.fromkeys(task_versions))
    levels = list(dict.fromkeys(conditions))
    if not versions or not levels:
        raise InvalidInput(
            "A design needs at least one task version and one condition.",
            fields={"task_versions": ["At least one."], "conditions": ["At least one."]},
        )
    if len(versions) * len(levels) > MAX_CELLS:
        raise InvalidInput(f"A design holds at most {MAX_CELLS} cells.")
    return [(version, condition) for version in versions for condition in levels]


def check_scoring_version(scoring_version: str) -> None:
    """Raises InvalidInput unless `scoring_version` is a known one."""
    if scoring_version not in SCORING_VERSIONS:
        raise InvalidInput(
            f"Unknown scoring version '{scoring_version}'.",
            fields={"scoring_version": [f"One of: {', '.join(SCORING_VERSIONS)}."]},
        )


def check_trials_per_cell(trials_per_cell: int) -> None:
    """Raises InvalidInput unless 1 <= `trials_per_cell` <= 10000."""
    if not 1 <= trials_per_cell <= 10_000:
        raise InvalidInput(
            "trials_per_cell must be between 1 and 10000.",
            fields={"trials_per_cell": ["Between 1 and 10000."]},
        )


def check_design_visible(
    *,
    visibility: str,
    team_id,
    shared_with_ids: Iterable,
    task_version_ids: Iterable,
    condition_ids: Iterable,
) -> None:
    """Refuse a design whose tasks or conditions some reader of the benchmark may not see:
    a public benchmark references public tasks and conditions only; a shared one, those
    public or visible to its own team and to every team it is shared with
    (`access.hidden_from_audience`). Raises DesignNotVisible (400)."""
    if visibility == Visibility.PRIVATE:
        return
    audience = {"visibility": visibility, "owner_id": team_id, "shared_with_ids": shared_with_ids}
    tasks = access.hidden_from_audience(
        Task.objects.filter(versions__pk__in=list(task_version_ids)).distinct(), **audience
    )
    conditions = access.hidden_from_audience(
        Condition.objects.filter(pk__in=list(condition_ids)), **audience
    )
    fields = {}
    hidden_tasks = sorted(t.slug for t in tasks)
    hidden_conditions = sorted(str(c) for c in conditions)
    if hidden_tasks:
        fields["task_versions"] = [f"Not visible to every reader: {', '.join(hidden_tasks)}."]
    if hidden_conditions:
        fields["conditions"] = [f"Not visible to every reader: {', '.join(hidden_conditions)}."]
    if fields:
        who = "anyone" if visibility == Visibility.PUBLIC else "every team it is shared with"
        raise DesignNotVisible(
            f"A {visibility} benchmark shows its tasks and conditions to {who}; make these "
            f"{'public' if visibility == Visibility.PUBLIC else 'visible to them'} first, or "
            f"keep the benchmark private: {', '.join(hidden_tasks + hidden_conditions)}.",
            fields=fields,
        )


def _check_benchmark_design_visible(benchmark: Benchmark) -> None:
    cells = list(benchmark.cells.values_list("task_version_id", "condition_id"))
    check_design_visible(
        visibility=benchmark.visibility,
        team_id=benchmark.team_id,
        shared_with_ids=list(benchmark.shared_with.values_list("pk", flat=True)),
        task_version_ids={t for t, _ in cells},
        condition_ids={c for _, c in cells},
    )


def create_benchmark(
    *,
    actor,
    team: Team,
    name: str,
    task_versions: Iterable[TaskVersion],
    conditions: Iterable[Condition],
    trials_per_cell: int,
    scoring_version: str = DEFAULT_SCORING_VERSION,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    shared_with: Iterable[Team] = (),
) -> Benchmark:
    """A benchmark over task versions x conditions (every pair is a cell), unpublished.
    Raises NotPermitted, InvalidInput, DesignNotVisible (a public or shared benchmark
    referencing a task or condition some reader may not see), Conflict (name taken)."""
    require_designer(actor, team.pk)
    check_scoring_version(scoring_version)
    check_trials_per_cell(trials_per_cell)
    grid = design_grid(task_versions, conditions)
    shared_with = list(shared_with)
    check_design_visible(
        visibility=visibility,
        team_id=team.pk,
        shared_with_ids=[t.pk for t in shared_with],
        task_version_ids={v.pk for v, _ in grid},
        condition_ids={c.pk for _, c in grid},
    )
    try:
        with transaction.atomic():
            benchmark = Benchmark.objects.create(
                team=team,
                name=name,
                description=description,
                trials_per_cell=trials_per_cell,
                scoring_version=scoring_version,
                visibility=visibility,
                created_by=access.actor_label(actor),
            )
            set_shared_with(benchmark, shared_with)
            BenchmarkCell.objects.bulk_create(
                BenchmarkCell(benchmark=benchmark, task_version=v, condition=c) for v, c in grid
            )
            audit.record_audit(
                actor=actor,
                action="create",
                obj=benchmark,
                after=audit.snapshot(benchmark) | {"cells": len(grid)},
            )
    except IntegrityError as exc:
        raise Conflict(f"Team '{team}' has a benchmark named '{name}' already.") from exc
    return benchmark


_DESIGN_FIELDS = {"task_versions", "conditions", "trials_per_cell", "scoring_version"}


def update_benchmark(*, actor, benchmark: Benchmark, **changes) -> Benchmark:
    """Change name, description or sharing at any time; the design (task versions,
    conditions, trials per cell, scoring version) only before publishing. Raises
    NotPermitted, InvalidInput, DesignNotVisible (a public or shared benchmark referencing
    a task or condition some reader may not see), BenchmarkFrozen, Conflict."""
    require_designer(actor, benchmark.team_id)
    shared_with = changes.pop("shared_with", None)
    unknown = set(changes) - {"name", "description", "visibility"} - _DESIGN_FIELDS
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.")
    design = {name: changes.pop(name) for name in list(changes) if name in _DESIGN_FIELDS}
    try:
        with transaction.atomic():
            benchmark = Benchmark.objects.select_for_update().get(pk=benchmark.pk)
            before = audit.snapshot(benchmark)
            if design:
                if benchmark.is_published:
                    raise BenchmarkFrozen(
                        f"Benchmark '{benchmark}' is published; its cells, trials per cell and "
                        "scoring are frozen. Create a new benchmark to change them."
                    )
                if "scoring_version" in design:
                    check_scoring_version(design["scoring_version"])
                    benchmark.scoring_version = design["scoring_version"]
                if "trials_per_cell" in design:
                    check_trials_per_cell(design["trials_per_cell"])
                    benchmark.trials_per_cell = design["trials_per_cell"]
                if "task_versions" in design or "conditions" in design:
                    cells = list(benchmark.cells.select_related("task_version", "condition"))
                    grid = design_grid(
                        design.get("task_versions", [c.task_version for c in cells]),
                        design.get("conditions", [c.condition for c in cells]),
                    )
                    benchmark.cells.all().delete()
                    BenchmarkCell.objects.bulk_create(
                        BenchmarkCell(benchmark=benchmark, task_version=v, condition=c)
                        for v, c in grid
                    )
            pooled_before = (benchmark.visibility, benchmark.team_id)
            for name, value in changes.items():
                setattr(benchmark, name, value)
            benchmark.save()
            set_shared_with(benchmark, shared_with)
            _check_benchmark_design_visible(benchmark)  # rolls the change back if refused
            if (benchmark.visibility, benchmark.team_id) != pooled_before:
                # Which campaigns the board pools depends on the benchmark's visibility.
                enqueue_benchmark_refresh(benchmark.pk)
            audit.record_audit(
                actor=actor,
                action="update",
                obj=benchmark,
                before=before,
                after=audit.snapshot(benchmark),
            )
    except IntegrityError as exc:
        raise Conflict(f"This team has a benchmark named '{changes.get('name')}'.") from exc
    return benchmark


def publish_benchmark(*, actor, benchmark: Benchmark) -> Benchmark:
    """Freeze a benchmark's design so campaigns can run on it; locks its task versions.
    Idempotent. Raises NotPermitted, DesignNotVisible (checked again: a task or condition
    may have been made less visible since the benchmark was last changed)."""
    require_designer(actor, benchmark.team_id)
    with transaction.atomic():
        benchmark = Benchmark.objects.select_for_update().get(pk=benchmark.pk)
        if benchmark.is_published:
            return benchmark
        _check_benchmark_design_visible(benchmark)
        for version in TaskVersion.objects.filter(
            pk__in=benchmark.cells.values("task_version")
        ).distinct():
            task_version_services.lock_task_version(actor=actor, version=version)
        benchmark.published_at = timezone.now()
        benchmark.save(update_fields=["published_at", "updated_at"])
        audit.record_audit(
            actor=actor,
            action="lock",
            obj=benchmark,
            after={"published_at": benchmark.published_at},
        )
    return benchmark
