"""The criteria editor's dry run: a draft's automatic checks evaluated on a real recorded
episode (its stored file, through teleop.storage), before anything is saved; and the episodes
it offers."""

import hashlib
import json

import pytest
from django.test import Client

from core.models import TaskVersion
from teleop import storage
from tests.core.factories import PICK_CRITERIA
from tests.teleop.recordings import ready_episode_row, record_episode

pytestmark = pytest.mark.django_db

DRAFT = {
    **PICK_CRITERIA,
    "success": {"description": "The cube ends above 5.", "check": "lifted"},
    "checks": [
        {"id": "grasp-in-time", "type": "stage_by_time", "stage": "grasp", "by_s": 1.5},
        {
            "id": "lifted",
            "type": "final_value",
            "signal": "observations/qpos",
            "index": 0,
            "op": ">",
            "threshold": 5,
        },
        {"id": "rate", "type": "control_rate", "min_hz": 150},
        {
            "id": "wrist-live",
            "type": "camera_not_frozen",
            "camera": "cam_wrist",
            "max_frozen_s": 0.5,
        },
        {
            "id": "gone",
            "type": "final_value",
            "signal": "observations/missing",
            "op": "<",
            "threshold": 1,
        },
    ],
}


def _as(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def recorded(session, tmp_path):
    """A ready episode of team a whose file (2 s at 200 Hz, stages reach 0.5 s and grasp
    1.0 s) is stored as processing stores it."""
    path = record_episode(tmp_path / "e.h5", seconds=2.0)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    episode = ready_episode_row(session)
    episode.file = storage.store_episode_file(path, sha256)
    episode.sha256 = sha256
    episode.duration_s = 2.0
    episode.save(update_fields=["file", "sha256", "duration_s"])
    return episode


def _run(client, **body):
    return client.post("/tasks/criteria/dry-run", json.dumps(body), content_type="application/json")


def test_a_dry_run_shows_each_checks_verdict_and_measured_value(world, recorded):
    versions = TaskVersion.objects.count()
    answer = _run(_as(world.a.researcher), criteria=DRAFT, episode=str(recorded.pk))
    assert answer.status_code == 200
    results = {r["check_id"]: r for r in answer.json()["results"]}
    assert list(results) == ["grasp-in-time", "lifted", "rate", "wrist-live", "gone"]
    assert results["grasp-in-time"]["status"] == "passed"
    assert results["grasp-in-time"]["value"] == pytest.approx(1.0)
    assert results["lifted"]["status"] == "failed"
    assert results["lifted"]["value"] == pytest.approx(0.9109, abs=1e-3)  # sin(1.995 s)
    assert results["rate"]["status"] == "passed"
    assert results["rate"]["value"] == pytest.approx(200)
    assert results["wrist-live"]["status"] == "passed"
    assert results["gone"]["status"] == "not_evaluable"
    assert "not in the episode" in results["gone"]["message"]
    assert answer.json()["success"] is False  # decided by the failed `lifted`
    assert TaskVersion.objects.count() == versions  # nothing saved


def test_invalid_draft_criteria_are_answered_with_the_services_messages(world, recorded):
    bad = {**DRAFT, "stages": [{"id": "grasp", "description": "Held", "weight": 0.5}]}
    answer = _run(_as(world.a.admin), criteria=bad, episode=str(recorded.pk))
    assert answer.status_code == 400
    messages = [p["message"] for p in answer.json()["problems"]]
    assert "/stages: stage weights sum to 0.5; they must sum to 1 (within 1e-06)" in messages


def test_another_teams_episode_or_a_rowless_file_cannot_be_dry_run(world, recorded, session):
    answer = _run(_as(world.b.admin), criteria=DRAFT, episode=str(recorded.pk))
    assert answer.status_code == 400
    assert answer.json()["problems"][0]["field"] == "episode"
    no_file = ready_episode_row(session)
    answer = _run(_as(world.a.admin), criteria=DRAFT, episode=str(no_file.pk))
    assert answer.status_code == 400 and answer.json()["problems"][0]["field"] == "episode"
    assert _run(_as(world.a.admin), criteria=DRAFT, episode="../../etc/passwd").status_code == 400


def test_an_episode_of_an_embodiment_the_draft_does_not_allow_is_refused(world, recorded):
    answer = _run(
        _as(world.a.admin),
        criteria=DRAFT,
        episode=str(recorded.pk),
        embodiments=[str(world.b.embodiment.pk)],
    )
    assert answer.status_code == 400
    assert "does not allow" in answer.json()["problems"][0]["message"]


def test_operators_and_anonymous_visitors_cannot_dry_run(world, recorded):
    assert _run(_as(world.a.operator), criteria=DRAFT, episode=str(recorded.pk)).status_code == 403
    anonymous = _run(_as(), criteria=DRAFT, episode=str(recorded.pk))
    assert anonymous.status_code == 302


def test_the_episode_choice_lists_recent_ready_episodes_of_the_team_and_embodiments(
    world, recorded, session
):
    ready_episode_row(session)  # no stored file: not offered
    client = _as(world.a.researcher)
    url = "/tasks/criteria/episodes"
    offered = client.get(url, {"team": str(world.a.team.pk)}).json()["episodes"]
    assert [e["id"] for e in offered] == [str(recorded.pk)]
    assert "(arm)" in offered[0]["label"] and "2.0 s" in offered[0]["label"]
    other = client.get(
        url, {"team": str(world.a.team.pk), "embodiment": str(world.b.embodiment.pk)}
    )
    assert other.json()["episodes"] == []
    assert _as(world.b.researcher).get(url).json()["episodes"] == []
    assert _as(world.a.operator).get(url).status_code == 403
