"""Evaluation API: who sees and does what, blinding in every view an operator or robot gets,
the error format, and nothing stored on a refusal."""

import csv
import io
import json

import pytest

from core.models import Visibility
from core.services import operators, robots
from evaluation.models import Benchmark, Campaign, Policy, PolicyVersion, Trial, TrialReport
from evaluation.services import campaigns, leaderboards, policies, trials
from tests.evaluation.factories import (
    ARM_REQUIRES,
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    robot_actor,
)

pytestmark = pytest.mark.django_db


def _error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail", "fields"} and body["error"] == code, body
    return body


@pytest.fixture
def blinded(world):
    """A running blinded campaign of team a with two named policies, and its operator."""
    versions = [
        make_policy_version(world.a, name="diffusion-secret"),
        make_policy_version(world.a, name="act-secret"),
    ]
    campaign = make_campaign(world.a, policy_versions=versions, trials_per_cell=2)
    operators.create_operator(actor=world.a.admin, team=world.a.team, user=world.a.operator)
    return campaign, versions


def _hidden(versions):
    """What would tell a blinded viewer which policy runs: names and ids."""
    return {
        text
        for version in versions
        for text in (version.policy.name, str(version.pk), str(version.policy_id))
    }


# --- Creating a campaign through the API ----------------------------------------------------


def test_a_researcher_runs_the_whole_setup_over_the_api(api, world):
    client = api(world.a.researcher)
    policy = client.post("/api/v1/policies/", {"team": world.a.team.slug, "name": "act"})
    assert policy.status_code == 201, policy.json()
    version = client.post(
        f"/api/v1/policies/{policy.json()['id']}/versions",
        {"label": "v1", "checkpoint_sha256": "ab" * 32, "requires": ARM_REQUIRES},
    )
    assert version.status_code == 201, version.json()
    conditions = make_conditions(world.a)
    benchmark = client.post(
        "/api/v1/benchmarks/",
        {
            "team": world.a.team.slug,
            "name": "pick",
            "task_versions": [str(world.a.task.versions.get().pk)],
            "conditions": [str(c.pk) for c in conditions],
            "trials_per_cell": 3,
            "visibility": "public",
        },
    )
    assert benchmark.status_code == 201, benchmark.json()
    benchmark_id = benchmark.json()["id"]
    assert len(benchmark.json()["cells"]) == 2 and not benchmark.json()["published"]
    published = client.post(f"/api/v1/benchmarks/{benchmark_id}/publish")
    assert published.json()["published"] is True
    frozen = client.patch(f"/api/v1/benchmarks/{benchmark_id}/", {"trials_per_cell": 4})
    _error(frozen, 409, "benchmark_frozen")
    campaign = client.post(
        "/api/v1/campaigns/",
        {
            "team": world.a.team.slug,
            "name": "pick round 1",
            "benchmark": benchmark_id,
            "policy_versions": [version.json()["id"]],
            "robots": [str(world.a.robot.pk)],
            "seed": 42,
        },
    )
    assert campaign.status_code == 201, campaign.json()
    body = campaign.json()
    assert body["status"] == "draft" and body["seed"] == 42 and body["blinded"] is True
    started = client.post(f"/api/v1/campaigns/{body['id']}/start")
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert len(started.json()["schedule_fingerprint"]) == 64
    progress = client.get(f"/api/v1/campaigns/{body['id']}/progress").json()
    assert progress["planned"] == 6 and progress["remaining"] == 6


def test_bad_input_is_a_4xx_in_the_error_format_and_nothing_is_stored(api, world):
    client = api(world.a.researcher)
    _error(
        client.post("/api/v1/policies/", {"team": world.a.team.slug, "name": "x", "nmae": 1}),
        400,
        "unknown_field",
    )
    policy = policies.create_policy(actor=world.a.researcher, team=world.a.team, name="act")
    body = _error(
        client.post(
            f"/api/v1/policies/{policy.pk}/versions",
            {"label": "v1", "checkpoint_sha256": "not-a-hash"},
        ),
        400,
        "invalid",
    )
    assert "checkpoint_sha256" in body["fields"]
    needs_more = {"observations": {"qpos": [14]}, "cameras": ["cam_left"], "action": [14]}
    version = make_policy_version(world.a, requires=needs_more)
    body = _error(
        client.post(
            "/api/v1/campaigns/",
            {
                "team": world.a.team.slug,
                "name": "c",
                "task_versions": [str(world.a.task.versions.get().pk)],
                "conditions": [str(c.pk) for c in make_conditions(world.a)],
                "trials_per_cell": 2,
                "policy_versions": [str(version.pk)],
                "robots": [str(world.a.robot.pk)],
            },
        ),
        400,
        "requirements_not_met",
    )
    assert "camera 'cam_left' is missing" in body["detail"]
    _error(
        client.post(
            "/api/v1/campaigns/",
            {
                "team": world.a.team.slug,
                "name": "c",
                "policy_versions": [str(version.pk)],
                "robots": ["not-a-uuid"],
            },
        ),
        400,
        "invalid",
    )
    _error(
        client.post("/api/v1/benchmarks/", b"[" * 200_000, content_type="application/json"),
        400,
        "parse_error",
    )
    assert not Campaign.objects.exists() and not Benchmark.objects.exists()
    assert Policy.objects.count() == 2 and PolicyVersion.objects.count() == 1


def test_operators_and_robots_do_not_define_policies_or_campaigns(api, world):
    _error(
        api(world.a.operator).post("/api/v1/policies/", {"team": world.a.team.slug, "name": "x"}),
        403,
        "permission_denied",
    )
    response = api(key=world.a.robot_key).post(
        "/api/v1/policies/", {"team": world.a.team.slug, "name": "x"}
    )
    assert response.status_code == 403
    assert api(key=world.a.robot_key).get("/api/v1/policies/").status_code == 403
    assert not Policy.objects.exists()


# --- Visibility -----------------------------------------------------------------------------


def test_another_teams_private_campaign_is_a_404(api, world, blinded):
    campaign, _ = blinded
    trial = campaign.trials.first()
    for path in (
        f"/api/v1/campaigns/{campaign.pk}/",
        f"/api/v1/campaigns/{campaign.pk}/leaderboard",
        f"/api/v1/campaigns/{campaign.pk}/progress",
        f"/api/v1/trials/{trial.pk}/",
    ):
        assert api(world.a.researcher).get(path).status_code == 200, path
        _error(api(world.b.admin).get(path), 404, "not_found")
        _error(api(key=world.b.robot_key).get(path), 404, "not_found")
    _error(
        api(key=world.b.robot_key).post(f"/api/v1/campaigns/{campaign.pk}/next-trial"),
        404,
        "not_found",
    )
    assert api(world.b.admin).get("/api/v1/trials/").json()["results"] == []
    assert api(world.b.admin).get("/api/v1/campaigns/").json()["results"] == []


def test_anonymous_callers_see_public_leaderboards_only(api, world):
    version = world.a.task.versions.get()
    public = make_benchmark(world.a, task_versions=[version], conditions=make_conditions(world.a))
    private = make_benchmark(
        world.a,
        task_versions=[version],
        conditions=make_conditions(world.a),
        visibility=Visibility.PRIVATE,
    )
    anonymous = api()
    assert anonymous.get(f"/api/v1/benchmarks/{public.pk}/").status_code == 200
    board = anonymous.get(f"/api/v1/benchmarks/{public.pk}/leaderboard")
    assert board.status_code == 200 and board.json()["rows"] == []
    assert anonymous.get(f"/api/v1/benchmarks/{public.pk}/leaderboard/trials").status_code == 200
    for path in (
        f"/api/v1/benchmarks/{private.pk}/",
        f"/api/v1/benchmarks/{private.pk}/leaderboard",
    ):
        _error(anonymous.get(path), 404, "not_found")
    listed = anonymous.get("/api/v1/benchmarks/").json()["results"]
    assert [b["id"] for b in listed] == [str(public.pk)]
    assert anonymous.get("/api/v1/campaigns/").status_code in (401, 403)
    assert anonymous.get("/api/v1/trials/").status_code in (401, 403)
    _error(anonymous.post("/api/v1/benchmarks/", {}), 401, "not_authenticated")


def test_a_public_leaderboard_traces_to_its_trials_and_names_no_person(api, world):
    benchmark = make_benchmark(
        world.a, task_versions=[world.a.task.versions.get()], conditions=make_conditions(world.a)
    )
    version = make_policy_version(world.a, name="open-act", visibility=Visibility.PUBLIC)
    campaign = make_campaign(
        world.a, policy_versions=[version], benchmark=benchmark, visibility=Visibility.PUBLIC
    )
    operator = operators.create_operator(
        actor=world.a.admin, team=world.a.team, user=world.a.operator, full_name="Ada Lovelace"
    )
    actor = robot_actor(world.a.robot)
    while (trial := trials.next_trial(actor=actor, campaign=campaign)) is not None:
        trials.report_trial_result(
            actor=actor, trial=trial, outcome="success", operator_code=operator.code
        )
    leaderboards.refresh_leaderboard(scope="benchmark", object_id=benchmark.pk)
    board = api().get(f"/api/v1/benchmarks/{benchmark.pk}/leaderboard").json()
    (row,) = board["rows"]
    assert row["policy"] == "open-act" and row["successes"] == row["trials"] == 4
    text = json.dumps(board)
    for personal in ("Ada", world.a.operator.username, world.a.researcher.username):
        assert personal not in text
    cell = row["cells"][0]
    listed = (
        api()
        .get(
            f"/api/v1/benchmarks/{benchmark.pk}/leaderboard/trials",
            {
                "policy_version": row["policy_version"],
                "task_version": cell["task"],
                "condition": cell["condition"],
            },
        )
        .json()
    )
    assert listed["count"] == cell["trials"] == 2
    assert {t["outcome"] for t in listed["results"]} == {"success"}


# --- Blinding -------------------------------------------------------------------------------


def test_the_operators_and_robots_views_name_no_policy(api, world, blinded):
    campaign, versions = blinded
    hidden = _hidden(versions)
    robot = api(key=world.a.robot_key)
    next_trial = robot.post(f"/api/v1/campaigns/{campaign.pk}/next-trial")
    assert next_trial.status_code == 200, next_trial.json()
    trial = next_trial.json()["trial"]
    assert trial["alias"].startswith("policy ") and trial["load"]["checkpoint_sha256"]
    assert trial["condition"]["reset_instructions"].startswith("Set the lights")
    operator = api(world.a.operator)
    operator.post(f"/api/v1/trials/{trial['id']}/result", {"outcome": "success"})
    views = [
        next_trial,
        robot.get(f"/api/v1/campaigns/{campaign.pk}/"),
        robot.get(f"/api/v1/trials/{trial['id']}/"),
        operator.get(f"/api/v1/campaigns/{campaign.pk}/"),
        operator.get("/api/v1/campaigns/"),
        operator.get("/api/v1/trials/", {"campaign": str(campaign.pk)}),
        operator.get(f"/api/v1/trials/{trial['id']}/"),
        operator.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard"),
        operator.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard.csv"),
        operator.get(f"/api/v1/campaigns/{campaign.pk}/progress"),
        operator.get(
            f"/api/v1/campaigns/{campaign.pk}/compare", {"a": "policy A", "b": "policy B"}
        ),
    ]
    for response in views:
        assert response.status_code == 200, (response.request["PATH_INFO"], response.content)
        text = response.content.decode()
        leaked = [h for h in hidden if h in text]
        assert not leaked, (response.request["PATH_INFO"], leaked)
    assert "seed" not in operator.get(f"/api/v1/campaigns/{campaign.pk}/").json()
    _error(
        operator.get(
            "/api/v1/trials/", {"campaign": str(campaign.pk), "policy_version": str(versions[0].pk)}
        ),
        400,
        "invalid",
    )
    _error(
        operator.get(
            f"/api/v1/campaigns/{campaign.pk}/compare",
            {"a": str(versions[0].pk), "b": str(versions[1].pk)},
        ),
        400,
        "invalid",
    )


def test_researchers_see_the_policies_and_everyone_does_once_the_campaign_is_done(
    api, world, blinded
):
    campaign, versions = blinded
    researcher = api(world.a.researcher).get(f"/api/v1/campaigns/{campaign.pk}/").json()
    assert {p["policy"] for p in researcher["policy_versions"]} == {
        "diffusion-secret",
        "act-secret",
    }
    assert {p["alias"] for p in researcher["policy_versions"]} == {"policy A", "policy B"}
    campaigns.finish_campaign(actor=world.a.researcher, campaign=campaign)
    operator_view = api(world.a.operator).get(f"/api/v1/campaigns/{campaign.pk}/").json()
    assert operator_view["blinded_view"] is False and "policy_versions" in operator_view


def test_an_unblinded_campaign_tells_the_robot_the_policy_it_loads(api, world):
    version = make_policy_version(world.a, name="open-act")
    campaign = make_campaign(world.a, policy_versions=[version], blinded=False)
    trial = api(key=world.a.robot_key).post(f"/api/v1/campaigns/{campaign.pk}/next-trial").json()
    assert trial["trial"]["load"]["policy"] == "open-act"
    assert trial["trial"]["load"]["policy_version"] == str(version.pk)


# --- Reporting ------------------------------------------------------------------------------


def test_a_robot_report_is_idempotent_with_a_key(api, world, blinded):
    campaign, _ = blinded
    robot = api(key=world.a.robot_key)
    trial = robot.post(f"/api/v1/campaigns/{campaign.pk}/next-trial").json()["trial"]
    body = {"outcome": "failure", "failure_codes": ["dropped"], "stages_reached": ["reach"]}
    first = robot.post(trial["report_url"], body, HTTP_IDEMPOTENCY_KEY="report-1")
    again = robot.post(trial["report_url"], body, HTTP_IDEMPOTENCY_KEY="report-1")
    assert first.status_code == again.status_code == 200, first.json()
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert first.json()["stage_score"] == 0.25
    assert TrialReport.objects.filter(trial_id=trial["id"]).count() == 1
    # The same report without its key (it was lost with a failed request) is that report...
    same = robot.post(trial["report_url"], body)
    assert same.status_code == 200 and same.json()["id"] == trial["id"]
    assert TrialReport.objects.filter(trial_id=trial["id"]).count() == 1
    # ...another one is refused: corrections are made by people.
    other = {**body, "outcome": "success"}
    _error(robot.post(trial["report_url"], other), 409, "trial_already_reported")


def test_a_robot_cannot_see_or_report_another_robots_trial(api, world, blinded):
    campaign, _ = blinded
    _, key = robots.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    trial = api(key=world.a.robot_key).post(f"/api/v1/campaigns/{campaign.pk}/next-trial").json()
    path = f"/api/v1/trials/{trial['trial']['id']}/result"
    _error(api(key=key).post(path, {"outcome": "success"}), 404, "not_found")
    _error(api(key=world.b.robot_key).post(path, {"outcome": "success"}), 404, "not_found")
    not_in_campaign = api(key=key).post(f"/api/v1/campaigns/{campaign.pk}/next-trial")
    _error(not_in_campaign, 404, "not_found")  # a robot sees only the campaigns it runs in
    assert Trial.objects.get(pk=trial["trial"]["id"]).state == "assigned"


def test_an_operator_corrects_an_outcome_and_the_history_shows_pseudonyms(api, world, blinded):
    campaign, _ = blinded
    robot = api(key=world.a.robot_key)
    trial = robot.post(f"/api/v1/campaigns/{campaign.pk}/next-trial").json()["trial"]
    robot.post(trial["report_url"], {"outcome": "failure"})
    operator = api(world.a.operator)
    corrected = operator.post(
        f"/api/v1/trials/{trial['id']}/result",
        {"outcome": "success", "notes": "lifted; detector missed it"},
    )
    assert corrected.status_code == 200 and corrected.json()["outcome"] == "success"
    history = operator.get(f"/api/v1/trials/{trial['id']}/reports").json()
    assert [(h["outcome"], h["current"]) for h in history] == [
        ("success", True),
        ("failure", False),
    ]
    assert history[0]["reporter"].startswith("operator:OP-")
    assert history[1]["reporter"] == f"robot:{world.a.robot.name}"
    assert world.a.operator.username not in json.dumps(history)
    body = _error(
        operator.post(f"/api/v1/trials/{trial['id']}/result", {"valid": False}), 400, "invalid"
    )
    assert "invalid_reason" in body["fields"]
    assert TrialReport.objects.filter(trial_id=trial["id"]).count() == 2


def test_the_leaderboard_downloads_as_csv(api, world):
    version = make_policy_version(world.a, name="act")
    campaign = make_campaign(world.a, policy_versions=[version], blinded=False)
    actor = robot_actor(world.a.robot)
    while (trial := trials.next_trial(actor=actor, campaign=campaign)) is not None:
        trials.report_trial_result(actor=actor, trial=trial, outcome="success")
    response = api(world.a.researcher).get(f"/api/v1/campaigns/{campaign.pk}/leaderboard.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows[0]["policy"] == "act" and rows[0]["trials"] == "4" and rows[0]["rank"] == "1"
    assert float(rows[0]["rate"]) == 1.0


def test_comparing_two_policies_over_the_api(api, world):
    a = make_policy_version(world.a, name="a")
    b = make_policy_version(world.a, name="b")
    campaign = make_campaign(world.a, policy_versions=[a, b], mode="paired", trials_per_cell=2)
    actor = robot_actor(world.a.robot)
    while (trial := trials.next_trial(actor=actor, campaign=campaign)) is not None:
        outcome = "success" if trial.policy_version_id == a.pk else "failure"
        trials.report_trial_result(actor=actor, trial=trial, outcome=outcome)
    response = api(world.a.researcher).get(
        f"/api/v1/campaigns/{campaign.pk}/compare", {"a": str(a.pk), "b": str(b.pk)}
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["unpaired"]["difference"] == 1.0 and body["paired"]["a_only"] == 4
    assert body["sequential"]["state"] in {"continue", "inconclusive", "a_better"}
    _error(
        api(world.a.researcher).get(f"/api/v1/campaigns/{campaign.pk}/compare", {"a": str(a.pk)}),
        400,
        "invalid",
    )
