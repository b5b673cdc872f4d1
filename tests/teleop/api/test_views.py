"""Recording API: who sees and does what."""

import uuid

import pytest

from core import services as core_services
from teleop.models import Episode
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def test_robot_opens_a_session_on_itself_over_the_api(api, world):
    operator = core_services.create_operator(actor=world.a.admin, team=world.a.team)
    body = {
        "robot": str(world.a.robot.pk),
        "task_version": str(world.a.task.versions.get().pk),
        "operator": operator.code,
    }
    response = api(key=world.a.robot_key).post(
        "/api/v1/sessions/", body, HTTP_IDEMPOTENCY_KEY="open-1"
    )
    assert response.status_code == 201, response.json()
    again = api(key=world.a.robot_key).post(
        "/api/v1/sessions/", body, HTTP_IDEMPOTENCY_KEY="open-1"
    )
    assert again.json()["id"] == response.json()["id"]


def test_sessions_and_episodes_of_another_team_are_invisible(api, world, session):
    episode = ready_episode_row(session)
    for path in (f"/api/v1/sessions/{session.pk}/", f"/api/v1/episodes/{episode.pk}/"):
        assert api(world.a.researcher).get(path).status_code == 200
        assert api(world.b.admin).get(path).status_code == 404
        assert api(key=world.b.robot_key).get(path).status_code == 404
    assert api(world.b.admin).get("/api/v1/episodes/").json()["results"] == []


def test_operator_labels_and_discards_over_the_api(api, world, session):
    episode = ready_episode_row(session)
    client = api(world.a.operator)
    response = client.post(
        f"/api/v1/episodes/{episode.pk}/labels",
        {"outcome": "partial", "stages_reached": ["reach"], "notes": "slow reach"},
    )
    assert response.status_code == 201, response.json()
    assert response.json()["stage_score"] == pytest.approx(0.25)
    body = client.get(f"/api/v1/episodes/{episode.pk}/").json()
    assert body["label"]["outcome"] == "partial"
    response = client.post(f"/api/v1/episodes/{episode.pk}/discard", {"reason": "bad grasp"})
    assert response.status_code == 200 and response.json()["discarded"] is True


def test_robots_cannot_label(api, world, session):
    episode = ready_episode_row(session)
    response = api(key=world.a.robot_key).post(
        f"/api/v1/episodes/{episode.pk}/labels", {"outcome": "success"}
    )
    assert response.status_code == 403


def test_episode_for_a_session_of_another_team_is_refused(api, world, session):
    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": 10,
        "sha256": "a" * 64,
    }
    response = api(key=world.b.robot_key).post("/api/v1/episodes/", body)
    assert response.status_code == 400 and "session" in response.json()["fields"]
    assert not Episode.objects.exists()


def test_session_summary_and_next_condition_over_the_api(api, world, session):
    client = api(world.a.operator)
    summary = client.get(f"/api/v1/sessions/{session.pk}/summary").json()
    assert summary["episodes"] == 0
    assert client.get(f"/api/v1/sessions/{session.pk}/next-condition").json() == {"condition": None}
    closed = client.post(f"/api/v1/sessions/{session.pk}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
