"""An unbroken 20,000-character instruction (and a task name of 120 characters without a
space) wraps inside its box: the episode page, the session console and the campaign page stay
as wide as the window, and the label buttons stay on screen."""

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from core.models import Visibility
from core.services import conditions, operators
from teleop.services import sessions
from tests.browser.watch import watch
from tests.core import factories
from tests.evaluation.factories import make_benchmark, make_campaign, make_policy_version
from tests.teleop.recordings import ready_episode_row

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
INSTRUCTION = "x" * 20_000
TASK_NAME = "N" * 120
VIEWPORT = {"width": 1280, "height": 800}
TOLERANCE_PX = 2


def _world():
    world = factories.build_world()
    a = world.a
    task = factories.make_task(
        a.team,
        a.admin,
        a.embodiment,
        name=TASK_NAME,
        instruction=INSTRUCTION,
        visibility=Visibility.PUBLIC,
    )
    operators.create_operator(actor=a.admin, team=a.team, code="OP-LONG1", user=a.operator)
    a.operator.set_password("pw")
    a.operator.save()
    session = sessions.open_session(
        actor=a.operator,
        robot=a.robot,
        task_version=task.versions.get(),
        operator_code="OP-LONG1",
    )
    episode = ready_episode_row(session)
    condition = conditions.create_condition(
        actor=a.admin,
        team=a.team,
        factor="lighting",
        level="dim",
        reset_instructions="y" * 5_000,
    )
    benchmark = make_benchmark(
        a, task_versions=[task.versions.get()], conditions=[condition], trials_per_cell=1
    )
    campaign = make_campaign(
        a,
        policy_versions=[make_policy_version(a, name=f"policy-{i}") for i in range(2)],
        benchmark=benchmark,
    )
    return a, session, episode, campaign


def _fits(page):
    """The page is no wider than the window: nothing pushes it sideways."""
    page.wait_for_load_state("load")
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]"
    )
    assert max(widths[:2]) <= widths[2] + TOLERANCE_PX, (page.url, widths)


def _on_screen(locator, page):
    """Visible and inside the window horizontally (scrolled to, vertically)."""
    expect(locator).to_be_visible()
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0
    assert box["x"] + box["width"] <= page.viewport_size["width"], box


def test_a_20000_character_instruction_wraps_on_every_page(live_server, browser):
    team, session, episode, campaign = _world()
    host = urlsplit(live_server.url).netloc
    page = browser.new_page(viewport=VIEWPORT)
    seen = watch(page, host)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(team.operator.username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"{live_server.url}/episodes/{episode.pk}/")
    _fits(page)
    _on_screen(page.get_by_label("Success", exact=True), page)
    _on_screen(page.get_by_role("button", name="Save label"), page)

    page.goto(f"{live_server.url}/teleop/sessions/{session.pk}/")
    expect(page.get_by_text(INSTRUCTION[:50], exact=False)).to_be_visible()
    _fits(page)
    page.keyboard.press("j")  # selects the episode and opens its label panel
    panel = page.locator("#label-panel")
    expect(panel.locator(f'form[action="/episodes/{episode.pk}/label"]')).to_be_visible()
    _fits(page)
    _on_screen(panel.get_by_label("Success", exact=True), page)
    _on_screen(panel.get_by_role("button", name="Save label"), page)

    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")
    _fits(page)
    page.get_by_role("button", name=f"Start the next trial on {team.robot.name}").click()
    expect(page.locator("[data-trial-policy]")).to_have_count(1)
    expect(page.get_by_text(INSTRUCTION[:50], exact=False)).to_be_visible()
    _fits(page)
    _on_screen(page.get_by_label("Success", exact=True).first, page)

    page.goto(f"{live_server.url}/episodes/")
    _fits(page)
    assert seen.errors == [] and seen.outside == []
