"""Recording API: who sees and does what."""

import uuid

import pytest

from core.services import operators
from teleop.models import Episode
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def test_robot_opens_a_session_on_itself_over_the_api(api, world):
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
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


# --- The episode list pages by cursor ---------------------------------------------------------


def _walk(client, url):
    """Every page from `url` on, following `next`: the ids in order and the pages."""
    ids, pages = [], []
    while url:
        body = client.get(url).json()
        pages.append(body)
        ids += [row["id"] for row in body["results"]]
        url = body["next"]
    return ids, pages


def test_episode_list_pages_newest_first_by_cursor_without_repeats_or_gaps(api, world, session):
    episodes = [ready_episode_row(session) for _ in range(7)]
    # Three share a creation time: the id breaks the tie, so no page repeats or skips one.
    tied = episodes[0].created_at
    Episode.objects.filter(pk__in=[e.pk for e in episodes[2:5]]).update(created_at=tied)
    expected = [
        str(pk)
        for pk in Episode.objects.order_by("-created_at", "-id").values_list("pk", flat=True)
    ]
    client = api(world.a.researcher)

    ids, pages = _walk(client, "/api/v1/episodes/?limit=3")

    assert ids == expected
    assert [len(page["results"]) for page in pages] == [3, 3, 1]
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    assert all("count" not in page for page in pages)
    back = client.get(pages[-1]["previous"]).json()
    assert [row["id"] for row in back["results"]] == expected[3:6]
    assert [row["id"] for row in client.get(back["previous"]).json()["results"]] == expected[:3]


def test_episode_list_cursor_keeps_the_filters(api, world, session):
    ready = [ready_episode_row(session) for _ in range(3)]
    rejected = ready_episode_row(session)
    Episode.objects.filter(pk=rejected.pk).update(state=Episode.State.REJECTED)

    ids, pages = _walk(api(world.a.researcher), "/api/v1/episodes/?state=ready&limit=2")

    assert sorted(ids) == sorted(str(e.pk) for e in ready)
    assert "state=ready" in pages[0]["next"]


def test_a_page_does_not_move_when_episodes_arrive_while_a_client_pages(api, world, session):
    first = [ready_episode_row(session) for _ in range(4)]
    client = api(key=world.a.robot_key)
    page = client.get("/api/v1/episodes/?limit=2").json()
    ready_episode_row(session)  # newer than every episode listed so far

    rest = client.get(page["next"]).json()["results"]

    listed = [row["id"] for row in page["results"] + rest]
    assert sorted(listed) == sorted(str(e.pk) for e in first)


@pytest.mark.parametrize(
    "query, field",
    [
        ("offset=50", "offset"),
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("cursor=%C2%B2", "cursor"),
        ("limit=%C2%B2", "limit"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ],
)
def test_episode_list_refuses_an_offset_and_bad_paging_values(api, world, session, query, field):
    response = api(world.a.researcher).get(f"/api/v1/episodes/?{query}")

    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]


# --- A robot records into a session by its code ---------------------------------------------


def test_a_robot_finds_the_consoles_session_by_its_code(api, world, session):
    response = api(key=world.a.robot_key).get(f"/api/v1/sessions/by-code/{session.code.lower()}")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["id"], body["code"], body["status"]) == (str(session.pk), session.code, "open")


def test_a_session_code_of_another_team_is_unknown(api, world, session):
    response = api(key=world.b.robot_key).get(f"/api/v1/sessions/by-code/{session.code}")
    assert response.status_code == 404
    assert response.json()["detail"].startswith(f"No session with code '{session.code}'")


def test_a_session_code_of_a_closed_session_is_refused(api, world, session):
    api(world.a.operator).post(f"/api/v1/sessions/{session.pk}/close")
    response = api(key=world.a.robot_key).get(f"/api/v1/sessions/by-code/{session.code}")
    assert response.status_code == 409
    assert response.json()["error"] == "session_closed"
    assert "open a new session in the console" in response.json()["detail"]


def test_a_session_code_of_another_robot_is_refused(api, world, session):
    from core.services import robots

    _, key = robots.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    response = api(key=key).get(f"/api/v1/sessions/by-code/{session.code}")
    assert response.status_code == 403
    assert f"records on robot '{world.a.robot.name}'" in response.json()["detail"]


def test_a_robots_calls_mark_it_seen_at_most_every_10_s(api, world):
    from datetime import timedelta

    from django.utils import timezone

    from core.models import Robot

    client = api(key=world.a.robot_key)
    client.get("/api/v1/whoami")
    seen = Robot.objects.get(pk=world.a.robot.pk).last_seen_at
    assert seen is not None and timezone.now() - seen < timedelta(seconds=5)
    client.get("/api/v1/whoami")
    assert Robot.objects.get(pk=world.a.robot.pk).last_seen_at == seen  # no second write
    Robot.objects.filter(pk=world.a.robot.pk).update(last_seen_at=seen - timedelta(seconds=11))
    client.get("/api/v1/whoami")
    assert Robot.objects.get(pk=world.a.robot.pk).last_seen_at > seen


# --- Labels that respect the checks ---------------------------------------------------------


def test_a_success_label_against_a_failed_check_is_409_until_confirmed(api, world, checked_session):
    from tests.teleop.recordings import checked_episode

    episode = checked_episode(checked_session, "failed")
    client = api(world.a.operator)
    url = f"/api/v1/episodes/{episode.pk}/labels"
    refused = client.post(url, {"outcome": "success"})
    assert refused.status_code == 409
    assert refused.json()["error"] == "check_disagrees"
    assert "confirm" in refused.json()["detail"].lower()
    assert not client.get(url).json()

    saved = client.post(url, {"outcome": "success", "confirm_disagreement": True})
    assert saved.status_code == 201, saved.json()
    assert saved.json()["check_disagrees"] is True
    assert client.get(f"/api/v1/episodes/{episode.pk}/").json()["label"]["check_disagrees"]


def test_contradictory_labels_are_refused_over_the_api(api, world, session):
    episode = ready_episode_row(session)
    client = api(world.a.operator)
    url = f"/api/v1/episodes/{episode.pk}/labels"
    coded = client.post(url, {"outcome": "success", "failure_codes": ["dropped"]})
    assert coded.status_code == 400 and "failure_codes" in coded.json()["fields"]
    gap = client.post(url, {"outcome": "partial", "stages_reached": ["lift"]})
    assert gap.status_code == 400 and "stages_reached" in gap.json()["fields"]
    assert "'reach', which comes before it" in gap.json()["detail"]
    assert client.get(url).json() == []
