"""Evaluation state built through the real services, on top of `tests.core.factories`."""

from itertools import count

from core.access import RobotPrincipal
from core.models import Condition, Robot, RobotAPIKey, Visibility
from core.services import conditions as condition_services
from core.services import robots as robot_services
from evaluation.models import Benchmark, Campaign, PolicyVersion
from evaluation.services import benchmarks, campaigns, policies, trials

_seq = count(1)

ARM_REQUIRES = {"observations": {"qpos": [7]}, "cameras": ["cam_high"], "action": [7]}


def robot_actor(robot: Robot) -> RobotPrincipal:
    """The robot as an authenticated caller (the API does this from its key)."""
    key = RobotAPIKey.objects.filter(robot=robot).first()
    if key is None:
        key, _ = robot_services.issue_api_key(actor=None, robot=robot)
    return RobotPrincipal(robot, key)


def make_policy_version(
    tw, *, name=None, label="v1", requires=None, visibility=Visibility.PRIVATE, sha=None
) -> PolicyVersion:
    n = next(_seq)
    policy = policies.create_policy(
        actor=tw.researcher, team=tw.team, name=name or f"policy-{n}", visibility=visibility
    )
    return policies.create_policy_version(
        actor=tw.researcher,
        policy=policy,
        label=label,
        checkpoint_sha256=sha or f"{n:064x}",
        requires=ARM_REQUIRES if requires is None else requires,
    )


def make_conditions(tw, levels=("bright", "dim")) -> list[Condition]:
    n = next(_seq)
    return [
        condition_services.create_condition(
            actor=tw.admin,
            team=tw.team,
            factor=f"lighting-{n}",
            level=level,
            reset_instructions=f"Set the lights to {level}.",
        )
        for level in levels
    ]


def make_benchmark(
    tw, *, task_versions, conditions, trials_per_cell=2, visibility=Visibility.PUBLIC, publish=True
) -> Benchmark:
    benchmark = benchmarks.create_benchmark(
        actor=tw.researcher,
        team=tw.team,
        name=f"bench-{next(_seq)}",
        task_versions=task_versions,
        conditions=conditions,
        trials_per_cell=trials_per_cell,
        visibility=visibility,
    )
    if publish:
        benchmark = benchmarks.publish_benchmark(actor=tw.researcher, benchmark=benchmark)
    return benchmark


def make_campaign(tw, *, policy_versions, robots=None, start=True, seed=1234, **kwargs) -> Campaign:
    """A campaign of team world `tw`; an ad hoc grid of its public task and two conditions
    unless a benchmark or grid is given."""
    if "benchmark" not in kwargs and "task_versions" not in kwargs:
        kwargs["task_versions"] = [tw.task.versions.get()]
        kwargs["conditions"] = make_conditions(tw)
        kwargs.setdefault("trials_per_cell", 2)
    campaign = campaigns.create_campaign(
        actor=tw.researcher,
        team=tw.team,
        name=f"campaign-{next(_seq)}",
        policy_versions=policy_versions,
        robots=robots or [tw.robot],
        seed=seed,
        **kwargs,
    )
    if start:
        campaign = campaigns.start_campaign(actor=tw.researcher, campaign=campaign)
    return campaign


def play_campaign(campaign, robot, decide) -> None:
    """The robot runs its trials; `decide(trial)` returns the report's keyword arguments."""
    actor = robot_actor(robot)
    while (trial := trials.next_trial(actor=actor, campaign=campaign)) is not None:
        trials.report_trial_result(actor=actor, trial=trial, **decide(trial))
