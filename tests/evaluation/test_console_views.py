"""The evaluation console: progress, the current trial of each robot (alias only while
blinded), scoring and corrections with history, and who may see and do what."""

import pytest
from django.test import Client

from core.models import Visibility
from evaluation.models import Trial, TrialReport
from tests.evaluation.factories import make_campaign, make_policy_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def blinded(world):
    versions = [
        make_policy_version(world.a, name="secret-alpha"),
        make_policy_version(world.a, name="secret-beta"),
    ]
    robots = [world.a.robot, world.a.other_robot]
    return make_campaign(world.a, policy_versions=versions, robots=robots, blinded=True)


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _start(client, campaign, robot):
    return client.post(f"/campaigns/{campaign.pk}/robots/{robot.pk}/next")


def _held(campaign, robot) -> Trial:
    return Trial.objects.get(campaign=campaign, robot=robot, state=Trial.State.ASSIGNED)


def test_operator_starts_a_trial_and_sees_only_the_alias_condition_and_reset(world, blinded):
    client = _as(world.a.operator)
    assert client.get("/campaigns/").content.decode().count(blinded.name) == 1
    response = _start(client, blinded, world.a.robot)
    assert response.status_code == 302
    trial = _held(blinded, world.a.robot)
    page = client.get(f"/campaigns/{blinded.pk}/").content.decode()
    assert trial.alias in page
    assert trial.condition.reset_instructions in page
    assert "secret-alpha" not in page and "secret-beta" not in page
    assert str(trial.policy_version_id) not in page
    trial_page = client.get(f"/trials/{trial.pk}/").content.decode()
    assert trial.alias in trial_page and "secret-" not in trial_page


def test_researcher_sees_names_but_cannot_score(world, blinded):
    _start(_as(world.a.operator), blinded, world.a.robot)
    trial = _held(blinded, world.a.robot)
    client = _as(world.a.researcher)
    page = client.get(f"/campaigns/{blinded.pk}/").content.decode()
    assert str(trial.policy_version) in page
    assert "Save and next trial" not in page
    response = client.post(f"/trials/{trial.pk}/", {"outcome": "success", "valid": "yes"})
    assert response.status_code == 403
    assert not TrialReport.objects.filter(trial=trial).exists()
    assert _start(client, blinded, world.a.other_robot).status_code == 403
    assert not Trial.objects.filter(robot=world.a.other_robot, state="assigned").exists()


def test_score_and_next_reports_the_trial_and_hands_out_the_following_one(world, blinded):
    client = _as(world.a.operator)
    _start(client, blinded, world.a.robot)
    first = _held(blinded, world.a.robot)
    response = client.post(
        f"/trials/{first.pk}/",
        {
            "outcome": "failure",
            "stages_reached": ["reach", "grasp"],
            "failure_codes": ["dropped"],
            "valid": "yes",
            "notes": "slipped at the lift",
            "from": "console",
            "next": "1",
        },
    )
    assert response.status_code == 302 and f"#robot-{world.a.robot.pk}" in response["Location"]
    first.refresh_from_db()
    assert first.state == "done" and first.outcome == "failure"
    assert first.stages_reached == ["reach", "grasp"] and first.failure_codes == ["dropped"]
    assert first.stage_score == pytest.approx(0.5)
    second = _held(blinded, world.a.robot)
    assert second.order > first.order
    page = client.get(f"/campaigns/{blinded.pk}/").content.decode()
    assert "1 done" in page


def test_an_invalid_trial_needs_its_reason_and_a_valid_one_an_outcome(world, blinded):
    client = _as(world.a.operator)
    _start(client, blinded, world.a.robot)
    trial = _held(blinded, world.a.robot)
    bad = [
        ({"valid": "no", "from": "console"}, "Say why the trial is invalid."),
        ({"valid": "yes", "from": "console"}, "Choose an outcome, or mark the trial invalid."),
        ({"valid": "yes", "outcome": "maybe"}, "Select a valid choice"),
        ({"valid": "yes", "outcome": "success", "stages_reached": ["fly"]}, "Select a valid"),
        ({"valid": "yes", "outcome": "success", "invalid_reason": "timeout"}, "no invalid reason"),
    ]
    for data, message in bad:
        response = client.post(f"/trials/{trial.pk}/", data)
        assert response.status_code == 400, data
        page = response.content.decode()
        assert page.count(message) == 1, data  # said once, beside its field
        assert "Required." not in page
    trial.refresh_from_db()
    assert trial.state == "assigned"
    assert not TrialReport.objects.filter(trial=trial).exists()
    response = client.post(
        f"/trials/{trial.pk}/", {"valid": "no", "invalid_reason": "operator_error"}
    )
    assert response.status_code == 302
    trial.refresh_from_db()
    assert trial.state == "invalid" and trial.invalid_reason == "operator_error"


def test_a_correction_keeps_the_history(world, blinded):
    client = _as(world.a.operator)
    _start(client, blinded, world.a.robot)
    trial = _held(blinded, world.a.robot)
    client.post(f"/trials/{trial.pk}/", {"outcome": "failure", "valid": "yes"})
    page = client.get(f"/trials/{trial.pk}/").content.decode()
    assert "Correct this result" in page and "Save correction" in page
    response = client.post(
        f"/trials/{trial.pk}/", {"outcome": "success", "valid": "yes", "notes": "re-watched"}
    )
    assert response.status_code == 302
    reports = list(TrialReport.objects.filter(trial=trial).order_by("created_at"))
    assert [r.outcome for r in reports] == ["failure", "success"]
    assert reports[0].superseded_at is not None and reports[1].superseded_at is None
    page = client.get(f"/trials/{trial.pk}/").content.decode()
    assert "re-watched" in page and page.count("<tr") >= 3  # header + two reports


def test_another_teams_private_campaign_is_404_and_anonymous_users_sign_in(world, blinded):
    _start(_as(world.a.operator), blinded, world.a.robot)
    trial = _held(blinded, world.a.robot)
    outsider = _as(world.b.operator)
    assert blinded.name not in outsider.get("/campaigns/").content.decode()
    assert outsider.get(f"/campaigns/{blinded.pk}/").status_code == 404
    assert outsider.get(f"/trials/{trial.pk}/").status_code == 404
    assert _start(outsider, blinded, world.a.robot).status_code == 404
    assert outsider.post(f"/trials/{trial.pk}/", {"outcome": "success"}).status_code == 404
    anonymous = Client()
    for url in ("/campaigns/", f"/campaigns/{blinded.pk}/", f"/trials/{trial.pk}/"):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert TrialReport.objects.count() == 0


def test_a_robot_outside_the_campaign_is_404_and_get_next_is_refused(world, blinded):
    client = _as(world.a.operator)
    assert _start(client, blinded, world.b.robot).status_code == 404
    response = client.get(f"/campaigns/{blinded.pk}/robots/{world.a.robot.pk}/next")
    assert response.status_code == 405


def test_public_campaign_of_another_team_is_visible_but_not_scorable(world):
    version = make_policy_version(world.a, name="open-policy", visibility=Visibility.PUBLIC)
    campaign = make_campaign(
        world.a, policy_versions=[version], blinded=False, visibility=Visibility.PUBLIC
    )
    _start(_as(world.a.operator), campaign, world.a.robot)
    trial = _held(campaign, world.a.robot)
    outsider = _as(world.b.operator)
    page = outsider.get(f"/campaigns/{campaign.pk}/").content.decode()
    assert "open-policy" in page and "Save and next trial" not in page
    assert outsider.post(f"/trials/{trial.pk}/", {"outcome": "success"}).status_code == 403
    assert _start(outsider, campaign, world.a.robot).status_code == 403
    assert not TrialReport.objects.filter(trial=trial).exists()


def test_home_links_running_campaigns(world, blinded):
    page = _as(world.a.operator).get("/").content.decode()
    assert f'href="/campaigns/{blinded.pk}/"' in page
    assert "0 of 8 trials scored" in page


def test_two_robots_cards_have_forms_with_ids_of_their_own(world, blinded):
    import re
    from collections import Counter

    client = _as(world.a.operator)
    _start(client, blinded, world.a.robot)
    _start(client, blinded, world.a.other_robot)
    page = client.get(f"/campaigns/{blinded.pk}/").content.decode()
    assert page.count("Save and next trial") == 2
    ids = Counter(re.findall(r'\bid="([^"]+)"', page))
    assert [i for i, n in ids.items() if n > 1] == []
