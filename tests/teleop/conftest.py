import pytest

from core import services as core_services
from teleop import services


@pytest.fixture(autouse=True)
def _staging_dir(settings, tmp_path):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"


@pytest.fixture
def session(world):
    """An open teleop session on team a's robot, for its public task's first version."""
    operator = core_services.create_operator(actor=world.a.admin, team=world.a.team, code="OP-TEST")
    return services.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )
