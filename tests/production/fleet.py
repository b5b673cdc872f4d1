"""A fleet for the production-shape test, built through the real services in the server's own
database: `manage.py shell -c "from tests.production.fleet import seed; seed(50)"` prints
JSON with the robots' keys, the running campaign and a teleop session to upload into."""

from __future__ import annotations

import json


def seed(robot_count: int, *, trials_per_cell: int = 150) -> None:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from core import services as core
    from core.models import Membership
    from evaluation import services
    from teleop import services as teleop
    from tests.core.factories import ARM_SPEC, PICK_CRITERIA

    call_command("seed_demo_evaluation", verbosity=0)  # the demo pages, a public board
    team = core.create_team(actor=None, name="Fleet lab", slug="fleet-lab")
    admin = get_user_model().objects.create_user("fleet-admin")
    core.add_member(actor=None, team=team, user=admin, role=Membership.Role.ADMIN)
    embodiment = core.create_embodiment(actor=admin, team=team, name="arm", spec=ARM_SPEC)
    robots, keys = [], []
    for index in range(robot_count):
        robot = core.create_robot(
            actor=admin, team=team, embodiment=embodiment, name=f"arm-{index:02d}"
        )
        robots.append(robot)
        keys.append(core.issue_api_key(actor=admin, robot=robot)[1])
    task_versions = [
        core.create_task(
            actor=admin,
            team=team,
            slug=f"task-{t}",
            name=f"Task {t}",
            instruction="Do the task.",
            time_limit_s=60.0,
            criteria=PICK_CRITERIA,
            allowed_embodiments=[embodiment],
        ).versions.get()
        for t in range(2)
    ]
    conditions = [
        core.create_condition(actor=admin, team=team, factor="lighting", level=f"level-{c}")
        for c in range(3)
    ]
    policy_versions = []
    for p in range(4):
        policy = services.create_policy(actor=admin, team=team, name=f"policy-{p}")
        policy_versions.append(
            services.create_policy_version(
                actor=admin, policy=policy, label="v1", checkpoint_sha256=f"{p:064x}"
            )
        )
    campaign = services.create_campaign(
        actor=admin,
        team=team,
        name="fleet",
        policy_versions=policy_versions,
        robots=robots,
        task_versions=task_versions,
        conditions=conditions,
        trials_per_cell=trials_per_cell,
        seed=11,
    )
    campaign = services.start_campaign(actor=admin, campaign=campaign)
    operator = core.create_operator(actor=admin, team=team, code="OP-FLEET")
    sessions = [
        teleop.open_session(
            actor=admin,
            robot=robot,
            task_version=task_versions[0],
            operator_code=operator.code,
        )
        for robot in robots[:3]
    ]
    print(
        json.dumps(
            {
                "keys": keys,
                "robots": [str(robot.pk) for robot in robots],
                "campaign": str(campaign.pk),
                "sessions": [str(session.pk) for session in sessions],
                "trials": campaign.trials.count(),
            }
        )
    )
