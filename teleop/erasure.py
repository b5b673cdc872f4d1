"""The recording app's part of erasing an operator (core/services/erasure.py; docs/privacy.md,
"Erasure").

- Recordings (`.rrd`) show each episode's current label with who gave it: those that named
  the person are rebuilt, under a new key, and the old object is deleted, so a signed link
  handed out before the erasure answers 404 instead of the name. Until the rebuild the
  episode has no recording (the page says so).
- The team's `erased_episodes` policy: `keep` leaves the operator's episodes under the
  pseudonym (their files hold no name: the operator is stored by pseudonym); `delete`
  deletes them with their labels and uploads, drops them from dataset view versions, unlinks
  the evaluation trials that pointed at them (the trials keep their outcomes), marks the
  exports that held them stale, and deletes their files after commit.

Exports never held names (labels go in without their labeler; episodes under the pseudonym),
so under `keep` they stay as built.
"""

from __future__ import annotations

from django.db import models
from django.dispatch import receiver

from core import job_queue
from core.services.erasure import Erasure, Step, operator_erasing
from teleop import storage
from teleop.models import DatasetExport, DatasetViewVersion, Episode, Label, UploadPart


@receiver(operator_erasing, dispatch_uid="teleop.erasure")
def erase_recordings_and_episodes(sender, erasure: Erasure, **kwargs) -> list[Step]:
    steps: list[Step] = []
    episodes = Episode.objects.filter(operator=erasure.operator)
    deleted_ids = list(episodes.values_list("pk", flat=True)) if erasure.delete_episodes else []
    if deleted_ids:
        steps += _delete_episodes(erasure, deleted_ids)
    elif episodes.exists():
        steps.append(
            Step(
                "episodes recorded under the pseudonym",
                episodes.count(),
                "kept under the pseudonym (the team's policy)",
            )
        )
    steps += _rebuild_named_recordings(erasure, exclude=deleted_ids)
    return steps


def _rebuild_named_recordings(erasure: Erasure, *, exclude) -> list[Step]:
    labelled_by_person = models.Q(labeler_label=erasure.old_label) if erasure.old_label else None
    if erasure.user_id is not None:
        by_account = models.Q(labeler_id=erasure.user_id)
        labelled_by_person = (
            by_account if labelled_by_person is None else labelled_by_person | by_account
        )
    if labelled_by_person is None:
        return []
    named = (
        Episode.objects.filter(
            pk__in=Label.objects.filter(labelled_by_person, superseded_at=None).values("episode_id")
        )
        .exclude(pk__in=exclude)
        .exclude(rerun_file="")
    )
    rows = list(named.values_list("pk", "rerun_file"))
    if not erasure.dry_run:
        Episode.objects.filter(pk__in=[pk for pk, _ in rows]).update(rerun_file="")
        for pk, old_key in rows:
            job_queue.enqueue_on_commit("teleop.tasks.replace_recording_job", str(pk), old_key)
    if not rows:
        return []
    return [
        Step(
            "replay recordings (.rrd) showing the person's labels",
            len(rows),
            "rebuilt under a new key; the old file and every link to it deleted",
        )
    ]


def _delete_episodes(erasure: Erasure, ids) -> list[Step]:
    steps = [Step("episodes recorded under the pseudonym", len(ids), "deleted (the team's policy)")]
    wanted = {str(pk) for pk in ids}
    versions = [
        v
        for v in DatasetViewVersion.objects.filter(view__team_id=erasure.operator.team_id)
        if wanted.intersection(v.episode_ids)
    ]
    exports = DatasetExport.objects.filter(view_version__in=versions).exclude(
        state__in=[DatasetExport.State.FAILED, DatasetExport.State.STALE]
    )
    steps.append(Step("dataset view versions holding them", len(versions), "leave them out"))
    steps.append(
        Step("dataset exports holding them", exports.count(), "marked stale; files deleted")
    )
    # Trials and trial reports that attached one keep their outcome, without the episode.
    unlinked = 0
    for relation in _protecting_relations():
        rows = relation.related_model.objects.filter(**{f"{relation.field.name}__in": ids})
        name = relation.field.name
        unlinked += rows.count() if erasure.dry_run else rows.update(**{name: None})
    steps.append(
        Step(
            "evaluation trials and reports that attached one",
            unlinked,
            "keep their outcome, without the episode",
        )
    )
    if erasure.dry_run:
        return [s for s in steps if s.count]
    erased = Episode.objects.filter(pk__in=ids)
    keys = set(erased.exclude(rerun_file="").values_list("rerun_file", flat=True))
    keys |= set(erased.exclude(file="").values_list("file", flat=True))
    keys |= set(UploadPart.objects.filter(upload__episode_id__in=ids).values_list("key", flat=True))
    keys |= set(exports.exclude(file="").values_list("file", flat=True))
    exports.update(state=DatasetExport.State.STALE, file="")
    for version in versions:
        version.episode_ids = [e for e in version.episode_ids if e not in wanted]
        version.includes = [e for e in version.includes if e not in wanted]
        version.excludes = [e for e in version.excludes if e not in wanted]
        version.trims = {k: v for k, v in version.trims.items() if k not in wanted}
        version.episode_metadata = {
            k: v for k, v in version.episode_metadata.items() if k not in wanted
        }
        version.save(
            update_fields=["episode_ids", "includes", "excludes", "trims", "episode_metadata"]
        )
    erased.delete()
    if keys:
        job_queue.enqueue_on_commit("teleop.tasks.delete_files_job", *sorted(keys))
    return [s for s in steps if s.count]


def _protecting_relations():
    """Nullable links to episodes that would refuse their deletion (hidden ones included:
    trial reports link theirs with `related_name="+"`)."""
    for relation in Episode._meta.get_fields(include_hidden=True):
        if relation.auto_created and not relation.concrete and relation.is_relation:
            if getattr(relation, "on_delete", None) is models.PROTECT and relation.field.null:
                yield relation


def delete_files(keys) -> int:
    """Delete stored files left by erased episodes and exports; an episode file another
    episode still holds stays (episode files are stored by content). Returns how many were
    deleted."""
    held = set(Episode.objects.filter(file__in=list(keys)).values_list("file", flat=True))
    deleted = 0
    for key in keys:
        if key not in held:
            storage.delete_stored_file(key)
            deleted += 1
    return deleted
