"""Background jobs of the recording app (Django's task framework, database backend).

Jobs take ids, not objects, and are idempotent: a job run twice, or re-queued after a worker
died, leaves the same result.
"""

from django_tasks import task

from teleop import datasets, erasure
from teleop.services import processing, recordings


@task()
def process_episode_job(episode_id: str) -> str:
    episode = processing.process_episode(episode_id=episode_id)
    return episode.state


@task()
def build_export_job(export_id: str) -> str:
    return datasets.build_export(export_id=export_id).state


@task()
def build_recording_job(episode_id: str) -> str:
    return recordings.build_episode_recording(episode_id=episode_id).rerun_version


@task()
def replace_recording_job(episode_id: str, old_key: str) -> str:
    """After an erasure (teleop/erasure.py): the old recording deleted, a new one built."""
    return recordings.replace_recording(episode_id=episode_id, old_key=old_key).rerun_file


@task()
def delete_files_job(*keys: str) -> int:
    """After an erasure deleted episodes and exports (teleop/erasure.py): their stored files
    deleted, except an episode file another episode still holds (files are stored by
    content)."""
    return erasure.delete_files(keys)
