"""Reads of the recording app, returning plain data. Aggregation runs in the database."""

from __future__ import annotations

import json
import statistics
import uuid
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q

from teleop.models import CollectionProtocol, Episode, Label, ProtocolTarget, Session


@dataclass(frozen=True)
class ConditionProgress:
    condition_id: uuid.UUID
    factor: str
    level: str
    target: int
    accepted: int


def accepted_episodes():
    """Episodes that count towards a protocol: ready, labelled, not discarded."""
    current_label = Label.objects.filter(episode=OuterRef("pk"), superseded_at=None)
    return Episode.objects.filter(state=Episode.State.READY, discarded_at=None).filter(
        Exists(current_label)
    )


def protocol_progress(protocol: CollectionProtocol) -> list[ConditionProgress]:
    """Per condition of the protocol: the target and the accepted episodes recorded under it
    in the protocol's sessions (one grouped query)."""
    counts = dict(
        accepted_episodes()
        .filter(session__protocol=protocol)
        .values_list("condition_id")
        .annotate(n=Count("pk"))
        .values_list("condition_id", "n")
    )
    targets = ProtocolTarget.objects.filter(protocol=protocol).select_related("condition")
    return [
        ConditionProgress(
            t.condition_id,
            t.condition.factor,
            t.condition.level,
            t.target_count,
            counts.get(t.condition_id, 0),
        )
        for t in targets
    ]


@dataclass(frozen=True)
class SessionSummary:
    episodes: int
    by_state: dict[str, int]
    discarded: int
    labelled: int
    successes: int
    failures: int
    partials: int
    median_duration_s: float | None
    flagged: int


def session_summary(session: Session) -> SessionSummary:
    episodes = Episode.objects.filter(session=session)
    by_state = dict(episodes.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    kept = episodes.filter(discarded_at=None)
    outcomes = dict(
        Label.objects.filter(episode__in=kept, superseded_at=None)
        .values_list("outcome")
        .annotate(n=Count("pk"))
        .values_list("outcome", "n")
    )
    durations = list(
        kept.filter(state=Episode.State.READY)
        .exclude(duration_s=None)
        .values_list("duration_s", flat=True)
    )
    return SessionSummary(
        episodes=sum(by_state.values()),
        by_state=by_state,
        discarded=episodes.exclude(discarded_at=None).count(),
        labelled=sum(outcomes.values()),
        successes=outcomes.get(Label.Outcome.SUCCESS, 0),
        failures=outcomes.get(Label.Outcome.FAILURE, 0),
        partials=outcomes.get(Label.Outcome.PARTIAL, 0),
        median_duration_s=statistics.median(durations) if durations else None,
        flagged=kept.filter(~Q(quality_flags=[])).count(),
    )


# --- Episode filters (the episode browser and dataset views share them) ----------------------

FILTER_KEYS = {
    "task": "task slug",
    "task_version": "task version id",
    "robot": "robot name",
    "operator": "operator code",
    "condition": "condition id",
    "outcome": "success, failure, partial or unlabelled",
    "state": "episode state (default: ready)",
    "flags_any": "list: episodes with at least one of these quality flags",
    "exclude_flagged": "true: only episodes without any quality flag",
    "recorded_after": "ISO date or datetime (inclusive)",
    "recorded_before": "ISO date or datetime (exclusive)",
    "include_discarded": "true: keep discarded episodes too",
}


def filter_episodes(queryset, filters: dict):
    """Apply validated filters (see `FILTER_KEYS`) to an episode queryset, in the database."""
    current = Label.objects.filter(episode=OuterRef("pk"), superseded_at=None)
    queryset = queryset.filter(state=filters.get("state", Episode.State.READY))
    if not filters.get("include_discarded"):
        queryset = queryset.filter(discarded_at=None)
    simple = {
        "task": "task_version__task__slug",
        "task_version": "task_version_id",
        "robot": "robot__name",
        "operator": "operator__code",
        "condition": "condition_id",
        "recorded_after": "created_at__gte",
        "recorded_before": "created_at__lt",
    }
    for key, lookup in simple.items():
        if filters.get(key) not in (None, ""):
            queryset = queryset.filter(**{lookup: filters[key]})
    outcome = filters.get("outcome")
    if outcome == "unlabelled":
        queryset = queryset.filter(~Exists(current))
    elif outcome:
        queryset = queryset.filter(Exists(current.filter(outcome=outcome)))
    if filters.get("flags_any"):
        # Flags are slugs; matching the quoted slug in the JSON text works on PostgreSQL and
        # SQLite alike (SQLite has no JSON containment lookup).
        any_flag = Q()
        for flag in filters["flags_any"]:
            any_flag |= Q(quality_flags__icontains=json.dumps(flag))
        queryset = queryset.filter(any_flag)
    if filters.get("exclude_flagged"):
        queryset = queryset.filter(quality_flags=[])
    return queryset
