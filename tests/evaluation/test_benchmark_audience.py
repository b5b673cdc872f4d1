"""A benchmark shows others only what they may see: its leaderboard pools, for each reader,
the campaigns and policies that reader may see; and a public or shared benchmark cannot
reference a task or condition some of its readers may not see."""

import pytest

from core.models import Visibility
from core.services import conditions as condition_services
from evaluation.models import Benchmark, LeaderboardSnapshot
from evaluation.services import benchmarks, leaderboards
from tests.evaluation.factories import (
    make_campaign,
    make_conditions,
    make_policy_version,
    play_campaign,
)

pytestmark = pytest.mark.django_db


def _error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"] == code, response.json()
    return response.json()


# --- 3. Leaderboards of a shared benchmark --------------------------------------------------


@pytest.fixture
def shared_board(world):
    """Team a's benchmark shared with team b, with two finished campaigns of team a on it: a
    private one running a private policy, and one shared with team b running a public one."""
    benchmark = benchmarks.create_benchmark(
        actor=world.a.researcher,
        team=world.a.team,
        name="shared-bench",
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        trials_per_cell=1,
        visibility=Visibility.SHARED,
        shared_with=[world.b.team],
    )
    benchmark = benchmarks.publish_benchmark(actor=world.a.researcher, benchmark=benchmark)
    secret = make_policy_version(world.a, name="secret-private-policy")
    shown = make_policy_version(world.a, name="open-public-policy", visibility=Visibility.PUBLIC)
    private = make_campaign(world.a, policy_versions=[secret], benchmark=benchmark)
    shared = make_campaign(
        world.a,
        policy_versions=[shown],
        benchmark=benchmark,
        visibility=Visibility.SHARED,
        shared_with=[world.b.team],
    )
    for campaign in (private, shared):
        play_campaign(campaign, world.a.robot, lambda trial: {"outcome": "success"})
    leaderboards.refresh_leaderboard(
        scope=LeaderboardSnapshot.Scope.BENCHMARK, object_id=benchmark.pk
    )
    return benchmark, private, shared, secret, shown


def _team_b_readers(world, api):
    return {
        "operator": api(world.b.operator),
        "robot": api(key=world.b.robot_key),
        "admin": api(world.b.admin),
    }


def test_another_team_reads_a_shared_benchmark_board_without_the_private_campaigns(
    api, world, shared_board
):
    benchmark, private, shared, secret, shown = shared_board
    base = f"/api/v1/benchmarks/{benchmark.pk}"
    for who, client in _team_b_readers(world, api).items():
        board = client.get(f"{base}/leaderboard")
        assert board.status_code == 200, who
        data = board.json()
        assert [row["policy"] for row in data["rows"]] == ["open-public-policy"], who
        assert data["campaigns"] == [str(shared.pk)], who
        assert "secret-private-policy" not in board.content.decode(), who
        assert str(secret.pk) not in board.content.decode(), who
        listed = client.get(f"{base}/leaderboard.csv").content.decode()
        assert "secret-private-policy" not in listed and "open-public-policy" in listed, who
        behind = client.get(f"{base}/leaderboard/trials?limit=100").json()["results"]
        assert behind and {t["campaign"] for t in behind} == {str(shared.pk)}, who
        assert (
            client.get(f"{base}/leaderboard/trials?policy_version={secret.pk}").json()["results"]
            == []
        ), who
    # The pages too (robots have no pages).
    for user in (world.b.operator, world.b.admin):
        from django.test import Client

        client = Client()
        client.force_login(user)
        page = client.get(f"/leaderboards/{benchmark.pk}/")
        assert page.status_code == 200
        assert "secret-private-policy" not in page.content.decode()
        compare = client.get(f"/leaderboards/{benchmark.pk}/compare?a={secret.pk}&b={shown.pk}")
        assert "secret-private-policy" not in compare.content.decode()
    # The owner's team still reads both.
    data = api(world.a.researcher).get(f"{base}/leaderboard").json()
    assert {row["policy"] for row in data["rows"]} == {
        "open-public-policy",
        "secret-private-policy",
    }


def test_a_task_or_condition_made_less_visible_later_is_masked_on_the_board(
    api, world, shared_board
):
    benchmark, *_ = shared_board
    condition = benchmark.cells.first().condition
    condition_services.update_condition(
        actor=world.a.admin, condition=condition, visibility=Visibility.PRIVATE
    )
    data = api(world.b.admin).get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    hidden = next(c for c in data["conditions"] if c["id"] == str(condition.pk))
    assert condition.level not in (hidden["label"], hidden["level"])
    assert hidden["label"].startswith("hidden condition")


def test_the_benchmarks_own_answer_masks_them_as_its_board_does(api, world, shared_board):
    benchmark, *_ = shared_board
    condition = benchmark.cells.first().condition
    condition_services.update_condition(
        actor=world.a.admin, condition=condition, visibility=Visibility.PRIVATE
    )
    board = api(world.b.admin).get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    placeholder = next(c["label"] for c in board["conditions"] if c["id"] == str(condition.pk))
    for answer in (
        api(world.b.admin).get(f"/api/v1/benchmarks/{benchmark.pk}/").json(),
        next(
            b
            for b in api(world.b.admin).get("/api/v1/benchmarks/?limit=100").json()["results"]
            if b["id"] == str(benchmark.pk)
        ),
    ):
        labels = {
            c["condition_label"] for c in answer["cells"] if c["condition"] == str(condition.pk)
        }
        assert labels == {placeholder}
        assert all(condition.level not in str(cell) for cell in answer["cells"])
    # The owner's team still reads the name.
    own = api(world.a.researcher).get(f"/api/v1/benchmarks/{benchmark.pk}/").json()
    assert str(condition) in {c["condition_label"] for c in own["cells"]}


# --- 4. A public or shared benchmark references only what its readers may see --------------


def _design(world, **extra):
    return {
        "team": world.a.team.slug,
        "name": "bench-x",
        "task_versions": [str(world.a.task.versions.get().pk)],
        "conditions": [str(c.pk) for c in make_conditions(world.a)],
        "trials_per_cell": 1,
    } | extra


def test_a_public_benchmark_cannot_reference_a_private_task(api, world):
    design = _design(
        world,
        visibility="public",
        task_versions=[str(world.a.private_task.versions.get().pk)],
    )
    body = _error(
        api(world.a.researcher).post("/api/v1/benchmarks/", design, format="json"),
        400,
        "design_not_visible",
    )
    assert "task_versions" in body["fields"]
    assert not Benchmark.objects.filter(name="bench-x").exists()


def test_a_shared_benchmark_cannot_reference_a_condition_its_readers_cannot_see(api, world):
    private = condition_services.create_condition(
        actor=world.a.admin,
        team=world.a.team,
        factor="clutter",
        level="heavy",
        visibility=Visibility.PRIVATE,
    )
    design = _design(
        world, visibility="shared", shared_with=[world.b.team.slug], conditions=[str(private.pk)]
    )
    body = _error(
        api(world.a.researcher).post("/api/v1/benchmarks/", design, format="json"),
        400,
        "design_not_visible",
    )
    assert "clutter: heavy" in body["detail"] and "conditions" in body["fields"]
    # Shared with team b as well, the condition may be used.
    condition_services.update_condition(
        actor=world.a.admin,
        condition=private,
        visibility=Visibility.SHARED,
        shared_with=[world.b.team],
    )
    response = api(world.a.researcher).post("/api/v1/benchmarks/", design, format="json")
    assert response.status_code == 201, response.content


def test_a_private_benchmark_made_public_must_reference_public_tasks_only(api, world):
    client = api(world.a.researcher)
    design = _design(world, task_versions=[str(world.a.private_task.versions.get().pk)])
    created = client.post("/api/v1/benchmarks/", design, format="json")
    assert created.status_code == 201, created.content  # private: the team's own tasks
    path = f"/api/v1/benchmarks/{created.json()['id']}/"
    _error(client.patch(path, {"visibility": "public"}, format="json"), 400, "design_not_visible")
    assert client.get(path).json()["visibility"] == "private"


def test_publishing_checks_again_after_a_condition_became_private(api, world):
    client = api(world.a.researcher)
    created = client.post("/api/v1/benchmarks/", _design(world, visibility="public"), format="json")
    assert created.status_code == 201, created.content
    benchmark = Benchmark.objects.get(pk=created.json()["id"])
    condition_services.update_condition(
        actor=world.a.admin,
        condition=benchmark.cells.first().condition,
        visibility=Visibility.PRIVATE,
    )
    publish = client.post(f"/api/v1/benchmarks/{benchmark.pk}/publish")
    _error(publish, 400, "design_not_visible")
    benchmark.refresh_from_db()
    assert not benchmark.is_published


# --- A visible campaign of policies the reader may not see ----------------------------------


def test_a_campaign_shows_aliases_to_a_reader_who_may_not_see_its_policies(world, api):
    """Team a's campaign, shared with team b and finished (so not blinded by itself), runs a
    private policy of team a: team b reads its board and trials with aliases, never the
    policy's name; team a's researcher reads the names."""
    secret = make_policy_version(world.a, name="secret-private-policy")
    campaign = make_campaign(
        world.a,
        policy_versions=[secret],
        visibility=Visibility.SHARED,
        shared_with=[world.b.team],
        blinded=False,
    )
    play_campaign(campaign, world.a.robot, lambda trial: {"outcome": "success"})
    leaderboards.refresh_leaderboard(
        scope=LeaderboardSnapshot.Scope.CAMPAIGN, object_id=campaign.pk
    )
    base = f"/api/v1/campaigns/{campaign.pk}"
    for reader in (api(world.b.researcher), api(world.b.admin)):
        for path in ("/", "/leaderboard", "/leaderboard.csv"):
            answer = reader.get(base + path)
            assert answer.status_code == 200, (path, answer.content)
            assert b"secret-private-policy" not in answer.content, path
            assert str(secret.pk).encode() not in answer.content, path
    owner = api(world.a.researcher).get(base + "/leaderboard")
    assert b"secret-private-policy" in owner.content
