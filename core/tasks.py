"""Background jobs of core (Django's task framework, database backend). Jobs take ids and
are idempotent (docs/jobs.md)."""

from django_tasks import task

from core.services import data_requests, erasure


@task()
def build_access_archive_job(request_id: str) -> str:
    return data_requests.build_archive(request_id=request_id).state


@task()
def delete_stored_files_job(*keys: str) -> int:
    """After an erasure committed: the access archives it deleted (core/services/erasure.py)."""
    return erasure.delete_stored_files(keys)
