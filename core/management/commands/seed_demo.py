"""`manage.py seed_demo`: demo data for a first look, safe to run again (idempotent).

Creates a team, an admin, an operator and a researcher account, a 7-joint arm embodiment with
two cameras, a robot, an operator pseudonym, lighting and object-set conditions, and three
tasks with success criteria. Prints how to log in and how to get a robot key.
"""

import os

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from core.models import Condition, Embodiment, Membership, Operator, Robot, Task, Team
from core.services import conditions, embodiments, operators, robots, task_versions, teams

DEMO_PASSWORD_ENV = "PG_DEMO_PASSWORD"
DEFAULT_DEMO_PASSWORD = "proving-ground"

ARM_SPEC = {
    "joint_names": [
        "waist",
        "shoulder",
        "elbow",
        "forearm_roll",
        "wrist_angle",
        "wrist_rotate",
        "gripper",
    ],
    "observations": {
        "qpos": {"shape": [7], "dtype": "float32"},
        "qvel": {"shape": [7], "dtype": "float32"},
    },
    "action": {"shape": [7], "dtype": "float32"},
    "cameras": [
        {"name": "cam_high", "width": 640, "height": 480, "fps": 30},
        {"name": "cam_wrist", "width": 640, "height": 480, "fps": 30},
    ],
    "control_hz": 200,
}

_COMMON_CHECKS = [
    {"id": "finite", "type": "finite", "description": "No NaN or inf in any signal"},
    {
        "id": "control-rate",
        "type": "control_rate",
        "min_hz": 180,
        "description": "The control loop kept at least 180 Hz",
    },
    {
        "id": "cam-high-live",
        "type": "camera_not_frozen",
        "camera": "cam_high",
        "max_frozen_s": 1.0,
        "description": "The overhead camera never froze for over 1 s",
    },
]

DEMO_TASKS = [
    {
        "slug": "pick-cube",
        "name": "Pick up the red cube",
        "instruction": "Pick up the red cube and hold it 5 cm above the table for 2 seconds.",
        "scene_setup": "Red 4 cm cube at the centre mark; gripper open at the home pose.",
        "time_limit_s": 30,
        "criteria": {
            "schema": "pg-criteria/1",
            "success": {"description": "The cube is held 5 cm above the table for 2 s."},
            "stages": [
                {"id": "reach", "description": "Gripper around the cube", "weight": 0.2},
                {"id": "grasp", "description": "Cube in the closed gripper", "weight": 0.3},
                {"id": "lift", "description": "Cube 5 cm above the table for 2 s", "weight": 0.5},
            ],
            "failure_codes": [
                {"code": "missed-grasp", "description": "Gripper closed without the cube"},
                {"code": "dropped", "description": "Cube dropped after the grasp"},
                {"code": "collision", "description": "Arm hit the table or the scene"},
            ],
            "checks": [
                *_COMMON_CHECKS,
                {"id": "grasp-by-10s", "type": "stage_by_time", "stage": "grasp", "by_s": 10},
            ],
        },
    },
    {
        "slug": "stack-blocks",
        "name": "Stack the blue block on the green one",
        "instruction": "Place the blue block on top of the green block so that it stays.",
        "scene_setup": "Green block at mark A, blue block at mark B, 20 cm apart.",
        "time_limit_s": 60,
        "criteria": {
            "schema": "pg-criteria/1",
            "success": {"description": "The blue block rests on the green one for 3 s."},
            "stages": [
                {"id": "grasp-blue", "description": "Blue block grasped", "weight": 0.3},
                {"id": "place", "description": "Blue block on the green one", "weight": 0.4},
                {"id": "release", "description": "Released and stable for 3 s", "weight": 0.3},
            ],
            "failure_codes": [
                {"code": "toppled", "description": "The stack fell over"},
                {"code": "wrong-block", "description": "The green block was moved instead"},
            ],
            "checks": _COMMON_CHECKS,
        },
    },
    {
        "slug": "open-drawer",
        "name": "Open the top drawer",
        "instruction": "Open the top drawer at least 15 cm using its handle.",
        "scene_setup": "Drawer closed; arm at the home pose facing the cabinet.",
        "time_limit_s": 45,
        "criteria": {
            "schema": "pg-criteria/1",
            "success": {
                "description": "The drawer is open at least 15 cm.",
                "check": "gripper-released",
            },
            "stages": [
                {"id": "handle", "description": "Gripper on the handle", "weight": 0.5},
                {"id": "open", "description": "Drawer open 15 cm", "weight": 0.5},
            ],
            "failure_codes": [
                {"code": "slipped", "description": "Gripper slipped off the handle"},
            ],
            "checks": [
                *_COMMON_CHECKS,
                {
                    "id": "gripper-released",
                    "type": "final_value",
                    "signal": "observations/qpos",
                    "index": 6,
                    "op": ">=",
                    "threshold": 0.02,
                    "window_s": 0.5,
                    "description": "Gripper open at the end (handle released)",
                },
            ],
        },
    },
]

DEMO_CONDITIONS = [
    (
        "lighting",
        "bright",
        "Ceiling lights on, blinds closed.",
        "Switch on all ceiling lights; close the blinds.",
    ),
    ("lighting", "dim", "Only the desk lamp.", "Switch off the ceiling lights; desk lamp on."),
    ("object-set", "seen", "Objects used in training.", "Use the objects from box A."),
    ("object-set", "novel", "Objects never seen in training.", "Use the objects from box B."),
]


class Command(BaseCommand):
    help = "Create demo data (idempotent) and print how to log in."

    def handle(self, *args, **options):
        password = os.environ.get(DEMO_PASSWORD_ENV, DEFAULT_DEMO_PASSWORD)
        with transaction.atomic():
            created = self._seed(password)
        self.stdout.write(
            self.style.SUCCESS(
                "Demo data ready" + (" (created)." if created else " (already there).")
            )
        )
        self.stdout.write(
            "\nLog in at http://127.0.0.1:8000/admin/ as one of:\n"
            f"  admin      / {password}   (platform and team admin)\n"
            f"  olga       / {password}   (operator)\n"
            f"  rita       / {password}   (researcher)\n"
            "API docs: http://127.0.0.1:8000/api/docs/\n"
            "A key for the demo robot:  .venv/bin/python manage.py create_robot_key demo-arm-1\n"
        )

    def _seed(self, password: str) -> bool:
        User = get_user_model()
        admin, created = User.objects.get_or_create(
            username="admin",
            defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.org"},
        )
        if created:
            admin.set_password(password)
            admin.save()
        team = Team.objects.filter(slug="demo-lab").first() or teams.create_team(
            actor=admin, name="Demo Lab", slug="demo-lab"
        )
        teams.add_member(actor=admin, team=team, user=admin, role=Membership.Role.ADMIN)
        for username, role in (
            ("olga", Membership.Role.OPERATOR),
            ("rita", Membership.Role.RESEARCHER),
        ):
            user, user_created = User.objects.get_or_create(username=username)
            if user_created:
                user.set_password(password)
                user.save()
            teams.add_member(actor=admin, team=team, user=user, role=role)

        embodiment = Embodiment.objects.filter(name="arm-7dof").first() or (
            embodiments.create_embodiment(
                actor=admin,
                team=team,
                name="arm-7dof",
                spec=ARM_SPEC,
                description="7-joint arm (6 + gripper) with an overhead and a wrist camera.",
            )
        )
        if not Robot.objects.filter(team=team, name="demo-arm-1").exists():
            robots.create_robot(
                actor=admin,
                team=team,
                embodiment=embodiment,
                name="demo-arm-1",
                site="Bench 1",
                serial="DEMO-0001",
            )
        if not Operator.objects.filter(code="OP-DEMO1").exists():
            operators.create_operator(
                actor=admin,
                team=team,
                code="OP-DEMO1",
                user=User.objects.get(username="olga"),
                full_name="Olga Operator",
                email="olga@example.org",
                consent_version="2026-01",
            )
        for factor, level, description, reset in DEMO_CONDITIONS:
            if not Condition.objects.filter(team=team, factor=factor, level=level).exists():
                conditions.create_condition(
                    actor=admin,
                    team=team,
                    factor=factor,
                    level=level,
                    description=description,
                    reset_instructions=reset,
                )
        for spec in DEMO_TASKS:
            if not Task.objects.filter(team=team, slug=spec["slug"]).exists():
                task_versions.create_task(
                    actor=admin, team=team, allowed_embodiments=[embodiment], **spec
                )
        return created
