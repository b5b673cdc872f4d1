"""Rerun recordings of episodes (what the replay viewer plays), built by a job."""

from __future__ import annotations

import secrets
from pathlib import Path

from core import job_queue
from teleop import storage
from teleop.models import Episode, Label

# --- Rerun recordings -----------------------------------------------------------------------


def recording_key(episode: Episode, token: str = "") -> str:
    """`recordings/<episode id>.rrd`, or with `token` a key no earlier link can name."""
    return f"recordings/{episode.pk}-{token}.rrd" if token else f"recordings/{episode.pk}.rrd"


def build_episode_recording(*, episode_id, new_key: bool = False) -> Episode:
    """Build (or rebuild) a ready episode's `.rrd` from its HDF5 file, with its current label
    and quality flags on the timeline; record the Rerun version, size and build time.
    Idempotent: the recording is replaced as a whole. `new_key` stores it under a key never
    used before (after an erasure: signed links to the old object cannot reach the new one);
    a recording stored under another key before is deleted once the new one is recorded."""
    import tempfile

    from django.core.files import File
    from django.core.files.storage import default_storage

    from proving_ground import replay as rerun_export

    episode = Episode.objects.get(pk=episode_id)
    if episode.state != Episode.State.READY or not episode.file:
        return episode
    labels = [
        {
            "outcome": label.outcome,
            "stages_reached": label.stages_reached,
            "failure_codes": label.failure_codes,
            "notes": label.notes,
            "labeler": label.labeler_label,
            "created_at": label.created_at.isoformat(),
        }
        for label in Label.objects.filter(episode=episode, superseded_at=None)
    ]
    with tempfile.TemporaryDirectory(prefix="pg-rrd-") as tmp:
        out = Path(tmp) / "episode.rrd"
        with storage.local_episode_file(episode.file) as path:
            # Not fsynced: the file is copied into storage right away (that copy is durable).
            stats = rerun_export.build_recording(
                path, out, labels=labels, quality_flags=episode.quality_flags, durable=False
            )
        key = recording_key(episode, secrets.token_hex(8) if new_key else "")
        if default_storage.exists(key):
            default_storage.delete(key)
        with open(out, "rb") as f:
            stored = default_storage.save(key, File(f))
    Episode.objects.filter(pk=episode.pk).update(
        rerun_file=stored,
        rerun_version=stats.rerun_version,
        rerun_size_bytes=stats.size_bytes,
        rerun_build_s=stats.seconds,
    )
    if episode.rerun_file and episode.rerun_file != stored:
        storage.delete_stored_file(episode.rerun_file)
    episode.refresh_from_db()
    return episode


def replace_recording(*, episode_id, old_key: str) -> Episode:
    """After an erasure: delete the recording stored under `old_key` (it showed a person's
    name; every signed link to it now answers 404), then build the episode's recording
    again under a new key."""
    storage.delete_stored_file(old_key)
    return build_episode_recording(episode_id=episode_id, new_key=True)


def enqueue_recording(episode_id) -> None:
    job_queue.enqueue_on_commit("teleop.tasks.build_recording_job", str(episode_id))
