"""Reads of the recording app, returning plain data. Aggregation runs in the database."""

from __future__ import annotations

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
