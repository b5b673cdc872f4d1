"""Bidirectional control characters are refused in names, whichever door they come in by."""

import pytest
from django.test import Client

from core.errors import InvalidInput
from core.models import Task
from core.names import BIDI_CONTROLS, refuse_bidi_controls
from core.services import task_versions
from evaluation.models import Policy
from evaluation.services import policies
from teleop import datasets
from teleop.models import DatasetView

RLO = "\u202e"


@pytest.mark.parametrize("char", sorted(BIDI_CONTROLS), ids=lambda c: f"U+{ord(c):04X}")
def test_the_validator_refuses_every_bidi_control(char):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        refuse_bidi_controls(f"invoice{char}gpj.exe")


def test_names_in_right_to_left_scripts_need_no_controls_and_pass():
    refuse_bidi_controls("מכונה 3")
    refuse_bidi_controls("روبوت المختبر")
    refuse_bidi_controls("Robot café")


@pytest.mark.django_db
def test_the_api_refuses_a_task_name_with_a_right_to_left_override(api, world):
    body = {
        "team": world.a.team.slug,
        "slug": "spoof",
        "name": f"Pick{RLO}gpj.exe",
        "instruction": "Do it",
        "time_limit_s": 30,
        "criteria": world.a.task.versions.get().criteria,
        "allowed_embodiments": [world.a.embodiment.name],
    }
    response = api(world.a.admin).post("/api/v1/tasks/", body)
    assert response.status_code == 400
    assert "name" in response.json()["fields"]
    assert not Task.objects.filter(slug="spoof").exists()


@pytest.mark.django_db
def test_services_of_every_app_refuse_such_names_and_store_nothing(world):
    with pytest.raises(InvalidInput):
        task_versions.update_task(actor=world.a.admin, task=world.a.task, name=f"x{RLO}y")
    with pytest.raises(InvalidInput):
        policies.create_policy(actor=world.a.admin, team=world.a.team, name=f"act{RLO}")
    with pytest.raises(InvalidInput):
        datasets.create_view(actor=world.a.researcher, team=world.a.team, name="v\u2067iew")
    world.a.task.refresh_from_db()
    assert RLO not in world.a.task.name
    assert not Policy.objects.exists() and not DatasetView.objects.exists()


@pytest.mark.django_db
def test_a_page_form_says_why_and_saves_nothing(world):
    client = Client()
    client.force_login(world.a.researcher)
    response = client.post(
        "/datasets/save", {"team": world.a.team.pk, "name": f"wins{RLO}"}, follow=True
    )
    assert response.status_code == 200
    assert "Bidirectional control characters" in response.content.decode()
    assert not DatasetView.objects.exists()
