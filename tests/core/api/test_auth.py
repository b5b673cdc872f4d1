"""Who may do what: the auth matrix of the core API."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent, Robot, RobotAPIKey
from core.services import operators, robots, task_versions
from tests.core.factories import ARM_SPEC, PICK_CRITERIA

pytestmark = pytest.mark.django_db


def test_request_without_key_is_401_with_authenticate_header(api, world):
    response = api().get("/api/v1/robots/")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_version_is_public(api):
    body = api().get("/api/v1/version").json()
    assert set(body) == {"server_version", "api_version", "min_client_version"}


@pytest.mark.parametrize(
    "header", ["Api-Key nonsense", "Api-Key pg_000000000000_secret", "Api-Key "]
)
def test_unknown_or_malformed_key_is_401(api, world, header):
    client = api()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"] == "authentication_failed"


def test_revoked_key_is_401(api, world):
    key = RobotAPIKey.objects.get(robot=world.a.robot)
    robots.revoke_api_key(actor=world.a.admin, key=key)
    assert api(key=world.a.robot_key).get("/api/v1/whoami").status_code == 401


def test_expired_key_is_401(api, world):
    RobotAPIKey.objects.filter(robot=world.a.robot).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert api(key=world.a.robot_key).get("/api/v1/whoami").status_code == 401


def test_key_of_retired_robot_is_401(api, world):
    Robot.objects.filter(pk=world.a.robot.pk).update(status=Robot.Status.RETIRED)
    assert api(key=world.a.robot_key).get("/api/v1/whoami").status_code == 401


def test_key_is_stored_hashed_never_in_clear(world):
    key = RobotAPIKey.objects.get(robot=world.a.robot)
    assert world.a.robot_key not in key.key_hash
    assert len(key.key_hash) == 64 and key.prefix in world.a.robot_key


def test_robot_whoami_names_the_robot(api, world):
    body = api(key=world.a.robot_key).get("/api/v1/whoami").json()
    assert body["kind"] == "robot"
    assert body["id"] == str(world.a.robot.pk)
    assert body["teams"][0]["slug"] == world.a.team.slug


def test_person_whoami_lists_roles(api, world):
    body = api(world.a.operator).get("/api/v1/whoami").json()
    assert body["kind"] == "person"
    assert body["roles"] == {world.a.team.slug: ["operator"]}


def test_key_use_is_recorded(api, world):
    api(key=world.a.robot_key).get("/api/v1/whoami")
    assert RobotAPIKey.objects.get(robot=world.a.robot).last_used_at is not None


# --- Robots act only as themselves ----------------------------------------------------------


def test_robot_lists_only_itself(api, world):
    response = api(key=world.a.robot_key).get("/api/v1/robots/")
    body = response.json()
    assert response.status_code == 200, body
    assert [r["id"] for r in body["results"]] == [str(world.a.robot.pk)]


def test_robot_reading_another_robot_of_its_team_is_403(api, world):
    response = api(key=world.a.robot_key).get(f"/api/v1/robots/{world.a.other_robot.pk}/")
    assert response.status_code == 403
    assert response.json()["error"] == "permission_denied"


def test_robot_reading_another_teams_private_robot_is_404(api, world):
    response = api(key=world.a.robot_key).get(f"/api/v1/robots/{world.b.robot.pk}/")
    assert response.status_code == 404


def test_robot_heartbeat_for_itself_is_recorded(api, world):
    response = api(key=world.a.robot_key).post(
        f"/api/v1/robots/{world.a.robot.pk}/heartbeat", {"software_version": "client 0.1.0"}
    )
    assert response.status_code == 200, response.json()
    world.a.robot.refresh_from_db()
    assert world.a.robot.last_seen_at is not None
    assert world.a.robot.software_version == "client 0.1.0"
    event = AuditEvent.objects.get(object_id=str(world.a.robot.pk), actor_robot=world.a.robot)
    assert event.after == {"software_version": "client 0.1.0"}
    assert event.actor_label == f"robot:{world.a.robot.name}"


def test_robot_heartbeat_for_another_robot_is_403(api, world):
    response = api(key=world.a.robot_key).post(
        f"/api/v1/robots/{world.a.other_robot.pk}/heartbeat", {}
    )
    assert response.status_code == 403


def test_robot_reads_tasks_and_embodiments_of_its_team(api, world):
    client = api(key=world.a.robot_key)
    assert client.get(f"/api/v1/tasks/{world.a.private_task.pk}/").status_code == 200
    assert client.get(f"/api/v1/embodiments/{world.a.embodiment.pk}/").status_code == 200


def test_robot_cannot_write_the_catalog(api, world):
    client = api(key=world.a.robot_key)
    response = client.patch(f"/api/v1/tasks/{world.a.task.pk}/", {"name": "renamed"})
    assert response.status_code == 403
    response = client.post(
        "/api/v1/conditions/", {"team": world.a.team.slug, "factor": "lighting", "level": "dim"}
    )
    assert response.status_code == 403


def test_robot_cannot_manage_keys(api, world):
    response = api(key=world.a.robot_key).post(f"/api/v1/robots/{world.a.robot.pk}/keys", {})
    assert response.status_code == 403


# --- Teams: another team's private object is a 404 ------------------------------------------


@pytest.mark.parametrize("path", ["robots", "embodiments", "tasks"])
def test_another_teams_private_object_is_404_for_every_role(api, world, path):
    obj = {
        "robots": world.b.robot,
        "embodiments": world.b.embodiment,
        "tasks": world.b.private_task,
    }[path]
    for user in (world.a.admin, world.a.operator, world.a.researcher, world.stranger):
        assert api(user).get(f"/api/v1/{path}/{obj.pk}/").status_code == 404


def test_another_teams_private_objects_are_not_listed(api, world):
    ids = {t["id"] for t in api(world.a.researcher).get("/api/v1/tasks/").json()["results"]}
    assert str(world.a.private_task.pk) in ids
    assert str(world.b.task.pk) in ids  # public
    assert str(world.b.private_task.pk) not in ids


def test_shared_object_is_visible_to_the_named_team_only(api, world, db):
    from tests.core.factories import make_team

    task_versions.update_task(
        actor=world.b.admin,
        task=world.b.private_task,
        visibility="shared",
        shared_with=[world.a.team],
    )
    path = f"/api/v1/tasks/{world.b.private_task.pk}/"
    assert api(world.a.researcher).get(path).status_code == 200
    outsider = make_team()
    from tests.core.factories import make_user

    assert api(make_user(outsider, "researcher")).get(path).status_code == 404


def test_visible_but_foreign_object_cannot_be_changed(api, world):
    response = api(world.a.admin).patch(f"/api/v1/tasks/{world.b.task.pk}/", {"name": "mine"})
    assert response.status_code == 403


# --- Roles ----------------------------------------------------------------------------------


def _new_robot_body(world):
    return {"team": world.a.team.slug, "embodiment": world.a.embodiment.name, "name": "new-bot"}


def test_admin_creates_a_robot_and_the_write_is_audited(api, world):
    response = api(world.a.admin).post("/api/v1/robots/", _new_robot_body(world))
    assert response.status_code == 201, response.json()
    event = AuditEvent.objects.get(object_id=response.json()["id"])
    assert event.action == "create" and event.actor_user == world.a.admin
    assert event.after["name"] == "new-bot"


@pytest.mark.parametrize("role", ["operator", "researcher"])
def test_operators_and_researchers_cannot_create_robots(api, world, role):
    response = api(getattr(world.a, role)).post("/api/v1/robots/", _new_robot_body(world))
    assert response.status_code == 403
    assert not Robot.objects.filter(name="new-bot").exists()


def test_admin_cannot_create_in_a_team_they_do_not_belong_to(api, world):
    body = _new_robot_body(world) | {"team": world.b.team.slug}
    response = api(world.a.admin).post("/api/v1/robots/", body)
    assert response.status_code == 400  # not one of the caller's teams
    assert "team" in response.json()["fields"]


@pytest.mark.parametrize("role", ["admin", "operator", "researcher"])
def test_every_role_reads_its_team(api, world, role):
    client = api(getattr(world.a, role))
    assert client.get(f"/api/v1/robots/{world.a.robot.pk}/").status_code == 200
    assert client.get(f"/api/v1/tasks/{world.a.private_task.pk}/").status_code == 200


def test_admin_issues_a_key_that_works_and_revokes_it(api, world):
    admin = api(world.a.admin)
    response = admin.post(f"/api/v1/robots/{world.a.robot.pk}/keys", {"name": "lab pc"})
    assert response.status_code == 201
    key = response.json()["key"]
    assert api(key=key).get("/api/v1/whoami").status_code == 200
    listed = admin.get(f"/api/v1/robots/{world.a.robot.pk}/keys").json()
    assert all("key" not in k and "key_hash" not in k for k in listed)
    revoke = admin.post(f"/api/v1/robots/{world.a.robot.pk}/keys/{response.json()['id']}/revoke")
    assert revoke.status_code == 200 and revoke.json()["revoked_at"]
    assert api(key=key).get("/api/v1/whoami").status_code == 401


def test_operator_cannot_issue_keys(api, world):
    response = api(world.a.operator).post(f"/api/v1/robots/{world.a.robot.pk}/keys", {})
    assert response.status_code == 403


def test_an_operator_reads_but_cannot_create_tasks_a_researcher_can(api, world):
    body = {
        "team": world.a.team.slug,
        "slug": "new-task",
        "name": "New",
        "instruction": "Do",
        "time_limit_s": 30,
        "criteria": PICK_CRITERIA,
        "allowed_embodiments": [world.a.embodiment.name],
    }
    assert api(world.a.operator).post("/api/v1/tasks/", body).status_code == 403
    assert api(world.a.researcher).post("/api/v1/tasks/", body).status_code == 201


def test_admin_creates_an_embodiment(api, world):
    body = {"team": world.a.team.slug, "name": "new-arm", "spec": ARM_SPEC}
    response = api(world.a.admin).post("/api/v1/embodiments/", body)
    assert response.status_code == 201, response.json()


def test_stranger_sees_only_public_objects(api, world):
    ids = {t["id"] for t in api(world.stranger).get("/api/v1/tasks/").json()["results"]}
    assert ids == {str(world.a.task.pk), str(world.b.task.pk)}
    assert api(world.stranger).get("/api/v1/robots/").json()["results"] == []


def test_operators_list_shows_pseudonyms_only(api, world):
    operators.create_operator(
        actor=world.a.admin,
        team=world.a.team,
        code="OP-X1",
        full_name="Ada Lovelace",
        email="ada@example.org",
    )
    response = api(world.a.researcher).get("/api/v1/operators/")
    text = response.content.decode()
    assert "OP-X1" in text and "Ada" not in text and "ada@example.org" not in text


def test_audit_trail_is_for_admins_of_the_team(api, world):
    admin_events = api(world.a.admin).get("/api/v1/audit-events/").json()["results"]
    assert admin_events and all(e["team"] == world.a.team.slug for e in admin_events)
    assert api(world.a.researcher).get("/api/v1/audit-events/").json()["results"] == []
    assert api(key=world.a.robot_key).get("/api/v1/audit-events/").status_code == 403


def test_throttled_caller_gets_429_with_retry_after(api, world, monkeypatch):
    from core.api.throttling import PrincipalRateThrottle

    monkeypatch.setitem(PrincipalRateThrottle.THROTTLE_RATES, "robot", "3/min")
    client = api(key=world.a.robot_key)
    statuses = [client.get("/api/v1/whoami").status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    response = client.get("/api/v1/whoami")
    assert response.json()["error"] == "throttled" and int(response["Retry-After"]) > 0
