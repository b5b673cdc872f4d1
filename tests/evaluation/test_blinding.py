"""Blinding by construction: what an operator, a robot, and an admin listed as a campaign
operator can read during a blinded campaign tells them nothing about which alias is which
policy: no order follows a policy's name or id, and the audit trail holds neither the seed
nor a trial's policy version until the campaign is done."""

import csv
import io
import json

import pytest

from core.services import operators
from evaluation.models import Campaign, Trial
from evaluation.selectors import alias_sort_key
from evaluation.services import blinding, campaigns, trials
from proving_ground import scheduling
from tests.evaluation.factories import make_campaign, make_policy_version, robot_actor

pytestmark = pytest.mark.django_db


def _versions(tw):
    """Three policies whose names sort alpha < bravo < charlie."""
    return [make_policy_version(tw, name=f"{name}-pick") for name in ("alpha", "bravo", "charlie")]


def _seed_hiding_orders(versions) -> int:
    """A seed whose "policy A" is neither the first policy by name nor the first by id, so
    an answer ordered by either does not start with "policy A"."""
    by_name = str(versions[0].pk)
    by_id = min(str(v.pk) for v in versions)
    for seed in range(1000):
        aliases = scheduling.alias_map([str(v.pk) for v in versions], seed)
        if aliases[by_name] != "policy A" and aliases[by_id] != "policy A":
            return seed
    raise AssertionError("no such seed")


@pytest.fixture
def blind_campaign(world):
    """A running blinded campaign of team a with three policies; team a's admin is one of its
    operators (so blinded in it), beside the operator."""
    versions = _versions(world.a)
    admin_op = operators.create_operator(actor=world.a.admin, team=world.a.team, user=world.a.admin)
    operator = operators.create_operator(
        actor=world.a.admin, team=world.a.team, user=world.a.operator
    )
    campaign = make_campaign(
        world.a,
        policy_versions=versions,
        trials_per_cell=2,
        seed=_seed_hiding_orders(versions),
        operators=[admin_op, operator],
    )
    return campaign, versions


def _readers(world, api):
    """Everyone blinded in team a's campaign: its operator, its robot, its admin-operator."""
    return {
        "operator": api(world.a.operator),
        "robot": api(key=world.a.robot_key),
        "admin listed as operator": api(world.a.admin),
    }


def _in_alias_order(aliases) -> bool:
    aliases = list(aliases)
    return aliases == sorted(aliases, key=alias_sort_key)


def _csv_aliases(response) -> list[str]:
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    column = rows[0].index("alias")
    return [row[column] for row in rows[1:]]


# --- 1. No order follows a name or an id ----------------------------------------------------


def test_unranked_rows_of_a_blinded_board_are_in_alias_order_not_name_or_id_order(
    api, world, blind_campaign
):
    campaign, versions = blind_campaign
    for who, client in _readers(world, api).items():
        board = client.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard")
        assert board.status_code == 200, who
        data = board.json()
        assert data["blinded"] is True, who
        aliases = [row["alias"] for row in data["rows"]]
        assert all(row["rank"] is None for row in data["rows"]), who  # nothing reported yet
        assert _in_alias_order(aliases) and aliases[0] == "policy A", (who, aliases)
        listed = client.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard.csv")
        assert _csv_aliases(listed) == aliases, who
        answer = client.get(f"/api/v1/campaigns/{campaign.pk}").json()
        assert _in_alias_order(answer["aliases"]), who


def _report_until_every_policy_has_every_cell(campaign, robot):
    """Success for trials in schedule order until every policy has a counted trial in every
    cell (so every row is ranked and compared), leaving the campaign running."""
    actor = robot_actor(robot)
    wanted = {
        (str(v.pk), str(c.task_version_id), str(c.condition_id))
        for v in campaign.policy_versions.all()
        for c in campaign.cells.all()
    }
    seen = set()
    while seen != wanted:
        trial = trials.next_trial(actor=actor, campaign=campaign)
        trials.report_trial_result(actor=actor, trial=trial, outcome="success")
        seen.add(
            (str(trial.policy_version_id), str(trial.task_version_id), str(trial.condition_id))
        )
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING


def test_pairwise_comparisons_of_a_blinded_board_are_in_alias_order(api, world, blind_campaign):
    campaign, versions = blind_campaign
    _report_until_every_policy_has_every_cell(campaign, world.a.robot)
    for who, client in _readers(world, api).items():
        data = client.get(f"/api/v1/campaigns/{campaign.pk}/leaderboard").json()
        pairs = [(p["first"], p["second"]) for p in data["pairwise"]]
        assert pairs == [
            ("policy A", "policy B"),
            ("policy A", "policy C"),
            ("policy B", "policy C"),
        ], (who, pairs)
        assert _in_alias_order(row["alias"] for row in data["rows"]), who  # all tied
    # A researcher reads the same board with the names, and the pairs by policy version id.
    data = api(world.a.researcher).get(f"/api/v1/campaigns/{campaign.pk}/leaderboard").json()
    alias_of = {row["policy_version"]: row["alias"] for row in data["rows"]}
    assert [alias_of[p["first"]] for p in data["pairwise"]] == ["policy A", "policy A", "policy B"]


# --- 2. The audit trail holds no seed and no trial's policy until the campaign is done ------


def _keys(value) -> set[str]:
    """Every key of every object nested in `value`."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _events(client) -> list[dict]:
    answer = client.get("/api/v1/audit-events/?limit=1000")
    assert answer.status_code == 200
    return answer.json()["results"]


def test_an_admin_listed_as_operator_cannot_recover_aliases_from_the_audit_trail(
    api, world, blind_campaign
):
    campaign, versions = blind_campaign
    _report_until_every_policy_has_every_cell(campaign, world.a.robot)
    client = api(world.a.admin)
    assert client.get(f"/api/v1/campaigns/{campaign.pk}").json()["blinded_view"] is True
    events = [e for e in _events(client) if e["object_type"].startswith("evaluation.")]
    assert not _keys(events) & {"seed", "seed_salt", "aliases"}
    assert campaign.seed_salt not in json.dumps(events)
    trial_events = [e for e in events if e["object_type"] == "evaluation.trial"]
    assert trial_events
    for event in trial_events:
        for state in (event["before"], event["after"]):
            assert "policy_version" not in state and state["alias"].startswith("policy ")
    started = next(e for e in events if (e["after"] or {}).get("status") == "running")
    assert started["after"]["seed_commitment"] == blinding.seed_commitment(
        campaign.seed, campaign.seed_salt
    )
    assert "seed" not in started["after"]
    assert not any((e["after"] or {}).get("unblinded") for e in events)


def test_finishing_a_blinded_campaign_reveals_and_audits_the_seed_and_every_alias(
    api, world, blind_campaign
):
    campaign, versions = blind_campaign
    campaigns.finish_campaign(actor=world.a.researcher, campaign=campaign)
    events = _events(api(world.a.admin))
    reveal = next(e for e in events if (e["after"] or {}).get("unblinded"))
    after = reveal["after"]
    assert after["seed"] == campaign.seed
    assert blinding.seed_commitment(after["seed"], after["seed_salt"]) == after["seed_commitment"]
    expected = scheduling.alias_map([str(v.pk) for v in versions], campaign.seed)
    assert {a: m["policy_version"] for a, m in after["aliases"].items()} == {
        alias: pv for pv, alias in expected.items()
    }
    assert reveal["actor_label"] == f"user:{world.a.researcher.get_username()}"


def test_the_last_result_ends_a_blinded_campaign_with_the_reveal_event(world, blind_campaign):
    from core.models import AuditEvent

    campaign, versions = blind_campaign
    actor = robot_actor(world.a.robot)
    while (trial := trials.next_trial(actor=actor, campaign=campaign)) is not None:
        trials.report_trial_result(actor=actor, trial=trial, outcome="failure")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DONE
    reveals = AuditEvent.objects.filter(object_id=str(campaign.pk), after__unblinded=True)
    assert reveals.count() == 1
    assert reveals.get().after["seed"] == campaign.seed
    # Corrections after the reveal name the policy again.
    trial = Trial.objects.filter(campaign=campaign).first()
    trials.report_trial_result(actor=world.a.admin, trial=trial, outcome="success")
    last = AuditEvent.objects.filter(object_id=str(trial.pk)).order_by("-id").first()
    assert last.after["policy_version"] == str(trial.policy_version_id)


# --- Lists decide blinding in a few queries, whatever their length ---------------------------


def _list_queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries.captured_queries)


@pytest.mark.parametrize("reader", ["operator", "researcher"])
def test_listing_campaigns_and_trials_costs_no_query_per_campaign_for_blinding(world, api, reader):
    operator = operators.create_operator(
        actor=world.a.admin, team=world.a.team, user=world.a.operator
    )
    versions = _versions(world.a)

    def add_campaigns(n):
        for _ in range(n):
            make_campaign(
                world.a, policy_versions=versions, trials_per_cell=1, operators=[operator]
            )

    user = getattr(world.a, reader)
    urls = ("/api/v1/campaigns/?limit=100", "/api/v1/trials/?limit=1000")

    def count():
        # A fresh user object per request, as a real request gets (it caches its answers).
        return [_list_queries(api(type(user).objects.get(pk=user.pk)), url) for url in urls]

    add_campaigns(2)
    few = count()
    add_campaigns(6)
    assert count() == few
