"""A researcher who has never seen the criteria JSON writes a task in the editor: two stages, a
failure code and two automatic checks; sees a problem beside the field while the weights do
not add up; dry-runs the draft on a recorded episode and reads each check's verdict; saves,
and finds the version on the task's page. (The steps: tests/browser/task_authoring.py.)"""

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from core.models import Task
from tests.browser.task_authoring import (
    add_failure_code,
    add_lift_cube_checks,
    add_stage,
    at,
    create_task,
    dry_run,
    expect_valid_criteria,
    fill_task_fields,
    open_new_task,
    recorded_episode,
    sign_in,
)
from tests.browser.watch import watch
from tests.core import factories

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
# Written under var/ (copy to docs/screenshots/ by hand when the editor changes its look).
SCREENSHOT = Path(__file__).resolve().parents[2] / "var" / "screenshots" / "criteria-editor.png"


def test_researcher_writes_dry_runs_and_saves_criteria_in_the_editor(
    live_server, browser, settings, tmp_path
):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    world = factories.build_world()
    team = world.a
    episode = recorded_episode(team, tmp_path)
    team.researcher.set_password("pw")
    team.researcher.save()

    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    seen = watch(page, live_server.url.split("//", 1)[1])
    sign_in(page, live_server.url, team.researcher)
    open_new_task(page)
    fill_task_fields(page, team.embodiment.name)

    add_stage(page, 0, "grasp", "The gripper holds the cube.", "0.4")
    # One stage of weight 0.4: the server's own message, beside the stages.
    expect(at(page, "/stages").locator(".ce-problems")).to_contain_text("stage weights sum to 0.4")
    add_stage(page, 1, "lift", "The cube is 5 cm above the table.", "0.6")
    add_failure_code(page, 0, "dropped", "The cube fell after the grasp.")
    add_lift_cube_checks(page)

    expect_valid_criteria(page)
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
    expect(at(page, "/failure_codes/1/code")).to_have_value("collision")
    editor = page.locator("#criteria-editor")
    editor.get_by_role("button", name="Remove failure code 2").click()
    expect(at(page, "/failure_codes/1/code")).to_have_count(0)

    dry_run(page, episode)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.locator(".criteria-card").screenshot(path=str(SCREENSHOT))

    create_task(page)
    version = Task.objects.get(slug="lift-cube").versions.get()
    assert [s["id"] for s in version.criteria["stages"]] == ["grasp", "lift"]
    assert [c["code"] for c in version.criteria["failure_codes"]] == ["dropped"]
    assert [c["type"] for c in version.criteria["checks"]] == ["final_value", "stage_by_time"]
    assert seen.errors == [] and seen.outside == []
