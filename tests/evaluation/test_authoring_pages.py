"""The authoring pages of evaluation: policies, benchmarks (publish), the campaign planner, and
start, finish and unblind on the campaign page. Each as anonymous, another team, an operator,
a researcher and an admin; refusals beside the field with nothing stored."""

import re

import pytest
from django.test import Client

from core.models import AuditEvent, Visibility
from core.services import operators
from evaluation import planner
from evaluation.models import Benchmark, Campaign, Policy, PolicyVersion
from proving_ground.stats.power import exact_power, exact_trials_per_policy
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
)

pytestmark = pytest.mark.django_db

SHA = "ab" * 32


def _as(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _errors(response, field) -> str:
    """The text of the error list rendered beside `field` (its id is id_<field>_error)."""
    html = response.content.decode()
    marker = f'id="id_{field}_error"'
    assert marker in html, f"no error beside {field}"
    start = html.index(marker)
    return html[start : html.index("</ul>", start)]


# --- Who may open the pages ------------------------------------------------------------------

NEW_PAGES = ["/policies/new", "/benchmarks/new", "/campaigns/new", "/campaigns/plan"]


def test_anonymous_visitors_are_sent_to_sign_in(world):
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version], start=False)
    paths = NEW_PAGES + [
        f"/policies/{version.policy_id}/versions/new",
        f"/campaigns/{campaign.pk}/start",
    ]
    for path in paths:
        for response in (_as().get(path), _as().post(path)):
            assert response.status_code == 302, path
            assert response["Location"].startswith("/accounts/login/"), path
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT


def test_another_team_gets_404_for_team_a_objects(world):
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version], start=False)
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        visibility=Visibility.PRIVATE,
        publish=False,
    )
    client = _as(world.b.researcher)
    for path in [
        f"/policies/{version.policy_id}/versions/new",
        f"/benchmarks/{benchmark.pk}/",
        f"/benchmarks/{benchmark.pk}/publish",
        f"/campaigns/{campaign.pk}/start",
        f"/campaigns/{campaign.pk}/finish",
        f"/campaigns/{campaign.pk}/unblind",
    ]:
        assert client.get(path).status_code == 404, path
        assert client.post(path).status_code == 404, path
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT
    assert not Benchmark.objects.get(pk=benchmark.pk).is_published


def test_operators_get_no_form(world):
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version], start=False)
    client = _as(world.a.operator)
    for path in NEW_PAGES + [f"/policies/{version.policy_id}/versions/new"]:
        assert client.get(path).status_code == 403, path
    assert client.post("/policies/new", {"policy-name": "x"}).status_code == 403
    assert client.post(f"/campaigns/{campaign.pk}/start").status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT
    listing = client.get("/campaigns/").content.decode()
    assert "/campaigns/new" not in listing
    console = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'href="/campaigns/{campaign.pk}/start"' not in console


def test_authors_are_offered_new_buttons(world):
    for user in (world.a.researcher, world.a.admin):
        client = _as(user)
        assert 'href="/campaigns/new"' in client.get("/campaigns/").content.decode()
        assert 'href="/policies/new"' in client.get("/policies/").content.decode()
        assert 'href="/benchmarks/new"' in client.get("/benchmarks/").content.decode()
        for path in NEW_PAGES:
            assert client.get(path).status_code == 200, path


# --- Policies ---------------------------------------------------------------------------------


def _policy_post(world, **overrides):
    data = {
        "policy-team": world.a.team.pk,
        "policy-name": "act-pick",
        "policy-visibility": Visibility.PRIVATE,
        "version-label": "v1",
        "version-checkpoint_sha256": SHA,
        "version-checkpoint_uri": "s3://lab/act/v1.ckpt",
        "version-observations": "qpos: 7\nimage: 480, 640, 3\neffort: any",
        "version-cameras": "cam_high, cam_left",
        "version-action": "7",
    }
    return data | overrides


def test_a_researcher_registers_a_policy_with_its_first_version(world):
    response = _as(world.a.researcher).post("/policies/new", _policy_post(world))
    assert response.status_code == 302
    version = PolicyVersion.objects.get(policy__name="act-pick")
    assert version.policy.team == world.a.team
    assert version.checkpoint_sha256 == SHA
    assert version.requires == {
        "observations": {"qpos": [7], "image": [480, 640, 3], "effort": None},
        "cameras": ["cam_high", "cam_left"],
        "action": [7],
    }


def test_a_policy_without_checkpoint_or_server_is_refused_beside_the_field(world):
    response = _as(world.a.researcher).post(
        "/policies/new", _policy_post(world, **{"version-checkpoint_sha256": ""})
    )
    assert response.status_code == 400
    assert "SHA-256 or a policy server URL" in _errors(response, "version-checkpoint_sha256")
    assert not Policy.objects.filter(name="act-pick").exists()


def test_the_services_contract_refusal_shows_beside_observations_and_keeps_nothing(world):
    """The form passes the shape on; the service refuses it, and the policy it had already
    created is rolled back with the version."""
    response = _as(world.a.researcher).post(
        "/policies/new", _policy_post(world, **{"version-observations": "qpos: 0"})
    )
    assert response.status_code == 400
    assert "observations/qpos" in _errors(response, "version-observations")
    assert not Policy.objects.filter(name="act-pick").exists()


def test_a_taken_policy_name_is_refused_beside_the_name(world):
    make_policy_version(world.a, name="act-pick")
    response = _as(world.a.admin).post("/policies/new", _policy_post(world))
    assert response.status_code == 400
    assert "already" in _errors(response, "policy-name")
    assert Policy.objects.filter(name="act-pick").count() == 1


def test_an_admin_adds_a_version_and_a_taken_label_is_refused(world):
    version = make_policy_version(world.a)
    client = _as(world.a.admin)
    path = f"/policies/{version.policy_id}/versions/new"
    data = {"label": "v2", "server_url": "https://policy.lab:8000/act"}
    assert client.post(path, data).status_code == 302
    assert version.policy.versions.filter(label="v2", server_url=data["server_url"]).exists()
    response = client.post(path, data)
    assert response.status_code == 400
    assert "already" in _errors(response, "label")
    assert version.policy.versions.count() == 2


# --- Benchmarks -------------------------------------------------------------------------------


def _benchmark_post(world, conditions, **overrides):
    data = {
        "team": world.a.team.pk,
        "name": "Tabletop",
        "visibility": Visibility.PRIVATE,
        "trials_per_cell": 5,
        "scoring_version": "pg-score/2",
        "task_versions": [world.a.task.versions.get().pk],
        "conditions": [c.pk for c in conditions],
    }
    return data | overrides


def test_the_benchmark_form_offers_the_newest_scoring_and_not_the_own_team(world):
    html = _as(world.a.researcher).get("/benchmarks/new").content.decode()
    assert '<option value="pg-score/2" selected>' in html
    assert f'name="shared_with" value="{world.a.team.pk}"' not in html
    assert f'name="shared_with" value="{world.b.team.pk}"' in html


def test_the_task_version_in_the_address_is_ticked_in_the_grid(world):
    version = world.a.task.versions.get()
    empty = _as(world.a.researcher).get(f"/benchmarks/new?task_version={version.pk}")
    assert (
        'No condition you can see: <a href="/conditions/">add one first</a>'
        in empty.content.decode()
    )
    make_conditions(world.a)
    response = _as(world.a.researcher).get(f"/benchmarks/new?task_version={version.pk}")
    ticked = rf'<input type="checkbox" name="task_versions" value="{version.pk}"[^>]* checked>'
    assert re.search(ticked, response.content.decode())
    assert response.context["form"]["task_versions"].value() == [str(version.pk)]


def test_a_researcher_creates_and_publishes_a_benchmark(world):
    conditions = make_conditions(world.a)
    client = _as(world.a.researcher)
    response = client.post("/benchmarks/new", _benchmark_post(world, conditions))
    assert response.status_code == 302
    benchmark = Benchmark.objects.get(name="Tabletop")
    assert benchmark.cells.count() == 2 and benchmark.trials_per_cell == 5
    assert response["Location"] == f"/benchmarks/{benchmark.pk}/"
    page = client.get(f"/benchmarks/{benchmark.pk}/").content.decode()
    assert f'href="/benchmarks/{benchmark.pk}/publish"' in page
    confirm = client.get(f"/benchmarks/{benchmark.pk}/publish")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    assert not Benchmark.objects.get(pk=benchmark.pk).is_published  # GET only asks
    assert client.post(f"/benchmarks/{benchmark.pk}/publish").status_code == 302
    assert Benchmark.objects.get(pk=benchmark.pk).is_published


def test_a_public_benchmark_on_a_private_task_is_refused_with_the_services_message(world):
    conditions = make_conditions(world.a)
    data = _benchmark_post(
        world,
        conditions,
        visibility=Visibility.PUBLIC,
        task_versions=[world.a.private_task.versions.get().pk],
    )
    response = _as(world.a.researcher).post("/benchmarks/new", data)
    assert response.status_code == 400
    assert world.a.private_task.slug in _errors(response, "task_versions")
    assert "Not visible to every reader" in _errors(response, "task_versions")
    assert "keep the benchmark private" in response.content.decode()
    assert not Benchmark.objects.filter(name="Tabletop").exists()


def test_a_benchmark_without_cells_is_refused_beside_the_grid(world):
    data = _benchmark_post(world, [], task_versions=[])
    response = _as(world.a.admin).post("/benchmarks/new", data)
    assert response.status_code == 400
    assert "At least one" in _errors(response, "task_versions")
    assert not Benchmark.objects.exists()


def test_an_operator_cannot_publish(world):
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        visibility=Visibility.PRIVATE,
        publish=False,
    )
    client = _as(world.a.operator)
    assert client.get(f"/benchmarks/{benchmark.pk}/").status_code == 200
    assert client.post(f"/benchmarks/{benchmark.pk}/publish").status_code == 403
    assert not Benchmark.objects.get(pk=benchmark.pk).is_published


# --- The campaign planner ---------------------------------------------------------------------


def _grid_plan(world, versions, conditions, **overrides):
    data = {
        "team": world.a.team.pk,
        "name": "Spring run",
        "visibility": Visibility.PRIVATE,
        "policy_versions": [v.pk for v in versions],
        "design": "grid",
        "task_versions": [world.a.task.versions.get().pk],
        "conditions": [c.pk for c in conditions],
        "trials_per_cell": 10,
        "robots": [world.a.robot.pk, world.a.other_robot.pk],
        "mode": Campaign.Mode.INTERLEAVED,
        "robot_assignment": Campaign.RobotAssignment.DEALT,
        "blinded": "on",
        "baseline": 0.5,
        "difference": 0.3,
    }
    return data | overrides


def test_plan_figures_are_exact_power_of_the_campaigns_test():
    """Interleaved: Boschloo on each policy's pooled trials at alpha / m, m = P(P-1)/2."""
    figures = planner.plan_campaign(
        policies=3, time_limits_s=[60.0, 90.0], trials_per_cell=10, mode="interleaved",
        baseline=0.5, difference=0.3,
    )  # fmt: skip
    assert figures.trials == 3 * 2 * 10
    assert figures.duration_s == 3 * 10 * (60 + 60 + 90 + 60)
    assert figures.comparisons == 3 and figures.per_comparison == 20
    assert figures.test == "boschloo" and not figures.power_is_lower_bound
    assert figures.power == exact_power(0.5, 0.8, 20, comparisons=3, test="boschloo")
    assert figures.needed == exact_trials_per_policy(0.5, 0.8, comparisons=3, test="fisher")
    assert figures.needed_trials_per_cell == -(-figures.needed // 2)
    assert not figures.enough


def test_paired_plans_use_mcnemar_on_the_pairs():
    figures = planner.plan_campaign(
        policies=2, time_limits_s=[30.0] * 4, trials_per_cell=10, mode="paired",
        baseline=0.5, difference=0.3,
    )  # fmt: skip
    assert figures.test == "mcnemar" and figures.per_comparison == 40
    assert figures.trials == 2 * 4 * 10
    assert figures.power == exact_power(0.5, 0.8, 40, comparisons=1, test="mcnemar")
    assert figures.needed == exact_trials_per_policy(0.5, 0.8, test="mcnemar")
    assert figures.enough is (figures.power >= 0.8)


def test_above_the_boschloo_bound_the_planner_says_at_least_fishers_power():
    figures = planner.plan_campaign(
        policies=2, time_limits_s=[30.0] * 6, trials_per_cell=10, mode="interleaved",
        baseline=0.6, difference=0.2,
    )  # fmt: skip
    assert figures.per_comparison == 60 > planner.BOSCHLOO_PLANNED_MAX
    assert figures.board_test == "boschloo" and figures.test == "fisher"
    assert figures.power_is_lower_bound
    assert figures.power == exact_power(0.6, 0.8, 60, test="fisher")


def test_the_planner_previews_figures_and_stores_nothing(world):
    versions = [make_policy_version(world.a), make_policy_version(world.a)]
    conditions = make_conditions(world.a)
    data = _grid_plan(world, versions, conditions, preview="1", trials_per_cell=3)
    response = _as(world.a.researcher).post("/campaigns/new", data)
    assert response.status_code == 200
    html = response.content.decode()
    power = exact_power(0.5, 0.8, 6, test="boschloo")
    assert f"{round(100 * power, 1):g}%" in html
    assert '<strong data-figure="trials">12</strong>' in html
    assert "cannot reliably detect a 30-point difference" in html
    assert not Campaign.objects.filter(name="Spring run").exists()


def test_the_live_figures_match_the_preview(world):
    versions = [make_policy_version(world.a), make_policy_version(world.a)]
    conditions = make_conditions(world.a)
    data = _grid_plan(world, versions, conditions, trials_per_cell=3)
    answer = _as(world.a.researcher).get("/campaigns/plan", data).json()
    figures = answer["figures"]
    assert figures["trials"] == 12 and figures["per_comparison"] == 6
    assert figures["power"] == exact_power(0.5, 0.8, 6, test="boschloo")
    assert figures["duration_s"] == 12 * (60 + planner.RESET_ALLOWANCE_S)
    assert figures["enough"] is False and "data-underpowered" in answer["html"]
    preview = _as(world.a.researcher).post("/campaigns/new", data | {"preview": "1"})
    assert answer["html"].strip() in preview.content.decode()
    incomplete = _as(world.a.researcher).get("/campaigns/plan", {"design": "grid"}).json()
    assert incomplete["figures"] is None and "policy_versions" in incomplete["errors"]


def test_the_live_panel_can_give_the_counts_before_the_power(world):
    versions = [make_policy_version(world.a), make_policy_version(world.a)]
    data = _grid_plan(world, versions, make_conditions(world.a), trials_per_cell=3)
    answer = _as(world.a.researcher).get("/campaigns/plan", data | {"power": "later"}).json()
    figures = answer["figures"]
    assert figures["trials"] == 12 and figures["duration_s"] == 12 * 120
    assert figures["power"] is None and figures["needed"] is None and figures["power_pending"]
    assert '<strong data-figure="trials">12</strong>' in answer["html"]
    assert "data-power-pending" in answer["html"] and "data-underpowered" not in answer["html"]
    full = _as(world.a.researcher).get("/campaigns/plan", data).json()
    assert full["figures"]["power"] is not None and not full["figures"]["power_pending"]


def test_a_researcher_creates_a_campaign_on_a_grid(world):
    versions = [make_policy_version(world.a), make_policy_version(world.a)]
    conditions = make_conditions(world.a)
    response = _as(world.a.researcher).post(
        "/campaigns/new", _grid_plan(world, versions, conditions)
    )
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Spring run")
    assert response["Location"] == f"/campaigns/{campaign.pk}/"
    assert campaign.status == Campaign.Status.DRAFT and campaign.blinded
    assert campaign.cells.count() == 2 and campaign.trials_per_cell == 10
    assert set(campaign.robots.all()) == {world.a.robot, world.a.other_robot}


def test_an_admin_plans_on_a_published_benchmark(world):
    versions = [make_policy_version(world.a), make_policy_version(world.a)]
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        visibility=Visibility.PRIVATE,
        trials_per_cell=4,
    )
    data = _grid_plan(world, versions, [], design="benchmark", benchmark=benchmark.pk)
    del data["task_versions"], data["trials_per_cell"]
    # Underpowered: the advice is another benchmark, not more trials (its cells are frozen).
    preview = _as(world.a.admin).post("/campaigns/new", data | {"preview": "1"})
    assert "The benchmark fixes its trials per cell (4): plan on one with" in preview.text
    assert "Raise the trials per cell" not in preview.text
    response = _as(world.a.admin).post("/campaigns/new", data)
    assert response.status_code == 302
    campaign = Campaign.objects.get(name="Spring run")
    assert campaign.benchmark == benchmark and campaign.trials_per_cell == 4


def test_campaign_refusals_show_beside_the_fields_and_store_nothing(world):
    versions = [make_policy_version(world.a)]
    conditions = make_conditions(world.a)
    client = _as(world.a.researcher)
    # Paired with one policy: the service's message beside the policies.
    data = _grid_plan(world, versions, conditions, mode=Campaign.Mode.PAIRED)
    response = client.post("/campaigns/new", data)
    assert response.status_code == 400
    assert "At least two in paired mode" in _errors(response, "policy_versions")
    # No robot: the form's.
    response = client.post("/campaigns/new", _grid_plan(world, versions, conditions, robots=[]))
    assert response.status_code == 400
    assert "required" in _errors(response, "robots")
    # A policy whose contract the robots lack: the service's gaps beside the robots.
    misfit = make_policy_version(world.a, requires={"cameras": ["cam_wrist_9"]})
    response = client.post("/campaigns/new", _grid_plan(world, [misfit], conditions))
    assert response.status_code == 400
    assert "cam_wrist_9" in _errors(response, "robots")
    assert not Campaign.objects.exists()


# --- Start, finish, unblind -------------------------------------------------------------------


def test_a_researcher_starts_and_finishes_a_campaign_after_confirming(world):
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version], start=False)
    client = _as(world.a.researcher)
    console = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert f'href="/campaigns/{campaign.pk}/start"' in console
    assert f'href="/campaigns/{campaign.pk}/finish"' not in console
    confirm = client.get(f"/campaigns/{campaign.pk}/start")
    assert confirm.status_code == 200 and "Start the campaign" in confirm.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT
    assert client.post(f"/campaigns/{campaign.pk}/start").status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING and campaign.trials.count() == 4
    assert "already" not in client.get(f"/campaigns/{campaign.pk}/start").content.decode()
    assert client.post(f"/campaigns/{campaign.pk}/finish").status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DONE
    # Done: start and finish are no longer offered, and a replayed POST changes nothing.
    again = client.post(f"/campaigns/{campaign.pk}/start")
    assert again.status_code == 200 and "Only a draft campaign starts" in again.content.decode()


def test_an_admin_unblinds_a_running_campaign_in_one_audited_event(world):
    versions = [make_policy_version(world.a), make_policy_version(world.a)]
    campaign = make_campaign(world.a, policy_versions=versions)  # running, blinded
    client = _as(world.a.admin)
    assert (
        f"/campaigns/{campaign.pk}/unblind"
        in client.get(f"/campaigns/{campaign.pk}/").content.decode()
    )
    assert client.get(f"/campaigns/{campaign.pk}/unblind").status_code == 200
    assert Campaign.objects.get(pk=campaign.pk).blinded
    assert client.post(f"/campaigns/{campaign.pk}/unblind").status_code == 302
    campaign.refresh_from_db()
    assert not campaign.blinded and campaign.status == Campaign.Status.RUNNING
    event = AuditEvent.objects.filter(object_id=str(campaign.pk), after__unblinded=True).get()
    assert event.after["seed"] == campaign.seed and event.after["blinded"] is False
    assert {a["policy_version"] for a in event.after["aliases"].values()} == {
        str(v.pk) for v in versions
    }
    # The operator now sees the policies' names on the console.
    console = _as(world.a.operator).get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "Policies are shown by their alias" not in console


def test_a_campaign_operator_cannot_unblind_and_operators_cannot_start(world):
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team, user=world.a.admin)
    version = make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[version], operators=[operator])
    client = _as(world.a.admin)  # an admin, but one of the campaign's (blinded) operators
    assert (
        f"/campaigns/{campaign.pk}/unblind"
        not in client.get(f"/campaigns/{campaign.pk}/").content.decode()
    )
    response = client.post(f"/campaigns/{campaign.pk}/unblind")
    assert response.status_code == 400
    assert "operators cannot unblind" in response.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).blinded
    assert _as(world.a.operator).post(f"/campaigns/{campaign.pk}/finish").status_code == 403
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.RUNNING
