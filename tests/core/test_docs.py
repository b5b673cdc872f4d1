"""The examples in the docs run against a live server."""

import re
from pathlib import Path

from core.services import robots
from tests.core import factories

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), re.S)


def test_api_guide_robot_example_runs_against_a_live_server(transactional_db, live_server, capsys):
    world = factories.build_world()
    _, key = robots.issue_api_key(actor=world.a.admin, robot=world.a.robot)
    (example,) = _python_blocks(ROOT / "docs" / "api.md")
    example = example.replace("http://127.0.0.1:8000", live_server.url)
    exec(compile(example, "docs/api.md", "exec"), {"KEY": key})  # our own doc, not input
    printed = capsys.readouterr().out
    assert world.a.task.slug in printed
    world.a.robot.refresh_from_db()
    assert world.a.robot.software_version == "arm 1.2"
