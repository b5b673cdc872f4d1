"""A researcher who has never seen the criteria JSON writes a task in the editor: two stages, a
failure code and two automatic checks; sees a problem beside the field while the weights do
not add up; dry-runs the draft on a recorded episode and reads each check's verdict; saves,
and finds the version on the task's page."""

import hashlib
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.models import Task
from core.services import operators
from teleop import storage
from teleop.services import sessions
from tests.browser.watch import watch
from tests.core import factories
from tests.teleop.recordings import ready_episode_row, record_episode

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "criteria-editor.png"


def _recorded_episode(team, tmp_path):
    """A ready episode of `team` with its file stored (2 s at 200 Hz; stages reach at 0.5 s
    and grasp at 1.0 s)."""
    operator = operators.create_operator(actor=team.admin, team=team.team, code="OP-EDIT")
    session = sessions.open_session(
        actor=team.admin,
        robot=team.robot,
        task_version=team.task.versions.get(),
        operator_code=operator.code,
    )
    path = record_episode(tmp_path / "e.h5", seconds=2.0)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    episode = ready_episode_row(session)
    episode.file = storage.store_episode_file(path, sha256)
    episode.sha256, episode.duration_s = sha256, 2.0
    episode.save(update_fields=["file", "sha256", "duration_s"])
    return episode


def _at(page, path):
    return page.locator(f'[data-path="{path}"]')


def test_researcher_writes_dry_runs_and_saves_criteria_in_the_editor(
    live_server, browser, settings, tmp_path
):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    world = factories.build_world()
    team = world.a
    episode = _recorded_episode(team, tmp_path)
    team.researcher.set_password("pw")
    team.researcher.save()

    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    seen = watch(page, live_server.url.split("//", 1)[1])
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", team.researcher.username)
    page.fill("#id_password", "pw")
    page.click("button[type=submit]")
    page.get_by_role("link", name="Tasks").click()
    page.get_by_role("link", name="New task").click()

    page.fill("#id_slug", "lift-cube")
    page.fill("#id_name", "Lift the cube")
    page.fill("#id_instruction", "Lift the red cube and hold it above the table.")
    page.fill("#id_time_limit_s", "30")
    page.get_by_label(team.embodiment.name, exact=True).check()

    editor = page.locator("#criteria-editor")
    expect(editor).to_be_visible()
    _at(page, "/success/description").fill("The cube is held 5 cm above the table.")

    editor.get_by_role("button", name="Add a stage").click()
    _at(page, "/stages/0/id").fill("grasp")
    _at(page, "/stages/0/description").fill("The gripper holds the cube.")
    _at(page, "/stages/0/weight").fill("0.4")
    # One stage of weight 0.4: the server's own message, beside the stages.
    expect(_at(page, "/stages").locator(".ce-problems")).to_contain_text("stage weights sum to 0.4")
    editor.get_by_role("button", name="Add a stage").click()
    _at(page, "/stages/1/id").fill("lift")
    _at(page, "/stages/1/description").fill("The cube is 5 cm above the table.")
    _at(page, "/stages/1/weight").fill("0.6")

    editor.get_by_role("button", name="Add a failure code").click()
    _at(page, "/failure_codes/0/code").fill("dropped")
    _at(page, "/failure_codes/0/description").fill("The cube fell after the grasp.")

    editor.get_by_role("button", name="Add an automatic check").click()
    _at(page, "/checks/0/type").select_option("final_value")
    _at(page, "/checks/0/id").fill("lifted")
    _at(page, "/checks/0/signal").fill("observations/qpos")
    _at(page, "/checks/0/index").fill("0")
    _at(page, "/checks/0/op").select_option(">")
    _at(page, "/checks/0/threshold").fill("0.5")
    editor.get_by_role("button", name="Add an automatic check").click()
    _at(page, "/checks/1/type").select_option("stage_by_time")
    _at(page, "/checks/1/id").fill("grasp-in-time")
    _at(page, "/checks/1/stage").fill("grasp")
    _at(page, "/checks/1/by_s").fill("0.8")
    _at(page, "/success/check").select_option("lifted")

    expect(page.locator("#criteria-status")).to_have_text("✓ The criteria are valid.")
    expect(editor.locator(".ce-problems")).to_have_count(0)
    draft = json.loads(page.locator("#id_criteria").input_value())
    assert [s["id"] for s in draft["stages"]] == ["grasp", "lift"]
    assert draft["success"]["check"] == "lifted"

    # The JSON is the same draft: an edit there shows in the editor.
    edited = {
        **draft,
        "failure_codes": [
            *draft["failure_codes"],
            {"code": "collision", "description": "Hit the bin."},
        ],
    }
    page.locator("#id_criteria").fill(json.dumps(edited, indent=2))
    expect(_at(page, "/failure_codes/1/code")).to_have_value("collision")
    editor.get_by_role("button", name="Remove failure code 2").click()
    expect(_at(page, "/failure_codes/1/code")).to_have_count(0)

    episodes = page.locator("#dry-run-episode")
    expect(episodes.locator(f'option[value="{episode.pk}"]')).to_have_count(1)
    episodes.select_option(str(episode.pk))
    page.get_by_role("button", name="Dry run").click()
    results = page.locator("#dry-run-results")
    expect(results.locator('tr[data-check="lifted"] .badge')).to_have_text("passed")
    expect(results.locator('tr[data-check="grasp-in-time"] .badge')).to_have_text("failed")
    expect(results.locator('tr[data-check="grasp-in-time"] td.num')).to_have_text("1")
    expect(results).to_contain_text("Success on this episode: success.")

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.locator(".criteria-card").screenshot(path=str(SCREENSHOT))

    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}/$"))
    expect(page.get_by_role("heading", name="Version 1")).to_be_visible()
    version = Task.objects.get(slug="lift-cube").versions.get()
    assert [s["id"] for s in version.criteria["stages"]] == ["grasp", "lift"]
    assert [c["code"] for c in version.criteria["failure_codes"]] == ["dropped"]
    assert [c["type"] for c in version.criteria["checks"]] == ["final_value", "stage_by_time"]
    assert seen.errors == [] and seen.outside == []
