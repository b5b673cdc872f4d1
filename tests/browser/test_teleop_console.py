"""An operator opens a teleop session in the console, the robot (the real client, over HTTP)
uploads two episodes that appear live without a reload, the operator labels one a success and
discards the other by keyboard, closes the session, and the summary counts only what was kept.
"""

import faulthandler
import re
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core.services import operators
from proving_ground.client import api
from teleop.models import Episode, Label, Session
from teleop.services import sessions
from tests.browser.watch import watch
from tests.core import factories
from tests.teleop.recordings import ready_episode_row, record_episode

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
OPERATOR = "OP-TELE1"
DISCARD_REASON = "Robot lagged: 100 Hz"


def _world():
    world = factories.build_world()
    operators.create_operator(
        actor=world.a.admin, team=world.a.team, code=OPERATOR, user=world.a.operator
    )
    world.a.operator.set_password("pw")
    world.a.operator.save()
    return world.a


def _watch(page, host):
    """Errors and outside requests (the shared watch), plus the live table's polls."""
    seen = watch(page, host)
    polls = []

    def request(r):
        parts = urlsplit(r.url)
        if parts.path.endswith("/episodes") and "/teleop/sessions/" in parts.path:
            polls.append(r.url)

    page.on("request", request)
    return seen.errors, seen.outside, polls


def _robot_uploads(url: str, team, session_id: str, folder: Path) -> list[str]:
    """What the robot does: record two takes and upload each (tus, resumable) with its key.
    The first take lagged (100 Hz on a 200 Hz arm: ready, but flagged); the second is clean."""
    client = api.ProvingGroundClient(url, team.robot_key, timeout_s=60)
    client.check_version()
    takes = [
        ("lagged.h5", 3.0, {**factories.ARM_SPEC, "control_hz": 100}),
        ("clean.h5", 2.0, factories.ARM_SPEC),
    ]
    ids = []
    for name, seconds, spec in takes:
        path = record_episode(
            folder / name,
            spec=spec,
            seconds=seconds,
            robot=str(team.robot.pk),
            task_version=str(team.task.versions.get().pk),
            operator=OPERATOR,
        )
        ids.append(client.upload_episode(path, session_id)["id"])
    return ids


def test_operator_sees_two_uploads_live_labels_one_discards_one_and_the_summary_is_right(
    live_server, browser, settings, tmp_path
):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    # Processing runs as soon as an upload completes, in the live server's request thread.
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    team = _world()
    version = team.task.versions.get()
    host = urlsplit(live_server.url).netloc
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors, outside, polls = _watch(page, host)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill(team.operator.username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Teleop").click()

    # Open a session from the form.
    page.get_by_label("Robot").select_option(label=team.robot.name)
    page.get_by_label("Task version").select_option(label=str(version))
    page.get_by_label("Operator").select_option(label=OPERATOR)
    page.get_by_role("button", name="Open session").click()
    expect(page).to_have_url(re.compile(r"/teleop/sessions/[0-9a-f-]{36}/$"))
    session = Session.objects.get()
    assert (session.robot, session.task_version, session.operator.code) == (
        team.robot,
        version,
        OPERATOR,
    )
    expect(page.get_by_text("No episodes yet.")).to_be_visible()
    rows = page.locator("[data-episode-row]")
    live = page.locator("#episode-rows")
    expect(live).to_have_attribute("data-poll-every", "2")  # just opened: fast
    page.wait_for_load_state("load")  # the shortcuts are a deferred script
    page.evaluate("window.__sameDocument = true")

    # The robot uploads two takes while the console is open; they appear without a reload.
    folder = tmp_path / "robot"
    folder.mkdir()
    robot: dict = {}

    def run_robot():
        try:
            robot["ids"] = _robot_uploads(live_server.url, team, str(session.pk), folder)
        except BaseException as exc:  # re-raised below, in the test's thread
            robot["error"] = exc

    thread = threading.Thread(target=run_robot, daemon=True)
    thread.start()
    thread.join(timeout=120)
    if thread.is_alive():
        faulthandler.dump_traceback(all_threads=True)  # where it hangs, for the log
        pytest.fail("the robot's uploads did not finish in 120 s")
    if "error" in robot:
        raise robot["error"]
    lagged_id, clean_id = robot["ids"]
    expect(rows).to_have_count(2, timeout=10_000)
    expect(rows.locator(".badge.ready")).to_have_count(2)
    assert page.evaluate("window.__sameDocument") is True
    lagged, clean = Episode.objects.get(pk=lagged_id), Episode.objects.get(pk=clean_id)
    assert lagged.state == clean.state == Episode.State.READY
    assert lagged.quality_flags and not clean.quality_flags
    assert clean.duration_s == pytest.approx(2.0, abs=0.05)
    assert lagged.duration_s == pytest.approx(3.0, abs=0.05)
    # Newest first: the clean take, then the lagged one with its flags shown.
    expect(rows.nth(0)).to_have_attribute("data-episode-row", clean_id)
    expect(rows.nth(1)).to_have_attribute("data-episode-row", lagged_id)
    expect(rows.nth(1).locator(".badge.flag").first).to_be_visible()
    expect(page.locator("[data-summary]")).to_contain_text("2 episodes · 0 labelled")

    # j selects the clean take and opens its label panel; s, Ctrl+Enter saves a success.
    panel = page.locator("#label-panel")
    page.keyboard.press("j")
    expect(panel.locator(f'form[action="/episodes/{clean_id}/label"]')).to_be_visible()
    expect(panel.get_by_text("Success: The cube is lifted")).to_be_visible()
    page.keyboard.press("s")
    expect(panel.get_by_label("Success", exact=True)).to_be_checked()
    page.keyboard.press("Control+Enter")
    expect(panel.get_by_text("Label saved.")).to_be_visible()
    expect(page.locator(f'[data-episode-row="{clean_id}"] .badge.success')).to_have_text("success")
    expect(page.locator("[data-summary]")).to_contain_text("1 labelled · 1 success")
    page.screenshot(path=str(SCREENSHOTS / "teleop-console.png"))

    # j moves to the lagged take; x jumps to its discard reason, Enter discards it.
    page.keyboard.press("j")
    expect(page.locator(f'[data-episode-row="{lagged_id}"]')).to_have_class(
        re.compile(r"\bselected\b")
    )
    expect(panel.locator(f'form[action="/episodes/{lagged_id}/label"]')).to_be_visible()
    page.keyboard.press("x")
    reason = panel.get_by_label("Discard reason")
    expect(reason).to_be_focused()
    page.keyboard.type(DISCARD_REASON)
    # With the label panel open, the aside (panel, then instruction) still fits the laptop
    # screen wherever the page is scrolled: it sticks and scrolls on its own.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    box = page.locator("aside.console-aside").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 800
    instruction = page.get_by_role("heading", name="Instruction")
    instruction.scroll_into_view_if_needed()
    expect(page.get_by_text(version.instruction)).to_be_in_viewport()
    reason.press("Enter")
    # Discarding is done in place, like labelling: no reload, the row stays selected, the
    # panel says so and offers no second discard.
    expect(panel.get_by_text("Episode discarded; it stays listed with its reason.")).to_be_visible()
    discarded_row = page.locator(f'[data-episode-row="{lagged_id}"]')
    expect(discarded_row).to_contain_text("discarded")
    expect(discarded_row).to_contain_text(DISCARD_REASON)
    expect(discarded_row).to_have_class(re.compile(r"\bselected\b"))
    assert page.evaluate("window.__sameDocument") is True
    expect(panel.get_by_role("button", name="Discard")).to_have_count(0)
    expect(panel.locator("[data-discard-reason]")).to_have_value(DISCARD_REASON)
    expect(panel.get_by_role("button", name="Save label")).to_be_visible()
    # The read-only reason is no text field: x leaves it alone, and with the focus in it the
    # keys still move the selection.
    page.keyboard.press("x")
    assert page.evaluate("document.activeElement.matches('[data-discard-reason]')") is False
    panel.locator("[data-discard-reason]").focus()
    order = page.locator("[data-episode-row]").evaluate_all(
        "rows => rows.map(r => r.dataset.episodeRow)"
    )
    page.keyboard.press("j" if order.index(lagged_id) == 0 else "k")
    expect(discarded_row).not_to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("k" if order.index(lagged_id) == 0 else "j")
    expect(discarded_row).to_have_class(re.compile(r"\bselected\b"))
    expect(page.locator(f'[data-episode-row="{clean_id}"] .badge.success')).to_be_visible()

    # An open session that has been quiet for a while polls slowly.
    quiet_since = timezone.now() - timedelta(minutes=10)
    Session.objects.filter(pk=session.pk).update(opened_at=quiet_since)
    Episode.objects.filter(session=session).update(updated_at=quiet_since)
    expect(live).to_have_attribute("data-poll-every", "10", timeout=5_000)
    expect(page.locator("[data-live]")).to_have_text("refreshes every 10 s")

    # Close the session: the summary counts what was kept.
    page.get_by_role("button", name="Close session").click()
    expect(page.get_by_text("This cannot be undone.")).to_be_visible()  # it asks first
    page.get_by_role("button", name=f"Close session {session.code}").click()
    expect(page.get_by_text("Session closed.")).to_be_visible()
    summary = page.get_by_role("region", name="Session summary")
    facts = dict(
        zip(
            summary.locator("dt").all_inner_texts(),
            summary.locator("dd").all_inner_texts(),
            strict=True,
        )
    )
    assert facts == {
        "Episodes": "2 (1 discarded)",
        "Labelled": "1: 1 success, 0 failure, 0 partial",
        # Wilson's 95% interval for 1 of 1 is [0.21, 1].
        "Success rate": "1/1 = 1.00, 95% interval [0.21, 1.00] (Wilson)",
        # The discarded 3 s take counts in no median (both would give 2.5 s).
        "Median duration": "2.0 s",
        # The lagged take's flags went with it.
        "Flagged": "0",
    }
    page.screenshot(path=str(SCREENSHOTS / "teleop-session-summary.png"), full_page=True)

    # A closed session whose episodes have all settled stops polling.
    expect(live).to_have_attribute("data-poll-every", "")
    assert "every" not in live.get_attribute("hx-trigger")
    expect(page.locator("[data-live]")).to_have_text("final: session closed")
    # Polling is a timer htmx keeps on the element (its internal data's `timeout`); the table
    # htmx has processed for the closed session has none, and the replaced one's timer stops
    # itself (htmx polls only an element still in the page). A condition, not a wait.
    page.wait_for_function(
        "() => (document.getElementById('episode-rows')['htmx-internal-data'] || {}).initHash"
    )
    assert (
        page.evaluate("() => document.getElementById('episode-rows')['htmx-internal-data'].timeout")
        is None
    )

    session.refresh_from_db()
    assert session.status == Session.Status.CLOSED
    label = Label.objects.get(superseded_at=None)
    assert (label.episode_id, label.outcome) == (clean.pk, "success")
    lagged.refresh_from_db()
    assert lagged.discard_reason == DISCARD_REASON
    assert errors == []
    assert outside == []


def _console(live_server, browser):
    """A signed-in operator on the console of a session with two ready episodes (newest
    first in the table). Returns the page, what it saw, and the two episodes in table order."""
    team = _world()
    session = sessions.open_session(
        actor=team.operator,
        robot=team.robot,
        task_version=team.task.versions.get(),
        operator_code=OPERATOR,
    )
    older = ready_episode_row(session)
    newer = ready_episode_row(session)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    seen = watch(page, urlsplit(live_server.url).netloc)
    page.goto(f"{live_server.url}/accounts/login/?next=/teleop/sessions/{session.pk}/")
    page.get_by_label("Username").fill(team.operator.username)
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-episode-row]")).to_have_count(2)
    page.wait_for_load_state("load")  # the shortcuts are a deferred script
    return page, seen, newer, older


def _hold_panel_loads(page) -> list:
    """Hold the next label panel the page asks for (GET) until `_release`, the way a slow
    network would; saves (POST) and later panels go through."""
    held = []

    def hold(route):
        if route.request.method == "GET" and not held:
            held.append(route)
        else:
            route.continue_()

    page.route("**/episodes/*/label", hold)
    return held


def _release(page, held):
    """Let the held panel through once the page has asked for it. The route handler runs
    only while Playwright is called, and under load the request can take seconds to reach it:
    wait on that condition (each round trip lets the handler run), not for a fixed time."""
    deadline = time.monotonic() + 60  # a hung page fails here, not in an IndexError
    while not held:
        assert time.monotonic() < deadline, "the page never asked for the next label panel"
        page.evaluate("() => new Promise((resolve) => requestAnimationFrame(resolve))")
    held[0].continue_()


def _label_form(episode):
    return f'#label-panel form[action="/episodes/{episode.pk}/label"]'


def test_a_discard_reason_typed_while_the_next_panel_loads_goes_to_that_episode(
    live_server, browser
):
    """j then x at once: the reason and its Enter wait for the selected episode's panel and
    land in it, never in the previous episode's panel nor read as shortcuts."""
    page, seen, first, second = _console(live_server, browser)
    page.keyboard.press("j")
    expect(page.locator(_label_form(first))).to_be_visible()
    held = _hold_panel_loads(page)
    page.keyboard.press("j")  # the second episode's panel is on its way
    page.keyboard.press("x")
    page.keyboard.type("gripper sl")  # s and p are shortcuts outside the reason box
    _release(page, held)
    expect(page.locator(_label_form(second))).to_be_visible()
    expect(page.get_by_label("Discard reason")).to_be_focused()
    page.keyboard.type("ipped, 2 fps")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Episode discarded; it stays listed with its reason.")).to_be_visible()

    first.refresh_from_db()
    second.refresh_from_db()
    assert second.discard_reason == "gripper slipped, 2 fps"
    assert not first.is_discarded
    assert not Label.objects.exists()
    assert seen.errors == [] and seen.outside == []


def test_labelling_keys_pressed_while_the_next_panel_loads_label_that_episode(live_server, browser):
    page, seen, first, second = _console(live_server, browser)
    page.keyboard.press("j")
    expect(page.locator(_label_form(first))).to_be_visible()
    held = _hold_panel_loads(page)
    page.keyboard.press("j")
    for key in ("f", "1", "Control+Enter"):
        page.keyboard.press(key)
    _release(page, held)
    expect(page.get_by_text("Label saved.")).to_be_visible()

    label = Label.objects.get()
    assert (label.episode_id, label.outcome, label.stages_reached) == (
        second.pk,
        "failure",
        ["reach"],
    )
    assert seen.errors == [] and seen.outside == []


def test_after_saving_from_the_notes_and_after_escape_the_keys_are_shortcuts_again(
    live_server, browser
):
    page, seen, first, second = _console(live_server, browser)
    page.keyboard.press("j")
    expect(page.locator(_label_form(first))).to_be_visible()
    page.keyboard.press("s")
    page.get_by_label("Notes").fill("clean take")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("Label saved.")).to_be_visible()
    page.keyboard.press("j")  # not typed into the notes: the next episode
    expect(page.locator(_label_form(second))).to_be_visible()
    expect(page.locator(f'[data-episode-row="{second.pk}"]')).to_have_class(
        re.compile(r"\bselected\b")
    )
    page.get_by_label("Notes").fill("slow")
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    expect(page.get_by_label("Failure", exact=True)).to_be_checked()
    expect(page.get_by_label("Notes")).to_have_value("slow")

    assert Label.objects.get().notes == "clean take"
    assert seen.errors == [] and seen.outside == []
