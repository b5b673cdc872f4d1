"""The robot pages: members see their teams' robots, admins add robots and embodiments and
issue keys (shown once) and revoke them; refusals beside the fields, nothing stored."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.models import AuditEvent, Embodiment, Robot, RobotAPIKey
from tests.core.factories import ARM_SPEC

pytestmark = pytest.mark.django_db


def _as(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _robot_data(world, **changes):
    data = {
        "team": world.a.team.pk,
        "name": "arm-new",
        "embodiment": world.a.embodiment.pk,
        "site": "Lab 2",
        "serial": "",
        "status": "active",
        "visibility": "private",
    }
    return {**data, **changes}


def _embodiment_data(world, **changes):
    data = {
        "team": world.a.team.pk,
        "name": "new-arm",
        "description": "",
        "visibility": "public",
        "spec": json.dumps(ARM_SPEC),
    }
    return {**data, **changes}


# --- Who sees what ----------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_sign_in(world):
    client = _as()
    robot = world.a.robot
    key = robot.api_keys.get()
    for path in ("/robots/", "/robots/new", "/robots/embodiments/new", f"/robots/{robot.pk}/"):
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
    for path in (f"/robots/{robot.pk}/keys", f"/robots/keys/{key.pk}/revoke"):
        response = client.post(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path


def test_members_see_their_teams_robots_and_heartbeats_not_others(world):
    Robot.objects.filter(pk=world.a.robot.pk).update(
        last_seen_at=timezone.now() - timedelta(minutes=3), software_version="arm-fw 2.1"
    )
    page = _as(world.a.operator).get("/robots/").content.decode()
    assert world.a.robot.name in page and world.a.other_robot.name in page
    assert "3\xa0minutes ago" in page and "arm-fw 2.1" in page
    assert world.b.robot.name not in page
    assert world.a.embodiment.name in page and "cam_wrist" in page
    assert world.b.embodiment.name not in page  # private to team b


def test_another_teams_robot_and_key_are_404(world):
    client = _as(world.b.admin)
    robot = world.a.robot
    key = robot.api_keys.get()
    assert client.get(f"/robots/{robot.pk}/").status_code == 404
    assert client.post(f"/robots/{robot.pk}/keys", {"name": "x"}).status_code == 404
    assert client.get(f"/robots/keys/{key.pk}/revoke").status_code == 404
    assert client.post(f"/robots/keys/{key.pk}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None and robot.api_keys.count() == 1


@pytest.mark.parametrize("role", ["operator", "researcher"])
def test_non_admins_see_robots_read_only(world, role):
    user = getattr(world.a, role)
    client = _as(user)
    robot = world.a.robot
    key = robot.api_keys.get()
    listing = client.get("/robots/").content.decode()
    assert "New robot" not in listing and "New embodiment" not in listing
    detail = client.get(f"/robots/{robot.pk}/").content.decode()
    assert key.prefix in detail  # the public prefix, for reading
    assert "Create key" not in detail and "Revoke" not in detail
    assert client.get("/robots/new").status_code == 403
    assert client.post("/robots/new", _robot_data(world)).status_code == 403
    assert client.post("/robots/embodiments/new", _embodiment_data(world)).status_code == 403
    assert client.post(f"/robots/{robot.pk}/keys", {"name": "x"}).status_code == 403
    assert client.post(f"/robots/keys/{key.pk}/revoke").status_code == 403
    assert not Robot.objects.filter(name="arm-new").exists()
    assert not Embodiment.objects.filter(name="new-arm").exists()
    key.refresh_from_db()
    assert key.revoked_at is None and robot.api_keys.count() == 1


# --- Robots and embodiments ---------------------------------------------------------------------


def test_admin_adds_a_robot(world):
    client = _as(world.a.admin)
    assert "New robot" in client.get("/robots/").content.decode()
    response = client.post("/robots/new", _robot_data(world))
    robot = Robot.objects.get(team=world.a.team, name="arm-new")
    assert response.status_code == 302 and response["Location"] == f"/robots/{robot.pk}/"
    assert robot.site == "Lab 2" and robot.embodiment == world.a.embodiment
    assert AuditEvent.objects.filter(object_id=str(robot.pk), action="create").exists()


def test_a_robot_name_taken_is_answered_beside_the_name(world):
    client = _as(world.a.admin)
    response = client.post("/robots/new", _robot_data(world, name=world.a.robot.name))
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_name_error"' in page and "already" in page
    assert Robot.objects.filter(team=world.a.team).count() == 2


def test_admin_cannot_add_a_robot_to_another_team(world):
    response = _as(world.a.admin).post("/robots/new", _robot_data(world, team=world.b.team.pk))
    assert response.status_code == 400
    assert 'id="id_team_error"' in response.content.decode()
    assert not Robot.objects.filter(name="arm-new").exists()


def test_admin_adds_an_embodiment_from_a_spec(world):
    response = _as(world.a.admin).post("/robots/embodiments/new", _embodiment_data(world))
    assert response.status_code == 302 and response["Location"] == "/robots/"
    assert Embodiment.objects.get(name="new-arm").spec["control_hz"] == 200


def test_a_bad_spec_is_answered_with_the_services_messages_beside_the_spec(world):
    client = _as(world.a.admin)
    spec = {**ARM_SPEC, "control_hz": -5}
    del spec["action"]
    response = client.post(
        "/robots/embodiments/new", _embodiment_data(world, spec=json.dumps(spec))
    )
    assert response.status_code == 400
    page = response.content.decode()
    error = page[page.index('id="id_spec_error"') :]
    assert "control_hz" in error and "&#x27;action&#x27; is a required property" in error
    response = client.post("/robots/embodiments/new", _embodiment_data(world, spec="{not json"))
    assert response.status_code == 400 and "Not JSON" in response.content.decode()
    assert not Embodiment.objects.filter(name="new-arm").exists()


# --- API keys -----------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_works(world, api):
    client = _as(world.a.admin)
    robot = world.a.robot
    response = client.post(f"/robots/{robot.pk}/keys", {"name": "lab-pc"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    page = response.content.decode()
    key = robot.api_keys.get(name="lab-pc")
    clear = page.split('id="clear-key"')[1].split('value="')[1].split('"')[0]
    assert clear.startswith(f"pg_{key.prefix}_")
    assert api(key=clear).get("/api/v1/whoami").status_code == 200
    # Never again: not on any page, not in the database.
    for path in ("/robots/", f"/robots/{robot.pk}/", f"/robots/keys/{key.pk}/revoke", "/"):
        assert clear not in client.get(path).content.decode(), path
    assert clear not in str(list(RobotAPIKey.objects.values()))
    assert clear.split("_", 2)[2] not in str(list(AuditEvent.objects.values()))


def test_a_key_with_an_expiry_in_the_past_is_refused_beside_the_field(world):
    robot = world.a.robot
    past = (timezone.localtime() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = _as(world.a.admin).post(
        f"/robots/{robot.pk}/keys", {"name": "old", "expires_at": past}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_expires_at_error"' in page and "Must be in the future." in page
    assert not robot.api_keys.filter(name="old").exists()


def test_revoking_asks_first_then_revokes(world, api):
    client = _as(world.a.admin)
    key = world.a.robot.api_keys.get()
    page = client.get(f"/robots/keys/{key.pk}/revoke").content.decode()
    assert "Revoke the key" in page and "cannot be undone" in page
    key.refresh_from_db()
    assert key.revoked_at is None  # asking changes nothing
    response = client.post(f"/robots/keys/{key.pk}/revoke")
    assert response.status_code == 302 and response["Location"] == f"/robots/{world.a.robot.pk}/"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api(key=world.a.robot_key).get("/api/v1/whoami").status_code == 401
    assert "revoked" in client.get(f"/robots/{world.a.robot.pk}/").content.decode()
