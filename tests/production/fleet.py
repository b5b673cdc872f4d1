"""A fleet of robots running a campaign, built through the real services: for the
production-shape test (`manage.py shell -c "from tests.production.fleet import seed;
seed(50)"` prints JSON with the robots' keys, the running campaign and teleop sessions to
upload into) and for bench/bench_robots.py (`build_fleet`)."""

from __future__ import annotations

import json


def seed(robot_count: int, *, trials_per_cell: int = 150) -> None:
    """The demo data (pages, a public board) and a fleet, printed as JSON."""
    from django.core.management import call_command

    call_command("seed_demo_evaluation", verbosity=0)
    print(json.dumps(build_fleet(robot_count, trials_per_cell=trials_per_cell, sessions=3)))


def build_fleet(
    robot_count: int,
    *,
    tasks: int = 2,
    conditions: int = 3,
    policies: int = 4,
    trials_per_cell: int = 150,
    sessions: int = 0,
) -> dict:
    """A team with `robot_count` robots (each with an API key), a started campaign over
    tasks x conditions x policies x trials_per_cell trials, and open teleop sessions on the
    first `sessions` robots. Returns the keys and ids, as JSON-ready data."""
    from django.contrib.auth import get_user_model

    from core.models import Membership
    from core.services import conditions as condition_services
    from core.services import embodiments, operators, teams
    from core.services import robots as robot_services
    from core.services import task_versions as task_version_services
    from evaluation.services import campaigns
    from evaluation.services import policies as policy_services
    from teleop.services import sessions as session_services
    from tests.core.factories import ARM_SPEC, PICK_CRITERIA

    team = teams.create_team(actor=None, name="Fleet lab", slug="fleet-lab")
    admin = get_user_model().objects.create_user("fleet-admin")
    teams.add_member(actor=None, team=team, user=admin, role=Membership.Role.ADMIN)
    embodiment = embodiments.create_embodiment(actor=admin, team=team, name="arm", spec=ARM_SPEC)
    robots, keys = [], []
    for index in range(robot_count):
        robot = robot_services.create_robot(
            actor=admin, team=team, embodiment=embodiment, name=f"arm-{index:02d}"
        )
        robots.append(robot)
        keys.append(robot_services.issue_api_key(actor=admin, robot=robot)[1])
    task_versions = [
        task_version_services.create_task(
            actor=admin,
            team=team,
            slug=f"task-{t}",
            name=f"Task {t}",
            instruction="Do the task.",
            time_limit_s=60.0,
            criteria=PICK_CRITERIA,
            allowed_embodiments=[embodiment],
        ).versions.get()
        for t in range(tasks)
    ]
    levels = [
        condition_services.create_condition(
            actor=admin, team=team, factor="lighting", level=f"level-{c}"
        )
        for c in range(conditions)
    ]
    policy_versions = []
    for p in range(policies):
        policy = policy_services.create_policy(actor=admin, team=team, name=f"policy-{p:02d}")
        policy_versions.append(
            policy_services.create_policy_version(
                actor=admin, policy=policy, label="v1", checkpoint_sha256=f"{p:064x}"
            )
        )
    campaign = campaigns.create_campaign(
        actor=admin,
        team=team,
        name="fleet",
        policy_versions=policy_versions,
        robots=robots,
        task_versions=task_versions,
        conditions=levels,
        trials_per_cell=trials_per_cell,
        seed=11,
    )
    campaign = campaigns.start_campaign(actor=admin, campaign=campaign)
    operator = operators.create_operator(actor=admin, team=team, code="OP-FLEET")
    opened = [
        session_services.open_session(
            actor=admin, robot=robot, task_version=task_versions[0], operator_code=operator.code
        )
        for robot in robots[:sessions]
    ]
    return {
        "keys": keys,
        "robots": [str(robot.pk) for robot in robots],
        "campaign": str(campaign.pk),
        "sessions": [str(session.pk) for session in opened],
        "trials": campaign.trials.count(),
    }
