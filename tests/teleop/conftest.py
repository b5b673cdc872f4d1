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


@pytest.fixture
def checked_session(world):
    """An open session on team a's robot for a task whose success the automatic check
    `lifted` decides."""
    from tests.core.factories import PICK_CRITERIA, make_task

    criteria = {
        **PICK_CRITERIA,
        "success": {**PICK_CRITERIA["success"], "check": "lifted"},
        "checks": [*PICK_CRITERIA["checks"], {"id": "lifted", "type": "finite"}],
    }
    task = make_task(world.a.team, world.a.admin, world.a.embodiment, criteria=criteria)
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team, code="OP-CHK")
    return sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=task.versions.get(),
        operator_code=operator.code,
    )
