"""A researcher goes from nothing to a running blinded campaign in pages only: writes a task in
the criteria editor (two stages, a failure code, two automatic checks), dry-runs it on a
recorded episode and saves it; adds a condition; makes a collection protocol for the new
version with a target under that condition; registers two policies; defines a benchmark with
the new task version x condition cell and publishes it; plans a blinded campaign on it (the
planner shows its trials, duration and power), creates it and starts it after the
confirmation. The campaign's operator, signed in elsewhere, sees aliases and no policy name."""

import re

import pytest
from playwright.sync_api import expect

from core.models import Task
from core.services import operators
from evaluation.models import Campaign, Trial
from teleop.models import CollectionProtocol
from tests.browser.task_authoring import (
    WAIT_MS,
    create_task,
    dry_run,
    open_catalog,
    open_new_task,
    recorded_episode,
    sign_in,
    write_lift_cube_task,
)
from tests.browser.watch import watch
from tests.core import factories

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
POLICIES = ("act-lift", "diffusion-lift")
SHA256 = {"act-lift": "a" * 64, "diffusion-lift": "b" * 64}
TRIALS_PER_CELL = 4
#: The first power figure for a difference runs exact tests: 8 s on a loaded two-core
#: machine, 18 s on a busier one (evaluation/planner.py).
POWER_WAIT_MS = 120_000


def _create_condition(page) -> None:
    open_catalog(page, "Conditions")
    page.get_by_label("Factor").fill("lighting")
    page.get_by_label("Level").fill("dim")
    page.get_by_label("Reset instructions").fill("Ceiling lights off; desk lamp on.")
    page.get_by_role("button", name="Create condition").click()
    expect(page.get_by_text("Condition 'lighting: dim' created.")).to_be_visible(timeout=WAIT_MS)


def _create_protocol(page) -> None:
    """From the task's page: a protocol for its version 1, 20 episodes under dim lighting."""
    open_catalog(page, "Tasks")
    page.get_by_role("link", name="Lift the cube").click()
    page.get_by_role("link", name="New protocol for v1").click()
    expect(page.locator("#id_task_version option:checked")).to_have_text(re.compile("lift-cube"))
    page.get_by_label("Name", exact=True).fill("Lift the cube, dim")
    page.get_by_label("Condition").first.select_option(label="lighting: dim")
    page.get_by_label("Target episodes").first.fill("20")
    page.get_by_role("button", name="Create protocol").click()
    expect(page.get_by_text("Protocol 'Lift the cube, dim' created.")).to_be_visible(
        timeout=WAIT_MS
    )


def _register_policy(page, name: str) -> None:
    page.get_by_role("link", name="Evaluation", exact=True).click()
    page.get_by_role("link", name="Policies", exact=True).click()
    page.get_by_role("link", name="New policy").first.click()  # a button, and in the text when none
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Checkpoint SHA-256").fill(SHA256[name])
    page.get_by_role("button", name="Register the policy").click()
    expect(page.get_by_text(f"Policy {name} registered with v1.")).to_be_visible(timeout=WAIT_MS)


def _create_and_publish_benchmark(page) -> None:
    """From the task's page: the new version x dim lighting, published."""
    open_catalog(page, "Tasks")
    page.get_by_role("link", name="Lift the cube").click()
    page.get_by_role("link", name="New benchmark with v1").click()
    expect(page.get_by_label("Lift the cube v1 (30 s)")).to_be_checked()
    page.get_by_label("lighting: dim").check()
    expect(page.locator("[data-cell-grid] td[data-cell]", has_text="●")).to_have_count(1)
    page.get_by_label("Name", exact=True).fill("Lifting in the dark")
    page.get_by_label("Trials per cell").fill(str(TRIALS_PER_CELL))
    page.get_by_role("button", name="Save the benchmark").click()
    expect(page.get_by_role("heading", name=re.compile("Lifting in the dark"))).to_be_visible(
        timeout=WAIT_MS
    )
    page.get_by_role("link", name="Publish…").click()
    page.get_by_role("button", name="Publish the benchmark").click()
    expect(page.get_by_text("its design is frozen")).to_be_visible(timeout=WAIT_MS)


def _plan_campaign(page, robot, operator_code: str) -> None:
    """From the benchmark's page: two policies, one robot, one operator, blinded; the planner's
    figures, then the draft."""
    page.get_by_role("link", name="Plan a campaign on it").click()
    expect(page.locator("#id_benchmark option:checked")).to_contain_text("Lifting in the dark")
    for name in POLICIES:
        page.get_by_label(f"{name} v1").check()
    page.get_by_label(f"{robot.name} ({robot.embodiment.name})").check()
    page.get_by_label(operator_code, exact=True).check()
    expect(page.get_by_label("Blinded")).to_be_checked()
    page.get_by_label("Name", exact=True).fill("Lift, blinded")

    # 2 policies x 1 cell x 4 trials; (30 s limit + 60 s reset) x 8 = 12 min, shown at once.
    # The power comes second, from the server's exact tests.
    figures = page.locator("#plan-figures")
    trials = 2 * TRIALS_PER_CELL
    expect(figures.locator('[data-figure="trials"]')).to_have_text(str(trials), timeout=WAIT_MS)
    expect(figures.locator('[data-figure="duration"]')).to_have_text("12 min")
    expect(figures.locator('[data-figure="power"]')).to_have_text(
        re.compile(r"^\d+(\.\d)?%$"), timeout=POWER_WAIT_MS
    )
    expect(figures.locator('[data-figure="needed"]')).to_contain_text("trials per policy")
    underpowered = figures.locator("[data-underpowered]")
    expect(underpowered).to_contain_text("cannot reliably detect")
    expect(underpowered).to_contain_text(
        f"The benchmark fixes its trials per cell ({TRIALS_PER_CELL})"
    )
    page.get_by_role("button", name="Create the campaign").click()
    expect(page.get_by_text("Campaign Lift, blinded planned.")).to_be_visible(timeout=WAIT_MS)


def test_researcher_goes_from_a_new_task_to_a_running_blinded_campaign_in_pages(
    live_server, browser, settings, tmp_path
):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    world = factories.build_world()
    team = world.a
    episode = recorded_episode(team, tmp_path)
    operators.create_operator(
        actor=team.admin, team=team.team, code="OP-JOURNEY", user=team.operator
    )
    for user in (team.researcher, team.operator):
        user.set_password("pw")
        user.save()
    host = live_server.url.split("//", 1)[1]

    page = browser.new_page(viewport={"width": 1360, "height": 1000})
    seen = watch(page, host)
    sign_in(page, live_server.url, team.researcher)

    open_new_task(page)
    write_lift_cube_task(page, team.embodiment.name)
    dry_run(page, episode)
    create_task(page)
    version = Task.objects.get(slug="lift-cube").versions.get()

    _create_condition(page)
    _create_protocol(page)
    protocol = CollectionProtocol.objects.get(name="Lift the cube, dim")
    assert protocol.task_version == version
    assert [(t.condition.level, t.target_count) for t in protocol.targets.all()] == [("dim", 20)]

    for name in POLICIES:
        _register_policy(page, name)
    _create_and_publish_benchmark(page)
    _plan_campaign(page, team.robot, "OP-JOURNEY")

    expect(page.get_by_text("Draft", exact=True)).to_be_visible()
    page.get_by_role("link", name="Start…").click()
    page.get_by_role("button", name="Start the campaign").click()
    expect(page.get_by_text("Campaign started")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_role("heading", name=re.compile("Lift, blinded"))).to_contain_text("Running")

    campaign = Campaign.objects.get(name="Lift, blinded")
    assert campaign.status == Campaign.Status.RUNNING and campaign.blinded
    assert sorted(v.policy.name for v in campaign.policy_versions.all()) == list(POLICIES)
    assert [(c.task_version, c.condition.level) for c in campaign.cells.all()] == [(version, "dim")]
    trials = campaign.trials.all()
    assert trials.count() == 2 * TRIALS_PER_CELL
    assert set(trials.values_list("state", flat=True)) == {Trial.State.SCHEDULED}
    assert [o.code for o in campaign.operators.all()] == ["OP-JOURNEY"]

    # The operator, in a browser of their own, runs the first trial and sees only its alias.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    operator_page = context.new_page()
    operator_seen = watch(operator_page, host)
    sign_in(operator_page, live_server.url, team.operator)
    operator_page.get_by_role("link", name="Lift, blinded").click()
    operator_page.get_by_role("button", name=f"Start the next trial on {team.robot.name}").click()
    held = operator_page.locator("[data-trial-policy]")
    expect(held).to_have_text(re.compile(r"\S"), timeout=WAIT_MS)
    trial = campaign.trials.get(state=Trial.State.ASSIGNED)
    expect(held).to_have_text(trial.alias)
    content = operator_page.content()
    assert [name for name in POLICIES if name in content] == []
    context.close()

    assert seen.errors == [] and seen.outside == []
    assert operator_seen.errors == [] and operator_seen.outside == []
