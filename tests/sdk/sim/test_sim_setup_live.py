"""examples/sim_setup.py against a live server: it creates the PushT world through the REST
API, reuses it on a second run, and the runner records a demonstration with what it printed."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("gym_pusht")

from core.services import operators  # noqa: E402
from evaluation.models import Campaign  # noqa: E402
from teleop.models import Episode  # noqa: E402
from tests.core import factories  # noqa: E402

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "sim_setup.py"


def run(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_sim_setup_creates_the_pusht_world_once_and_the_runner_records_into_it(
    live_server, settings, tmp_path
):
    # Plain HTTP: the session and CSRF cookies must not be Secure-only here.
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    world = factories.build_world().a
    operators.create_operator(actor=world.admin, team=world.team, code="OP-EXPERT")
    setup = [
        str(SCRIPT),
        "--url",
        live_server.url,
        "--username",
        world.admin.username,
        "--password",
        "pw",
        "--team",
        world.team.slug,
    ]

    first = run(*setup, cwd=tmp_path)
    key = re.search(r"shown once, store it\):\s+(\S+)", first).group(1)
    demos = re.search(r"-m proving_ground\.sim (pusht demos .*)", first).group(1).split()
    campaign = Campaign.objects.get(team=world.team)
    assert (campaign.status, campaign.blinded) == ("running", True)
    assert campaign.policy_versions.count() == 2

    again = run(*setup, cwd=tmp_path)
    assert "(created)" not in again
    assert "already has a key" in again
    assert Campaign.objects.filter(team=world.team).count() == 1

    assert demos[demos.index("--key") + 1] == key
    demos[demos.index("--count") + 1] = "1"
    run("-m", "proving_ground.sim", *demos, "--max-steps", "20", "--outbox", "box", cwd=tmp_path)
    episode = Episode.objects.get(session__robot__name="pusht-sim-1")
    assert episode.condition.factor == "block_start"
    assert episode.session.operator.code == "OP-EXPERT"
