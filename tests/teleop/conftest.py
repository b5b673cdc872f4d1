import pytest

from core.services import operators
from teleop.services import sessions


@pytest.fixture(autouse=True)
def _staging_dir(settings, tmp_path):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"


@pytest.fixture
def session(world):
    """An open teleop session on team a's robot, for its public task's first version."""
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team, code="OP-TEST")
    return sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )


@pytest.fixture
def immediate_jobs(settings):
    """Jobs run as their transaction commits. The database worker itself closes connections
    between jobs, which a test inside one transaction cannot allow; it runs in the
    transactional tests."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
