"""Evaluation rules: policies and their contracts, frozen benchmarks, schedules from stored
seeds, the robot's trial flow, reports with history, automatic checks."""

from collections import Counter, defaultdict

import pytest

from core.errors import InvalidInput, NotPermitted
from core.models import Visibility
from core.services import operators
from core.services import robots as robot_services
from evaluation import selectors
from evaluation.errors import (
    BenchmarkFrozen,
    CampaignNotRunning,
    RequirementsNotMet,
    TrialAlreadyReported,
    TrialNotAssigned,
)
from evaluation.models import Campaign, LeaderboardSnapshot, Trial, TrialReport
from evaluation.services import benchmarks, campaigns, leaderboards, policies
from evaluation.services import trials as trial_services
from proving_ground import scheduling
from teleop.services import sessions
from tests.core.factories import PICK_CRITERIA, build_world, make_embodiment, make_task
from tests.evaluation.factories import (
    make_benchmark,
    make_campaign,
    make_conditions,
    make_policy_version,
    robot_actor,
)
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def _run_all(campaign, robot, outcome="success"):
    """The robot takes and reports every trial it is dealt."""
    actor = robot_actor(robot)
    while (trial := trial_services.next_trial(actor=actor, campaign=campaign)) is not None:
        trial_services.report_trial_result(actor=actor, trial=trial, outcome=outcome)


# --- Policies -------------------------------------------------------------------------------


def test_a_policy_version_needs_a_checkpoint_or_a_server(world):
    policy = policies.create_policy(actor=world.a.researcher, team=world.a.team, name="act")
    with pytest.raises(InvalidInput, match="checkpoint SHA-256 or a server URL"):
        policies.create_policy_version(actor=world.a.researcher, policy=policy, label="v1")
    version = policies.create_policy_version(
        actor=world.a.researcher, policy=policy, label="v1", server_url="http://gpu-3:8000/act"
    )
    assert version.requires == {"observations": {}, "cameras": [], "action": None}


def test_malformed_requirements_are_refused_with_every_problem(world):
    policy = policies.create_policy(actor=world.a.researcher, team=world.a.team, name="act")
    with pytest.raises(InvalidInput) as refused:
        policies.create_policy_version(
            actor=world.a.researcher,
            policy=policy,
            label="v1",
            checkpoint_sha256="a" * 64,
            requires={"observations": {"qpos": [0]}, "cameras": "cam_high", "speed": 1},
        )
    problems = " ".join(refused.value.fields["requires"])
    assert "unknown keys: speed" in problems and "observations/qpos" in problems
    assert "cameras" in problems
    assert not policy.versions.exists()


def test_only_admins_and_researchers_of_the_team_define_policies(world):
    for outsider in (world.a.operator, world.b.researcher, world.stranger):
        with pytest.raises(NotPermitted):
            policies.create_policy(actor=outsider, team=world.a.team, name="nope")
    assert policies.create_policy(actor=world.a.admin, team=world.a.team, name="ok").name == "ok"


def test_a_policy_needing_what_the_robot_lacks_is_refused_naming_what_is_missing(world):
    version = make_policy_version(
        world.a,
        requires={
            "observations": {"qpos": [14], "wrist_force": None},
            "cameras": ["cam_left"],
            "action": [7],
        },
    )
    with pytest.raises(RequirementsNotMet) as refused:
        make_campaign(world.a, policy_versions=[version], start=False)
    message = refused.value.detail
    assert f"cannot run on robot '{world.a.robot.name}'" in message
    assert "observation 'qpos' has shape [7], the policy needs [14]" in message
    assert "observation 'wrist_force' is missing" in message
    assert "camera 'cam_left' is missing" in message
    assert not Campaign.objects.exists()


def test_a_task_version_that_does_not_allow_the_robot_is_refused(world):
    other = make_embodiment(world.a.team, world.a.admin)
    task = make_task(world.a.team, world.a.admin, other)
    version = make_policy_version(world.a)
    with pytest.raises(RequirementsNotMet, match="does not allow robot"):
        make_campaign(
            world.a,
            policy_versions=[version],
            task_versions=[task.versions.get()],
            conditions=make_conditions(world.a),
            trials_per_cell=1,
            start=False,
        )


def test_a_public_campaign_runs_public_policies_only(world):
    version = make_policy_version(world.a, visibility=Visibility.PRIVATE)
    with pytest.raises(InvalidInput, match="public policies only"):
        make_campaign(world.a, policy_versions=[version], visibility=Visibility.PUBLIC)


# --- Benchmarks -----------------------------------------------------------------------------


def test_a_published_benchmark_freezes_its_cells_and_locks_its_task_versions(world):
    version = world.a.task.versions.get()
    benchmark = make_benchmark(
        world.a, task_versions=[version], conditions=make_conditions(world.a), publish=False
    )
    benchmark = benchmarks.update_benchmark(
        actor=world.a.researcher, benchmark=benchmark, trials_per_cell=5
    )
    assert benchmark.trials_per_cell == 5 and benchmark.cells.count() == 2
    benchmark = benchmarks.publish_benchmark(actor=world.a.researcher, benchmark=benchmark)
    version.refresh_from_db()
    assert benchmark.is_published and version.is_locked
    with pytest.raises(BenchmarkFrozen):
        benchmarks.update_benchmark(
            actor=world.a.researcher, benchmark=benchmark, conditions=make_conditions(world.a)
        )
    renamed = benchmarks.update_benchmark(
        actor=world.a.researcher, benchmark=benchmark, name="Pick v1"
    )
    assert renamed.name == "Pick v1" and renamed.cells.count() == 2


def test_a_campaign_on_an_unpublished_benchmark_is_refused(world):
    benchmark = make_benchmark(
        world.a,
        task_versions=[world.a.task.versions.get()],
        conditions=make_conditions(world.a),
        publish=False,
    )
    with pytest.raises(InvalidInput, match="not published"):
        make_campaign(world.a, policy_versions=[make_policy_version(world.a)], benchmark=benchmark)


def test_another_team_runs_a_campaign_on_a_public_benchmark(world):
    shared_task = make_task(
        world.a.team,
        world.a.admin,
        world.a.embodiment,
        allowed_embodiments=[world.a.embodiment, world.b.embodiment],
    )
    benchmark = make_benchmark(
        world.a, task_versions=[shared_task.versions.get()], conditions=make_conditions(world.a)
    )
    campaign = make_campaign(
        world.b, policy_versions=[make_policy_version(world.b)], benchmark=benchmark
    )
    assert campaign.cells.count() == 2 and campaign.trials.count() == 2 * 2


# --- Schedules ------------------------------------------------------------------------------


def test_starting_stores_the_schedule_built_from_the_stored_seed(world):
    versions = [make_policy_version(world.a) for _ in range(2)]
    campaign = make_campaign(world.a, policy_versions=versions, seed=99, trials_per_cell=3)
    expected = campaigns.build_campaign_schedule(campaign)
    stored = list(campaign.trials.order_by("order"))
    assert len(stored) == 2 * 2 * 3
    assert [(str(t.policy_version_id), t.alias, str(t.condition_id)) for t in stored] == [
        (e.policy_id, e.alias, e.condition_id) for e in expected
    ]
    assert campaign.status == "running" and campaign.seed == 99
    assert campaign.schedule_fingerprint == scheduling.schedule_fingerprint(expected)
    assert selectors.schedule_matches_fingerprint(campaign)
    assert world.a.task.versions.get().is_locked
    Trial.objects.filter(pk=stored[0].pk).update(alias="policy Z")
    assert not selectors.schedule_matches_fingerprint(campaign)


def test_the_same_seed_gives_the_same_schedule(world):
    versions = [make_policy_version(world.a) for _ in range(3)]
    conditions = make_conditions(world.a, levels=("bright", "dim", "flicker"))
    grid = {"task_versions": [world.a.task.versions.get()], "conditions": conditions}

    def schedule(seed):
        campaign = make_campaign(
            world.a, policy_versions=versions, seed=seed, trials_per_cell=2, **grid
        )
        rows = campaign.trials.order_by("order").values_list(
            "order", "block", "policy_version_id", "alias", "condition_id", "robot_id"
        )
        return campaign.schedule_fingerprint, list(rows)

    first, again, other = schedule(7), schedule(7), schedule(8)
    assert first == again
    assert first[0] != other[0]


def test_each_block_interleaves_every_policy(world):
    versions = [make_policy_version(world.a) for _ in range(4)]
    campaign = make_campaign(world.a, policy_versions=versions, trials_per_cell=3)
    blocks = defaultdict(list)
    for trial in campaign.trials.order_by("order"):
        blocks[trial.block].append(trial)
    assert len(blocks) == 2 * 3
    for trials in blocks.values():
        assert sorted(t.policy_version_id for t in trials) == sorted(v.pk for v in versions)
        assert len({(t.task_version_id, t.condition_id, t.robot_id) for t in trials}) == 1
        orders = [t.order for t in trials]
        assert orders == list(range(orders[0], orders[0] + len(trials)))


def test_paired_mode_runs_counterbalanced_pairs(world):
    a, b = make_policy_version(world.a), make_policy_version(world.a)
    campaign = make_campaign(world.a, policy_versions=[a, b], mode="paired", trials_per_cell=4)
    pairs = defaultdict(list)
    for trial in campaign.trials.order_by("order"):
        pairs[trial.pair_id].append(trial)
    assert len(pairs) == 2 * 4
    leaders = Counter()
    for first, second in pairs.values():
        assert (first.pair_position, second.pair_position) == (0, 1)
        assert first.policy_version_id != second.policy_version_id
        assert (first.condition_id, first.robot_id) == (second.condition_id, second.robot_id)
        leaders[first.policy_version_id] += 1
    assert leaders[a.pk] == leaders[b.pk] == 4


def test_blocks_are_dealt_to_the_campaigns_robots(world):
    robot_services.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    versions = [make_policy_version(world.a) for _ in range(2)]
    robots = [world.a.robot, world.a.other_robot]
    campaign = make_campaign(world.a, policy_versions=versions, robots=robots, trials_per_cell=2)
    per_robot = Counter(campaign.trials.values_list("robot_id", flat=True))
    assert per_robot == {world.a.robot.pk: 4, world.a.other_robot.pk: 4}
    taken = trial_services.next_trial(actor=robot_actor(world.a.other_robot), campaign=campaign)
    assert taken.robot_id == world.a.other_robot.pk


def test_in_a_shared_queue_robots_claim_whole_blocks(world):
    robot_services.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    a, b = make_policy_version(world.a), make_policy_version(world.a)
    campaign = make_campaign(
        world.a,
        policy_versions=[a, b],
        robots=[world.a.robot, world.a.other_robot],
        mode="paired",
        robot_assignment="shared",
        trials_per_cell=2,
    )
    assert not campaign.trials.exclude(robot=None).exists()
    first = robot_actor(world.a.robot)
    second = robot_actor(world.a.other_robot)
    mine = trial_services.next_trial(actor=first, campaign=campaign)
    theirs = trial_services.next_trial(actor=second, campaign=campaign)
    assert (mine.order, theirs.order) == (0, 2)
    assert mine.block != theirs.block
    trial_services.report_trial_result(actor=first, trial=mine, outcome="success")
    assert trial_services.next_trial(actor=first, campaign=campaign).order == 1  # its pair's second
    by_block = defaultdict(set)
    for block, robot_id in campaign.trials.exclude(robot=None).values_list("block", "robot_id"):
        by_block[block].add(robot_id)
    assert all(len(robots) == 1 for robots in by_block.values())
    assert selectors.schedule_matches_fingerprint(campaign)


# --- The robot's trial flow -----------------------------------------------------------------


def test_a_robot_gets_its_trials_in_order_and_the_held_one_again(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    actor = robot_actor(world.a.robot)
    first = trial_services.next_trial(actor=actor, campaign=campaign)
    assert first.order == 0 and first.state == "assigned"
    assert trial_services.next_trial(actor=actor, campaign=campaign).pk == first.pk
    trial_services.report_trial_result(actor=actor, trial=first, outcome="failure")
    assert trial_services.next_trial(actor=actor, campaign=campaign).order == 1


def test_operators_start_a_robots_next_trial_as_the_robot_would(world):
    campaign = make_campaign(
        world.a,
        policy_versions=[make_policy_version(world.a)],
        robots=[world.a.robot, world.a.other_robot],
    )
    robot = world.a.robot
    first = trial_services.next_trial_for_robot(
        actor=world.a.operator, campaign=campaign, robot=robot
    )
    assert first.robot == robot and first.state == "assigned"
    # The robot asking itself gets the same held trial, and so does the operator again.
    assert trial_services.next_trial(actor=robot_actor(robot), campaign=campaign).pk == first.pk
    again = trial_services.next_trial_for_robot(actor=world.a.admin, campaign=campaign, robot=robot)
    assert again.pk == first.pk
    refused = [
        (world.a.researcher, robot),  # researchers design, they do not run trials
        (world.b.operator, robot),  # another team's operator
        (robot_actor(world.a.other_robot), robot),  # a robot asks only for itself
        (world.a.operator, world.b.robot),  # not a robot of the campaign
    ]
    for actor, target in refused:
        with pytest.raises(NotPermitted):
            trial_services.next_trial_for_robot(actor=actor, campaign=campaign, robot=target)
    assert Trial.objects.filter(campaign=campaign, state="assigned").count() == 1


def test_only_the_campaigns_robots_ask_for_trials(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    with pytest.raises(NotPermitted):
        trial_services.next_trial(actor=robot_actor(world.b.robot), campaign=campaign)
    with pytest.raises(NotPermitted):
        trial_services.next_trial(actor=world.a.operator, campaign=campaign)
    draft = make_campaign(world.a, policy_versions=[make_policy_version(world.a)], start=False)
    with pytest.raises(CampaignNotRunning):
        trial_services.next_trial(actor=robot_actor(world.a.robot), campaign=draft)


def test_a_robot_whose_embodiment_changed_is_refused_without_naming_the_policy(world):
    version = make_policy_version(world.a, name="secret-act")
    campaign = make_campaign(world.a, policy_versions=[version])
    smaller = dict(world.a.embodiment.spec, observations={"qvel": {"shape": [7], "dtype": "f4"}})
    smaller["observations"]["qvel"]["dtype"] = "float32"
    world.a.embodiment.spec = smaller
    world.a.embodiment.save()
    robot = type(world.a.robot).objects.select_related("embodiment").get(pk=world.a.robot.pk)
    with pytest.raises(RequirementsNotMet) as refused:
        trial_services.next_trial(actor=robot_actor(robot), campaign=campaign)
    assert "policy " in refused.value.detail and "secret-act" not in refused.value.detail
    assert "observation 'qpos' is missing" in refused.value.detail
    assert not campaign.trials.filter(state="assigned").exists()


def test_a_robot_reports_once_and_people_correct_with_history(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    operator = operators.create_operator(
        actor=world.a.admin, team=world.a.team, user=world.a.operator
    )
    actor = robot_actor(world.a.robot)
    trial = trial_services.next_trial(actor=actor, campaign=campaign)
    trial = trial_services.report_trial_result(
        actor=actor, trial=trial, outcome="failure", failure_codes=["dropped"]
    )
    assert (trial.state, trial.outcome, trial.outcome_source) == ("done", "failure", "robot")
    with pytest.raises(TrialAlreadyReported):
        trial_services.report_trial_result(actor=actor, trial=trial, outcome="success")
    again = trial_services.report_trial_result(
        actor=actor, trial=trial, outcome="failure", failure_codes=["dropped"]
    )  # a retry of the stored report, its answer lost: the same report, not a second
    assert again.pk == trial.pk and TrialReport.objects.filter(trial=trial).count() == 1
    corrected = trial_services.report_trial_result(
        actor=world.a.operator,
        trial=trial,
        outcome="success",
        stages_reached=["reach", "grasp", "lift"],
        notes="the cube was lifted; the robot's detector missed it",
    )
    assert (corrected.outcome, corrected.stage_score, corrected.operator) == (
        "success",
        1.0,
        operator,
    )
    history = list(TrialReport.objects.filter(trial=trial))
    assert [(r.outcome, r.source, r.superseded_at is None) for r in history] == [
        ("success", "operator", True),
        ("failure", "robot", False),
    ]


def test_invalid_trials_need_a_reason(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    actor = robot_actor(world.a.robot)
    trial = trial_services.next_trial(actor=actor, campaign=campaign)
    with pytest.raises(InvalidInput, match="needs its reason"):
        trial_services.report_trial_result(actor=actor, trial=trial, valid=False)
    trial = trial_services.report_trial_result(
        actor=actor, trial=trial, valid=False, invalid_reason="success_at_reset"
    )
    assert (trial.state, trial.invalid_reason, trial.is_valid) == (
        "invalid",
        "success_at_reset",
        False,
    )


def test_unknown_stages_and_failure_codes_are_refused_and_nothing_is_stored(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    actor = robot_actor(world.a.robot)
    trial = trial_services.next_trial(actor=actor, campaign=campaign)
    with pytest.raises(InvalidInput, match="Unknown stage"):
        trial_services.report_trial_result(
            actor=actor, trial=trial, outcome="success", stages_reached=["fly"]
        )
    with pytest.raises(InvalidInput, match="Unknown failure codes: on_fire"):
        trial_services.report_trial_result(
            actor=actor, trial=trial, outcome="failure", failure_codes=["on_fire"]
        )
    trial.refresh_from_db()
    assert trial.state == "assigned" and not trial.reports.exists()


def test_a_robot_cannot_report_another_robots_trial_nor_people_a_scheduled_one(world):
    robot_services.issue_api_key(actor=world.a.admin, robot=world.a.other_robot)
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    trial = trial_services.next_trial(actor=robot_actor(world.a.robot), campaign=campaign)
    with pytest.raises(NotPermitted):
        trial_services.report_trial_result(
            actor=robot_actor(world.a.other_robot), trial=trial, outcome="success"
        )
    for outsider in (world.a.researcher, world.b.operator):
        with pytest.raises(NotPermitted):
            trial_services.report_trial_result(actor=outsider, trial=trial, outcome="success")
    later = campaign.trials.get(order=3)
    with pytest.raises(TrialNotAssigned):
        trial_services.report_trial_result(actor=world.a.operator, trial=later, outcome="success")


def test_the_campaign_is_done_when_its_last_trial_is_reported(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    _run_all(campaign, world.a.robot)
    campaign.refresh_from_db()
    assert campaign.status == "done" and campaign.finished_at is not None
    assert trial_services.next_trial(actor=robot_actor(world.a.robot), campaign=campaign) is None


def test_finishing_early_stops_handing_out_trials(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    campaign = campaigns.finish_campaign(actor=world.a.researcher, campaign=campaign)
    assert campaign.status == "done"
    assert selectors.campaign_progress(campaign).remaining == 4


# --- Automatic checks -----------------------------------------------------------------------

CHECKED = PICK_CRITERIA | {
    "success": {"description": "Cube above 5 cm at the end.", "check": "lifted"},
    "checks": [
        {
            "id": "lifted",
            "type": "final_value",
            "signal": "observations/qpos",
            "index": 6,
            "op": ">=",
            "threshold": 0.05,
        }
    ],
}


def _checked_campaign(world):
    task = make_task(world.a.team, world.a.admin, world.a.embodiment, criteria=CHECKED)
    version = task.versions.get()
    campaign = make_campaign(
        world.a,
        policy_versions=[make_policy_version(world.a)],
        task_versions=[version],
        conditions=make_conditions(world.a),
        trials_per_cell=1,
    )
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    session = sessions.open_session(
        actor=world.a.admin,
        robot=world.a.robot,
        task_version=version,
        operator_code=operator.code,
        kind="evaluation",
    )
    return campaign, session


def _episode(session, status):
    episode = ready_episode_row(session)
    episode.check_results = [
        {
            "check_id": "lifted",
            "type": "final_value",
            "status": status,
            "value": 0.08,
            "message": "",
            "details": {},
        }
    ]
    episode.save()
    return episode


def test_the_success_check_decides_a_trial_reported_without_an_outcome(world):
    campaign, session = _checked_campaign(world)
    actor = robot_actor(world.a.robot)
    trial = trial_services.next_trial(actor=actor, campaign=campaign)
    with pytest.raises(InvalidInput, match="Choose an outcome"):
        trial_services.report_trial_result(actor=actor, trial=trial)
    trial = trial_services.report_trial_result(
        actor=actor, trial=trial, episode=_episode(session, "passed")
    )
    assert (trial.outcome, trial.outcome_source, trial.check_outcome) == (
        "success",
        "checks",
        "success",
    )
    assert not trial.check_disagrees


def test_a_label_contradicting_the_success_check_stands_and_is_flagged(world):
    campaign, session = _checked_campaign(world)
    actor = robot_actor(world.a.robot)
    trial = trial_services.next_trial(actor=actor, campaign=campaign)
    trial = trial_services.report_trial_result(
        actor=actor, trial=trial, outcome="failure", episode=_episode(session, "passed")
    )
    assert (trial.outcome, trial.check_outcome, trial.check_disagrees) == (
        "failure",
        "success",
        True,
    )


def test_an_episode_that_becomes_ready_later_is_checked_by_the_refresh(world):
    campaign, session = _checked_campaign(world)
    actor = robot_actor(world.a.robot)
    trial = trial_services.next_trial(actor=actor, campaign=campaign)
    episode = _episode(session, "failed")
    episode.state = "processing"
    episode.save()
    trial = trial_services.report_trial_result(
        actor=actor, trial=trial, outcome="success", episode=episode
    )
    assert trial.check_outcome == ""
    episode.state = "ready"
    episode.save()
    leaderboards.refresh_leaderboard(scope="campaign", object_id=campaign.pk)
    trial.refresh_from_db()
    assert (trial.outcome, trial.check_outcome, trial.check_disagrees) == (
        "success",
        "failure",
        True,
    )


def test_an_episode_of_another_robot_cannot_be_attached(world):
    campaign, session = _checked_campaign(world)
    trial = trial_services.next_trial(actor=robot_actor(world.a.robot), campaign=campaign)
    episode = _episode(session, "passed")
    episode.robot = world.a.other_robot
    episode.save()
    with pytest.raises(InvalidInput, match="not recorded on this trial's robot"):
        trial_services.report_trial_result(
            actor=robot_actor(world.a.robot), trial=trial, outcome="success", episode=episode
        )


# --- Leaderboard refresh --------------------------------------------------------------------


def _refresh_keys(callbacks) -> set:
    return {
        c.commit_key[1:]
        for c in callbacks
        if getattr(c, "commit_key", ("",))[0] == "leaderboard-refresh"
    }


def test_a_result_queues_a_leaderboard_refresh_after_commit(
    world, settings, django_capture_on_commit_callbacks
):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    # The test runs in one transaction: everything in it, start included, is one commit.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
        actor = robot_actor(world.a.robot)
        trial = trial_services.next_trial(actor=actor, campaign=campaign)
        trial_services.report_trial_result(actor=actor, trial=trial, outcome="success")
    assert not LeaderboardSnapshot.objects.filter(campaign=campaign).exists()
    # The start and the result each ask; the commit queues one job (once per board, see
    # test_one_transaction_queues_one_refresh_per_board).
    assert _refresh_keys(callbacks) == {("campaign", str(campaign.pk))}
    for callback in callbacks:
        callback()
    snapshot = LeaderboardSnapshot.objects.get(campaign=campaign)
    assert snapshot.data["rows"][0]["successes"] == 1 and snapshot.trials_counted == 1


def _queued_refreshes() -> list[list]:
    from django_tasks_db.models import DBTaskResult

    return [
        row.args_kwargs["args"][:2]
        for row in DBTaskResult.objects.filter(
            task_path="evaluation.tasks.refresh_leaderboard_job"
        ).order_by("enqueued_at")
    ]


def test_one_transaction_queues_one_refresh_per_board(transactional_db, settings):
    from django.db import transaction

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    world = build_world()
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    assert _queued_refreshes() == [["campaign", str(campaign.pk)]]  # the start's, committed
    actor = robot_actor(world.a.robot)
    with transaction.atomic():
        for outcome in ("success", "failure", "success"):
            trial = trial_services.next_trial(actor=actor, campaign=campaign)
            trial_services.report_trial_result(actor=actor, trial=trial, outcome=outcome)
        assert len(_queued_refreshes()) == 1  # nothing before the commit
    assert len(_queued_refreshes()) == 2  # three results, one job
    with transaction.atomic():
        trial = trial_services.next_trial(actor=actor, campaign=campaign)
        trial_services.report_trial_result(actor=actor, trial=trial, outcome="failure")
        campaigns.finish_campaign(actor=world.a.researcher, campaign=campaign)
    # Finishing adds the benchmark's board when there is one; this grid has none.
    assert _queued_refreshes()[2:] == [["campaign", str(campaign.pk)]]


def test_a_refresh_asked_for_in_a_rolled_back_savepoint_is_asked_for_again(
    transactional_db, settings
):
    from django.db import transaction

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    world = build_world()
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    actor = robot_actor(world.a.robot)
    with transaction.atomic():
        trial = trial_services.next_trial(actor=actor, campaign=campaign)
        with pytest.raises(RuntimeError), transaction.atomic():
            trial_services.report_trial_result(actor=actor, trial=trial, outcome="success")
            raise RuntimeError("the import fails half-way")
        trial_services.report_trial_result(actor=actor, trial=trial, outcome="failure")
    # Without the second request the rolled-back one's job would be lost with its savepoint.
    assert _queued_refreshes() == [["campaign", str(campaign.pk)]] * 2


def test_a_refresh_with_unchanged_counts_stores_nothing_new(world):
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    first = leaderboards.refresh_leaderboard(scope="campaign", object_id=campaign.pk)
    again = leaderboards.refresh_leaderboard(scope="campaign", object_id=campaign.pk)
    assert again.pk == first.pk
    skipped = leaderboards.refresh_leaderboard(
        scope="campaign", object_id=campaign.pk, requested_at=first.started_at
    )
    assert skipped.pk == first.pk


# --- The robots' hot path -------------------------------------------------------------------


def test_a_robots_trial_loop_stays_within_its_queries(world, django_assert_max_num_queries):
    # 50 robots run this loop at once (bench/bench_robots.py): a query more is a cost on every
    # trial. Counted with the savepoints the test's transaction adds.
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    campaign = Campaign.objects.select_related("team").get(pk=campaign.pk)
    actor = robot_actor(world.a.robot)
    trial_services.next_trial(actor=actor, campaign=campaign)  # the first trial; then one loop
    trial_services.report_trial_result(
        actor=actor, trial=Trial.objects.get(state=Trial.State.ASSIGNED), outcome="success"
    )

    with django_assert_max_num_queries(6):
        trial = trial_services.next_trial(actor=actor, campaign=campaign)
    with django_assert_max_num_queries(8):
        reported = trial_services.report_trial_result(actor=actor, trial=trial, outcome="failure")

    assert reported.pk == trial.pk and reported.state == Trial.State.DONE
    assert reported.campaign.pk == campaign.pk and reported.robot == world.a.robot
    assert TrialReport.objects.get(trial=trial).outcome == "failure"
