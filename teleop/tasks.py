"""Background jobs of the recording app (Django's task framework, database backend).

Jobs take ids, not objects, and are idempotent: a job run twice, or re-queued after a worker
died, leaves the same result.
"""

from django_tasks import task

from teleop import datasets
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
