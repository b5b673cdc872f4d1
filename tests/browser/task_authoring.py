"""Steps a researcher takes in the browser to write a task in the criteria editor, shared by
the editor's test and the authoring journey: sign in, fill /tasks/new, write stages, failure
codes and automatic checks, dry-run the draft on a recorded episode, save.

The task they write, "Lift the cube": stages grasp (0.4) and lift (0.6), failure code
`dropped`, checks `lifted` (final qpos[0] > 0.5, the success check) and `grasp-in-time`
(stage grasp by 0.8 s). On the episode of `recorded_episode` (grasp reached at 1.0 s) the
dry run says `lifted` passed and `grasp-in-time` failed with the value 1."""

import hashlib
import re

from playwright.sync_api import expect

from core.services import operators
from teleop import storage
from teleop.services import sessions
from tests.teleop.recordings import ready_episode_row, record_episode

#: Waits on a page that talks to the server (validation, dry run, saving): generous, so a
#: loaded machine is slow but not red.
WAIT_MS = 30_000


def recorded_episode(team, tmp_path, operator_code="OP-EDIT"):
    """A ready episode of `team` (a tests.core.factories.TeamWorld) with its file stored (2 s
    at 200 Hz; stages reach at 0.5 s and grasp at 1.0 s), in a session on `team.robot`."""
    operator = operators.create_operator(actor=team.admin, team=team.team, code=operator_code)
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


def sign_in(page, base_url: str, user, password: str = "pw") -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible(timeout=WAIT_MS)


def at(page, path: str):
    """The editor's control for a JSON pointer into the draft (e.g. /stages/0/weight)."""
    return page.locator(f'[data-path="{path}"]')


def open_catalog(page, name: str) -> None:
    """Follow a link of the main navigation's Catalog menu (Tasks, Conditions, Policies...)."""
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_text("Catalog", exact=True).click()
    nav.get_by_role("link", name=name, exact=True).click()


def open_new_task(page) -> None:
    open_catalog(page, "Tasks")
    page.get_by_role("link", name="New task").click()
    expect(page.locator("#criteria-editor")).to_be_visible(timeout=WAIT_MS)


def fill_task_fields(page, embodiment_name: str, slug: str = "lift-cube") -> None:
    page.fill("#id_slug", slug)
    page.fill("#id_name", "Lift the cube")
    page.fill("#id_instruction", "Lift the red cube and hold it above the table.")
    page.fill("#id_time_limit_s", "30")
    page.get_by_label(embodiment_name, exact=True).check()
    at(page, "/success/description").fill("The cube is held 5 cm above the table.")


def add_stage(page, index: int, stage_id: str, description: str, weight: str) -> None:
    page.locator("#criteria-editor").get_by_role("button", name="Add a stage").click()
    at(page, f"/stages/{index}/id").fill(stage_id)
    at(page, f"/stages/{index}/description").fill(description)
    at(page, f"/stages/{index}/weight").fill(weight)


def add_failure_code(page, index: int, code: str, description: str) -> None:
    page.locator("#criteria-editor").get_by_role("button", name="Add a failure code").click()
    at(page, f"/failure_codes/{index}/code").fill(code)
    at(page, f"/failure_codes/{index}/description").fill(description)


def add_lift_cube_checks(page) -> None:
    """Checks 0 and 1: `lifted` (final_value) and `grasp-in-time` (stage_by_time); `lifted`
    decides success."""
    editor = page.locator("#criteria-editor")
    editor.get_by_role("button", name="Add an automatic check").click()
    at(page, "/checks/0/type").select_option("final_value")
    at(page, "/checks/0/id").fill("lifted")
    at(page, "/checks/0/signal").fill("observations/qpos")
    at(page, "/checks/0/index").fill("0")
    at(page, "/checks/0/op").select_option(">")
    at(page, "/checks/0/threshold").fill("0.5")
    editor.get_by_role("button", name="Add an automatic check").click()
    at(page, "/checks/1/type").select_option("stage_by_time")
    at(page, "/checks/1/id").fill("grasp-in-time")
    at(page, "/checks/1/stage").fill("grasp")
    at(page, "/checks/1/by_s").fill("0.8")
    at(page, "/success/check").select_option("lifted")


def add_lift_cube_stages(page) -> None:
    add_stage(page, 0, "grasp", "The gripper holds the cube.", "0.4")
    add_stage(page, 1, "lift", "The cube is 5 cm above the table.", "0.6")


def expect_valid_criteria(page) -> None:
    expect(page.locator("#criteria-status")).to_have_text(
        "✓ The criteria are valid.", timeout=WAIT_MS
    )
    expect(page.locator("#criteria-editor .ce-problems")).to_have_count(0)


def write_lift_cube_task(page, embodiment_name: str, slug: str = "lift-cube") -> None:
    """On /tasks/new: the task's fields and its criteria, valid (the module's docstring)."""
    fill_task_fields(page, embodiment_name, slug)
    add_lift_cube_stages(page)
    add_failure_code(page, 0, "dropped", "The cube fell after the grasp.")
    add_lift_cube_checks(page)
    expect_valid_criteria(page)


def dry_run(page, episode) -> None:
    """Dry-run the draft on `episode` and read each check's verdict."""
    episodes = page.locator("#dry-run-episode")
    expect(episodes.locator(f'option[value="{episode.pk}"]')).to_have_count(1, timeout=WAIT_MS)
    episodes.select_option(str(episode.pk))
    page.get_by_role("button", name="Dry run").click()
    results = page.locator("#dry-run-results")
    expect(results.locator('tr[data-check="lifted"] .badge')).to_have_text(
        "passed", timeout=WAIT_MS
    )
    expect(results.locator('tr[data-check="grasp-in-time"] .badge')).to_have_text("failed")
    expect(results.locator('tr[data-check="grasp-in-time"] td.num')).to_have_text("1")
    expect(results).to_contain_text("Success on this episode: success.")


def create_task(page) -> None:
    """Save the new task; its page shows version 1."""
    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]{36}/$"), timeout=WAIT_MS)
    expect(page.get_by_role("heading", name="Version 1")).to_be_visible()
