"""The recording app's part of an operator's access archive (core.access_archive): sessions,
episodes (and their files on request), labels the person gave, and per-session quality
figures as the session pages show them."""

from __future__ import annotations

from django.db.models import Count, Prefetch

from core.access_archive import SectionData, Table, archive_section, who
from core.models import Operator
from teleop.models import Episode, Label, Session
from teleop.selectors import accepted_episodes, session_summary

_SESSIONS = Table(
    "sessions",
    "Sessions run under your operator code.",
    {
        "id": "the session's id",
        "code": "the short code shown on the console",
        "kind": "teleop or evaluation",
        "status": "open or closed",
        "robot": "the robot's name",
        "task": "the task's slug and version",
        "protocol": "the collection protocol's name, if any",
        "opened_by": '"you", "another person" or the robot that opened it',
        "opened_at": "when it was opened",
        "closed_at": "when it was closed",
    },
)
_EPISODES = Table(
    "episodes",
    "Episodes recorded under your operator code (metadata; the files themselves are under "
    "files/episodes/ when you asked for them).",
    {
        "id": "the episode's id",
        "session": "its session's id",
        "robot": "the robot's name",
        "task": "the task's slug and version",
        "condition": "factor: level, if any",
        "state": "created, uploading, processing, ready or rejected",
        "recorded_at": "when it was recorded",
        "created_at": "when the robot registered it",
        "duration_s": "length in seconds",
        "measured_hz": "measured control rate (Hz)",
        "num_steps": "control steps",
        "size_bytes": "file size",
        "sha256": "SHA-256 of the file",
        "quality_flags": "quality gates it failed",
        "outcome": "the current label's outcome (success, failure, partial; empty if none)",
        "stage_score": "the current label's stage score (0-1)",
        "failure_codes": "the current label's failure codes",
        "discarded_at": "when it was discarded (a tombstone; empty if kept)",
        "discard_reason": "why",
        "discarded_by": '"you" or "another person"',
        "consent_version": "the consent version you had given when it was recorded",
        "licence": "what it may be used for: internal, teams or public (docs/privacy.md)",
        "consent_withdrawn_at": "when your withdrawal of consent reached it",
        "file_in_archive": "files/episodes/<id>.h5 when included",
    },
)
_LABELS = Table(
    "labels_given",
    "Labels you gave on episodes (any operator's), with your own account.",
    {
        "episode": "the episode's id",
        "outcome": "success, failure or partial",
        "stages_reached": "stage ids",
        "stage_score": "0-1",
        "failure_codes": "failure codes",
        "notes": "your notes",
        "check_disagrees": "whether the automatic check said otherwise",
        "created_at": "when you gave it",
        "superseded_at": "when a newer label replaced it",
    },
)
_QUALITY = Table(
    "session_quality",
    "Per session, the figures the session pages show about your work.",
    {
        "session": "the session's id",
        "episodes": "episodes recorded",
        "ready": "episodes accepted by validation",
        "rejected": "episodes refused by validation",
        "discarded": "episodes discarded",
        "flagged": "kept episodes that failed a quality gate",
        "labelled": "kept episodes with a label",
        "successes": "labelled success",
        "failures": "labelled failure",
        "partials": "labelled partial",
        "success_rate": "successes / labelled",
        "accepted": "ready, labelled and not discarded (what counts towards protocol targets)",
        "acceptance_rate": "accepted / episodes",
        "median_duration_s": "median length of ready, kept episodes",
    },
)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@archive_section(_SESSIONS, _EPISODES, _LABELS, _QUALITY, order=10)
def read_recordings(operator: Operator, *, user, include_files: bool) -> SectionData:
    data = SectionData()
    sessions = list(
        Session.objects.filter(operator=operator)
        .select_related("robot", "task_version__task", "protocol")
        .order_by("opened_at")
    )
    data.rows["sessions"] = [
        {
            "id": s.pk,
            "code": s.code,
            "kind": s.kind,
            "status": s.status,
            "robot": s.robot.name,
            "task": str(s.task_version),
            "protocol": s.protocol.name if s.protocol else "",
            "opened_by": who(s.opened_by, user),
            "opened_at": s.opened_at,
            "closed_at": s.closed_at,
        }
        for s in sessions
    ]
    current = Prefetch(
        "labels", queryset=Label.objects.filter(superseded_at=None), to_attr="current_labels"
    )
    episodes = (
        Episode.objects.filter(operator=operator)
        .select_related("robot", "task_version__task", "condition")
        .prefetch_related(current)
        .order_by("created_at")
    )
    rows = []
    for e in episodes:
        label = e.current_labels[0] if e.current_labels else None
        in_archive = f"files/episodes/{e.pk}.h5" if include_files and e.file else ""
        if in_archive:
            data.files.append((in_archive, e.file))
        rows.append(
            {
                "id": e.pk,
                "session": e.session_id,
                "robot": e.robot.name,
                "task": str(e.task_version),
                "condition": str(e.condition) if e.condition else "",
                "state": e.state,
                "recorded_at": e.recorded_at,
                "created_at": e.created_at,
                "duration_s": e.duration_s,
                "measured_hz": e.measured_hz,
                "num_steps": e.num_steps,
                "size_bytes": e.size_bytes,
                "sha256": e.sha256,
                "quality_flags": e.quality_flags,
                "outcome": label.outcome if label else "",
                "stage_score": label.stage_score if label else None,
                "failure_codes": label.failure_codes if label else [],
                "discarded_at": e.discarded_at,
                "discard_reason": e.discard_reason,
                "discarded_by": who(e.discarded_by, user) if e.discarded_by else "",
                "consent_version": e.consent_version,
                "licence": e.licence,
                "consent_withdrawn_at": e.consent_withdrawn_at,
                "file_in_archive": in_archive,
            }
        )
    data.rows["episodes"] = rows
    data.rows["labels_given"] = (
        []
        if user is None
        else [
            {name: getattr(label, name) for name in _LABELS.columns if name != "episode"}
            | {"episode": label.episode_id}
            for label in Label.objects.filter(labeler=user).order_by("created_at", "pk")
        ]
    )
    accepted = dict(
        accepted_episodes()
        .filter(session__in=sessions)
        .values_list("session")
        .annotate(n=Count("pk"))
        .values_list("session", "n")
    )
    quality = []
    for s in sessions:
        summary = session_summary(s)
        quality.append(
            {
                "session": s.pk,
                "episodes": summary.episodes,
                "ready": summary.by_state.get(Episode.State.READY, 0),
                "rejected": summary.by_state.get(Episode.State.REJECTED, 0),
                "discarded": summary.discarded,
                "flagged": summary.flagged,
                "labelled": summary.labelled,
                "successes": summary.successes,
                "failures": summary.failures,
                "partials": summary.partials,
                "success_rate": _rate(summary.successes, summary.labelled),
                "accepted": accepted.get(s.pk, 0),
                "acceptance_rate": _rate(accepted.get(s.pk, 0), summary.episodes),
                "median_duration_s": summary.median_duration_s,
            }
        )
    data.rows["session_quality"] = quality
    return data
