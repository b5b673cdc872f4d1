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
    "flags_any": (
        "list: episodes with at least one of these quality flags; a kind (the part of a flag "
        "before ':', e.g. check_failed) matches every flag of that kind, a whole flag "
        "(check_failed:grasp-by-2s) only itself"
    ),
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
        queryset = queryset.filter(flags_matching(filters["flags_any"]))
    if filters.get("exclude_flagged"):
        queryset = queryset.filter(quality_flags=[])
    return queryset


def flags_matching(flags) -> Q:
    """Episodes with a quality flag matching one of `flags`: a kind (`check_failed`) matches
    that flag and every `check_failed:<id>`; a whole flag (`check_failed:grasp`) only
    itself. Flags are slugs with at most one ':'; matching the quoted text in the JSON works
    on PostgreSQL and SQLite alike (SQLite has no JSON containment lookup)."""
    matching = Q()
    for flag in flags:
        quoted = json.dumps(flag)
        matching |= Q(quality_flags__icontains=quoted)
        if ":" not in flag:
            matching |= Q(quality_flags__icontains=quoted[:-1] + ":")  # '"kind:'
    return matching


def flag_kind(flag: str) -> str:
    """The kind of a quality flag: the part before ':' (`check_failed:grasp` ->
    `check_failed`), the flag itself when it has none."""
    return flag.split(":", 1)[0]


#: At most this many distinct flag combinations are read to offer the flag filter's choices.
FLAG_CHOICES_SCAN = 1000


def flag_choices(episodes) -> list[tuple[str, list[str]]]:
    """The quality flags present among `episodes`, grouped by kind, sorted: [(kind, [whole
    flags of that kind that have a part after ':'])]. One query over the distinct flag
    lists (a handful of combinations, not one row per episode)."""
    combos = (
        episodes.exclude(quality_flags=[])
        .order_by()
        .values_list("quality_flags", flat=True)
        .distinct()[:FLAG_CHOICES_SCAN]
    )
    kinds: dict[str, set[str]] = {}
    for combo in combos:
        for flag in combo or []:
            whole = kinds.setdefault(flag_kind(str(flag)), set())
            if ":" in str(flag):
                whole.add(str(flag))
    return [(kind, sorted(kinds[kind])) for kind in sorted(kinds)]
