"""An operator opens a teleop session in the console, the robot (the real client, over HTTP)
uploads two episodes that appear live without a reload, the operator labels one a success and
discards the other by keyboard, closes the session, and the summary counts only what was kept.
"""

import faulthandler
import re
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from core import services as core_services
from teleop import client as pg
from teleop.models import Episode, Label, Session
from tests.browser.watch import watch
from tests.core import factories
from tests.teleop.recordings import record_episode

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
OPERATOR = "OP-TELE1"
DISCARD_REASON = "Robot lagged: 100 Hz"


def _world():
    world = factories.build_world()
    core_services.create_operator(
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
    client = pg.ProvingGroundClient(url, team.robot_key, timeout_s=60)
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
    expect(page.locator(f'[data-episode-row="{clean_id}"] .badge.success')).to_be_visible()

    # An open session that has been quiet for a while polls slowly.
    quiet_since = timezone.now() - timedelta(minutes=10)
    Session.objects.filter(pk=session.pk).update(opened_at=quiet_since)
    Episode.objects.filter(session=session).update(updated_at=quiet_since)
    expect(live).to_have_attribute("data-poll-every", "10", timeout=5_000)
    expect(page.locator("[data-live]")).to_have_text("refreshes every 10 s")

    # Close the session: the summary counts what was kept.
    page.get_by_role("button", name="Close session").click()
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
    polled = len(polls)
    page.wait_for_timeout(2500)
    assert len(polls) == polled

    session.refresh_from_db()
    assert session.status == Session.Status.CLOSED
    label = Label.objects.get(superseded_at=None)
    assert (label.episode_id, label.outcome) == (clean.pk, "success")
    lagged.refresh_from_db()
    assert lagged.discard_reason == DISCARD_REASON
    assert errors == []
    assert outside == []
