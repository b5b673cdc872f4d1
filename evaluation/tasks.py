"""Background jobs of the evaluation app (Django's task framework, database backend).

Jobs take ids, not objects, and are idempotent: a leaderboard refresh run twice, or after a
newer one, stores nothing new.
"""

from datetime import datetime

from django_tasks import task

from evaluation.services import leaderboards


@task()
def refresh_leaderboard_job(scope: str, object_id: str, requested_at: str) -> int:
    """Recompute a campaign's or benchmark's leaderboard snapshot after results changed.
    `requested_at` (ISO 8601) lets a job skip work a later refresh already did. Returns the
    snapshot id."""
    snapshot = leaderboards.refresh_leaderboard(
        scope=scope, object_id=object_id, requested_at=datetime.fromisoformat(requested_at)
    )
    return snapshot.pk
