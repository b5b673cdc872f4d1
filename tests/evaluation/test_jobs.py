"""A leaderboard whose refresh job was lost is refreshed again (evaluation/jobs.py)."""

import pytest
from django_tasks_db.models import DBTaskResult

from evaluation import jobs
from evaluation.services import leaderboards, trials
from evaluation.tasks import refresh_leaderboard_job
from tests.evaluation.factories import make_campaign, make_policy_version, robot_actor

pytestmark = pytest.mark.django_db


def queued_refreshes() -> list[list]:
    return [
        row["args"][:2]
        for row in DBTaskResult.objects.filter(
            task_path=refresh_leaderboard_job.module_path, status="READY"
        ).values_list("args_kwargs", flat=True)
    ]


def requeue(max_attempts=5) -> int:
    return jobs.requeue_leaderboards_behind(grace_s=0, max_attempts=max_attempts)


@pytest.fixture
def reported_campaign(world):
    """A campaign with one trial reported and its refresh job lost (on-commit callbacks are
    not run here, so nothing was queued)."""
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    actor = robot_actor(world.a.robot)
    trial = trials.next_trial(actor=actor, campaign=campaign)
    trials.report_trial_result(actor=actor, trial=trial, outcome="success")
    assert not DBTaskResult.objects.exists()
    return campaign


def test_a_board_behind_its_results_with_no_refresh_job_gets_one(reported_campaign):
    assert requeue() == 1
    assert queued_refreshes() == [["campaign", str(reported_campaign.pk)]]
    assert requeue() == 0  # its refresh is live now


def test_a_board_refreshed_after_the_report_needs_nothing(reported_campaign):
    leaderboards.refresh_leaderboard(scope="campaign", object_id=reported_campaign.pk)
    assert requeue() == 0


def test_a_board_whose_refreshes_keep_failing_is_left_for_an_operator(reported_campaign):
    for _ in range(2):
        result = refresh_leaderboard_job.enqueue(
            "campaign", str(reported_campaign.pk), "2026-01-01T00:00:00+00:00"
        )
        DBTaskResult.objects.filter(pk=result.id).update(status="FAILED")
    assert requeue(max_attempts=2) == 0
