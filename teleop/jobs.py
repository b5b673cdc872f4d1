"""Recording work whose job was lost, queued again (registered with core.jobs).

Each finder locks its candidate rows (`SKIP LOCKED`, so concurrent reapers split them),
checks for a live job, and enqueues inside the same transaction: two reapers never queue the
same row twice. A row that already had `max_attempts` jobs gets no more: an export is marked
failed, an episode's recording `replay_unavailable`; an episode left processing is logged
for an operator (its failures are on record in the job results).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from core.jobs import (
    REQUEUE_BATCH,
    has_live_job,
    jobs_for,
    lost_work_finder,
    requeue_unfinished_builds,
)
from teleop.models import DatasetExport, Episode

log = logging.getLogger(__name__)


def _hopeless(statuses: list[str], max_attempts: int) -> bool:
    return len(statuses) >= max_attempts


def _log_hopeless(kind: str, pks: list) -> None:
    if pks:
        log.error(
            "%d %s had their maximum of jobs and are not queued again (first: %s)",
            len(pks),
            kind,
            pks[0],
        )


@lost_work_finder
def requeue_episodes_processing(*, grace_s: float, max_attempts: int) -> int:
    """Episodes `processing` (upload complete) with no live processing job."""
    from teleop.tasks import process_episode_job

    cutoff = timezone.now() - timedelta(seconds=grace_s)
    with transaction.atomic():
        episode_ids = list(
            Episode.objects.select_for_update(skip_locked=True)
            .filter(state=Episode.State.PROCESSING, updated_at__lt=cutoff)
            .order_by("updated_at")
            .values_list("pk", flat=True)[:REQUEUE_BATCH]
        )
        known = jobs_for(process_episode_job, values=episode_ids)
        queued, hopeless = 0, []
        for episode_id in episode_ids:
            statuses = known.get(str(episode_id), [])
            if has_live_job(statuses):
                continue
            if _hopeless(statuses, max_attempts):
                hopeless.append(episode_id)
                continue
            process_episode_job.enqueue(str(episode_id))
            queued += 1
    _log_hopeless("episodes left processing", hopeless)
    return queued


@lost_work_finder
def requeue_recordings_missing(*, grace_s: float, max_attempts: int) -> int:
    """Ready episodes with no Rerun recording, not marked `replay_unavailable`, and no live
    recording or processing job (processing builds the first recording: a worker that died
    after marking the episode ready lost it)."""
    from teleop.tasks import build_recording_job, process_episode_job

    cutoff = timezone.now() - timedelta(seconds=grace_s)
    with transaction.atomic():
        rows = list(
            Episode.objects.select_for_update(skip_locked=True)
            .filter(state=Episode.State.READY, rerun_file="", processed_at__lt=cutoff)
            .exclude(file="")
            .order_by("processed_at")
            .values_list("pk", "quality_flags")[:REQUEUE_BATCH]
        )
        # JSON list containment is not portable to SQLite: the flag is checked here.
        episode_ids = [pk for pk, flags in rows if "replay_unavailable" not in (flags or [])]
        recordings = jobs_for(build_recording_job, values=episode_ids)
        processing = jobs_for(process_episode_job, values=episode_ids)
        queued, hopeless = 0, []
        for episode_id in episode_ids:
            statuses = recordings.get(str(episode_id), [])
            if has_live_job(statuses) or has_live_job(processing.get(str(episode_id), [])):
                continue
            if _hopeless(statuses, max_attempts):
                hopeless.append(episode_id)
                continue
            build_recording_job.enqueue(str(episode_id))
            queued += 1
        # Flagged as processing flags a failed build: the viewer says the replay is missing,
        # and the next pass no longer picks the episode.
        for episode_id, flags in rows:
            if episode_id in hopeless:
                Episode.objects.filter(pk=episode_id).update(
                    quality_flags=sorted({*(flags or []), "replay_unavailable"})
                )
    _log_hopeless("recordings (episodes marked replay_unavailable)", hopeless)
    return queued


@lost_work_finder
def requeue_exports_unfinished(*, grace_s: float, max_attempts: int) -> int:
    """Exports `queued` or `running` with no live build job. One that had `max_attempts`
    jobs is marked failed, so its page stops saying it is on the way."""
    from teleop.tasks import build_export_job

    def hopeless(export_id, attempts: int) -> None:
        log.error("export %s: %d build jobs never finished; failed", export_id, attempts)

    return requeue_unfinished_builds(
        DatasetExport,
        build_export_job,
        DatasetExport.objects.all(),
        grace_s=grace_s,
        max_attempts=max_attempts,
        on_hopeless=hopeless,
    )
