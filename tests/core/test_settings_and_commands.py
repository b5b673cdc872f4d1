"""Settings from the environment, the deploy checklist, and the management commands."""

import os
import re
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from core.models import Embodiment, Robot, Task

ROOT = Path(__file__).resolve().parents[2]


def _without_test_only_variables() -> dict[str, str]:
    # The test session sets DJANGO_ALLOW_ASYNC_UNSAFE (for Playwright); production never does.
    return {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}


def _run(code: str, **env) -> subprocess.CompletedProcess:
    environment = _without_test_only_variables()
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_env_example_lists_every_variable_the_settings_read():
    settings_text = (ROOT / "core" / "settings.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_text))
    read |= set(re.findall(r'Env\(\)\.\w+\("([A-Z_]+)"', settings_text))
    documented = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read, "no variables found: the pattern no longer matches settings.py"
    assert read - documented == set()


def test_secret_key_is_required_when_debug_is_off():
    result = _run(
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='core.settings';django.setup()",
        DJANGO_DEBUG="false",
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_deploy_checklist_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **_without_test_only_variables(),
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "pg.example.org",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    counts = (Embodiment.objects.count(), Robot.objects.count(), Task.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert (Embodiment.objects.count(), Robot.objects.count(), Task.objects.count()) == counts
    assert counts == (1, 1, 3)
    assert "Log in at" in out.getvalue()


@pytest.mark.django_db
def test_create_robot_key_prints_the_key_alone_and_it_works(api):
    call_command("seed_demo", stdout=StringIO())
    out = StringIO()
    call_command("create_robot_key", "demo-arm-1", stdout=out)
    key = out.getvalue().strip()
    assert re.fullmatch(r"pg_[0-9a-f]{12}_[A-Za-z0-9_-]+", key)
    assert api(key=key).get("/api/v1/whoami").json()["name"] == "demo-arm-1"


@pytest.mark.django_db
def test_create_robot_key_for_an_unknown_robot_fails_clearly():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No robot named"):
        call_command("create_robot_key", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_session_writes_need_a_csrf_token(world):
    from rest_framework.test import APIClient

    client = APIClient(enforce_csrf_checks=True)
    client.force_login(world.a.admin)
    response = client.post(
        "/api/v1/conditions/",
        {"team": world.a.team.slug, "factor": "lighting", "level": "dim"},
        format="json",
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


@pytest.mark.django_db
def test_database_errors_are_503_with_retry_after(api, world, monkeypatch):
    from django.db import OperationalError

    from core.api import views

    def down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(views.access, "all_roles", down)
    response = api(world.a.admin).get("/api/v1/whoami")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"] == "database_unavailable"
