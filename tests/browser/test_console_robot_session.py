"""An operator opens a session in the console, gives its code to the robot quickstart
(`examples/robot_quickstart.py --session CODE`, its own process, over HTTP), and the robot's
episode appears in that console, which says the robot is connected."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from playwright.sync_api import expect

from core.models import Task
from teleop.models import Episode, Session
from tests.browser.watch import watch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def test_the_consoles_session_code_given_to_the_quickstart_brings_its_episode_there(
    live_server, browser, settings, tmp_path
):
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    # Processing runs as soon as the upload completes, in the live server's request thread.
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    call_command("seed_demo", stdout=io.StringIO())
    key = io.StringIO()
    call_command("create_robot_key", "demo-arm-1", stdout=key)
    olga = get_user_model().objects.get(username="olga")
    olga.set_password("pw")
    olga.save()
    version = Task.objects.get(slug="pick-cube").versions.order_by("-number").first()
    host = urlsplit(live_server.url).netloc

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    seen = watch(page, host)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("olga")
    page.get_by_label("Password").fill("pw")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Teleop").click()
    page.get_by_label("Robot").select_option(label="demo-arm-1")
    page.get_by_label("Task version").select_option(label=str(version))
    page.get_by_label("Operator").select_option(label="OP-DEMO1")
    page.get_by_role("button", name="Open session").click()
    expect(page).to_have_url(re.compile(r"/teleop/sessions/[0-9a-f-]{36}/$"))
    expect(page.get_by_text("No episodes yet.")).to_be_visible()
    code = page.locator("[data-session-code]").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{6}", code)

    robot = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/robot_quickstart.py"),
            *("--url", live_server.url, "--key", key.getvalue().strip(), "--session", code),
            *("--outbox", str(tmp_path / "outbox"), "--duration-s", "1", "--timeout-s", "60"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
        timeout=180,
    )
    assert robot.returncode == 0, robot.stdout + robot.stderr
    assert f"session {code} (" in robot.stdout

    # The live table brings the episode in without a reload, and says the robot is there.
    episode = Episode.objects.get()
    assert episode.session_id == Session.objects.get(code=code).pk
    row = page.locator(f'[data-episode-row="{episode.pk}"]')
    expect(row).to_be_visible(timeout=20_000)
    expect(row.locator(".badge.ready")).to_be_visible()
    expect(page.locator("[data-robot-seen]")).to_contain_text("demo-arm-1: connected last seen")
    assert Session.objects.get(code=code).status == "open"
    assert not seen.errors and not seen.outside
