"""Build domain state through the real services, so tests exercise the same rules users do."""

from dataclasses import dataclass, field
from itertools import count

from django.contrib.auth import get_user_model

from core.models import Embodiment, Membership, Robot, Task, Team, Visibility
from core.services import embodiments, robots, task_versions, teams

_seq = count(1)

ARM_SPEC = {
    "joint_names": [
        "waist",
        "shoulder",
        "elbow",
        "forearm",
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

PICK_CRITERIA = {
    "schema": "pg-criteria/1",
    "success": {"description": "The cube is lifted 5 cm above the table and held."},
    "stages": [
        {"id": "reach", "description": "Gripper above the cube", "weight": 0.25},
        {"id": "grasp", "description": "Cube in the closed gripper", "weight": 0.25},
        {"id": "lift", "description": "Cube 5 cm above the table", "weight": 0.5},
    ],
    "failure_codes": [
        {"code": "missed_grasp", "description": "Gripper closed without the cube"},
        {"code": "dropped", "description": "Cube dropped after grasp"},
    ],
    "checks": [
        {"id": "no-nan", "type": "finite"},
        {"id": "rate", "type": "control_rate", "min_hz": 150},
    ],
}


def superuser():
    n = next(_seq)
    return get_user_model().objects.create_superuser(f"root{n}", f"root{n}@example.org", "pw")


def make_team(name: str | None = None) -> Team:
    n = next(_seq)
    name = name or f"Lab {n}"
    return teams.create_team(actor=None, name=name, slug=f"lab-{n}")


def make_user(team: Team | None = None, role: str | None = None, username: str | None = None):
    n = next(_seq)
    user = get_user_model().objects.create_user(username or f"user{n}", password="pw")
    if team is not None and role is not None:
        teams.add_member(actor=None, team=team, user=user, role=role)
    return user


def make_embodiment(team: Team, admin, **kwargs) -> Embodiment:
    n = next(_seq)
    kwargs.setdefault("name", f"arm-{n}")
    kwargs.setdefault("spec", ARM_SPEC)
    return embodiments.create_embodiment(actor=admin, team=team, **kwargs)


def make_robot(team: Team, admin, embodiment: Embodiment, **kwargs) -> Robot:
    n = next(_seq)
    kwargs.setdefault("name", f"robot-{n}")
    return robots.create_robot(actor=admin, team=team, embodiment=embodiment, **kwargs)


def make_task(team: Team, admin, embodiment: Embodiment, **kwargs) -> Task:
    n = next(_seq)
    kwargs.setdefault("slug", f"pick-cube-{n}")
    kwargs.setdefault("name", f"Pick the cube {n}")
    kwargs.setdefault("instruction", "Pick up the red cube and lift it.")
    kwargs.setdefault("time_limit_s", 60.0)
    kwargs.setdefault("criteria", PICK_CRITERIA)
    kwargs.setdefault("allowed_embodiments", [embodiment])
    return task_versions.create_task(actor=admin, team=team, **kwargs)


@dataclass
class TeamWorld:
    team: Team
    admin: object
    operator: object
    researcher: object
    embodiment: Embodiment
    robot: Robot
    robot_key: str
    other_robot: Robot
    task: Task
    private_task: Task
    extras: dict = field(default_factory=dict)


@dataclass
class World:
    a: TeamWorld
    b: TeamWorld
    stranger: object


def build_team_world(embodiment_name: str | None = None) -> TeamWorld:
    """A team with its people, an embodiment (named `embodiment_name`, default ``arm-<n>``),
    two robots and two tasks."""
    team = make_team()
    admin = make_user(team, Membership.Role.ADMIN)
    named = {"name": embodiment_name} if embodiment_name else {}
    embodiment = make_embodiment(team, admin, visibility=Visibility.PRIVATE, **named)
    robot = make_robot(team, admin, embodiment)
    _, key = robots.issue_api_key(actor=admin, robot=robot)
    return TeamWorld(
        team=team,
        admin=admin,
        operator=make_user(team, Membership.Role.OPERATOR),
        researcher=make_user(team, Membership.Role.RESEARCHER),
        embodiment=embodiment,
        robot=robot,
        robot_key=key,
        other_robot=make_robot(team, admin, embodiment),
        task=make_task(team, admin, embodiment, visibility=Visibility.PUBLIC),
        private_task=make_task(team, admin, embodiment, visibility=Visibility.PRIVATE),
    )


def build_world() -> World:
    # Team a's embodiment is "arm": the name tests/teleop/recordings.py records by default.
    return World(a=build_team_world("arm"), b=build_team_world("arm-b"), stranger=make_user())
