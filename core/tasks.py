"""Background jobs of core (Django's task framework, database backend). Jobs take ids and
are idempotent (docs/jobs.md)."""

from django_tasks import task

from core.services import data_requests


@task()
def build_access_archive_job(request_id: str) -> str:
    return data_requests.build_archive(request_id=request_id).state
