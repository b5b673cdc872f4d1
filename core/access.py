"""Who the caller is and what they may see.

A caller (an *actor*) is either a Django user (a person, authenticated by session) or a
`RobotPrincipal` (a robot, authenticated by API key). People act through their team roles;
robots act only as themselves, inside their team. Every queryset an API or page returns goes
through `visible()`, so an object of another team is indistinguishable from a missing one.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from core.models import Membership, Robot, RobotAPIKey, Team, Visibility

Role = Membership.Role


class RobotPrincipal:
    """`request.user` for a request authenticated with a robot's API key."""

    is_authenticated = True
    is_anonymous = False
    is_robot = True
    is_superuser = False
    is_staff = False

    def __init__(self, robot: Robot, api_key: RobotAPIKey):
        self.robot = robot
        self.api_key = api_key

    @property
    def pk(self) -> str:  # used by throttles and idempotency scoping
        return f"robot:{self.robot.pk}"

    @property
    def label(self) -> str:
        return f"robot:{self.robot.name}"

    def __str__(self) -> str:
        return self.label


def is_robot(actor) -> bool:
    return getattr(actor, "is_robot", False)


def principal_key(actor) -> str:
    """A stable string naming the caller, used to scope idempotency keys and throttles."""
    if is_robot(actor):
        return actor.pk
    return f"user:{actor.pk}"


def actor_label(actor) -> str:
    if actor is None or isinstance(actor, AnonymousUser):
        return "system"
    if is_robot(actor):
        return actor.label
    return f"user:{actor.get_username()}"


def team_ids(actor) -> frozenset:
    """Teams whose private objects the actor may see (cached on the actor object)."""
    cached = getattr(actor, "_pg_team_ids", None)
    if cached is not None:
        return cached
    if actor is None or not actor.is_authenticated:
        ids = frozenset()
    elif is_robot(actor):
        ids = frozenset([actor.robot.team_id])
    else:
        ids = frozenset(Membership.objects.filter(user=actor).values_list("team_id", flat=True))
    actor._pg_team_ids = ids
    return ids


def roles(actor, team_id) -> frozenset[str]:
    """The actor's roles in one team (empty for robots and strangers)."""
    if actor is None or not actor.is_authenticated or is_robot(actor):
        return frozenset()
    cache = actor.__dict__.setdefault("_pg_roles", {})
    if team_id not in cache:
        cache[team_id] = frozenset(
            Membership.objects.filter(user=actor, team_id=team_id).values_list("role", flat=True)
        )
    return cache[team_id]


def all_roles(actor) -> dict[str, list[str]]:
    """{team id: [roles]} for a person; {} for robots."""
    if actor is None or not actor.is_authenticated or is_robot(actor):
        return {}
    out: dict[str, list[str]] = {}
    for team_id, role in Membership.objects.filter(user=actor).values_list("team_id", "role"):
        out.setdefault(str(team_id), []).append(role)
    return out


def can_manage(actor, team_id) -> bool:
    """Admins of a team (and platform superusers) manage everything the team owns."""
    if actor is None or not actor.is_authenticated or is_robot(actor):
        return False
    return actor.is_superuser or Role.ADMIN in roles(actor, team_id)


def has_role(actor, team_id, *wanted: str) -> bool:
    if actor is None or not actor.is_authenticated or is_robot(actor):
        return False
    return actor.is_superuser or bool(roles(actor, team_id) & set(wanted))


def visible(queryset: QuerySet, actor) -> QuerySet:
    """Restrict a queryset of team-owned objects to those the actor may see: its teams'
    own, public ones, and ones shared with one of its teams. Superusers see everything."""
    if actor is None or not actor.is_authenticated:
        return queryset.filter(visibility=Visibility.PUBLIC)
    if not is_robot(actor) and actor.is_superuser:
        return queryset
    teams = team_ids(actor)
    shared = queryset.model.shared_with.through.objects.filter(
        **{f"{queryset.model._meta.model_name}_id": OuterRef("pk")}, team_id__in=teams
    )
    return queryset.filter(
        Q(team_id__in=teams)
        | Q(visibility=Visibility.PUBLIC)
        | (Q(visibility=Visibility.SHARED) & Exists(shared))
    )


def teams_with_role(actor, *wanted: str) -> QuerySet:
    """Teams in which the actor holds one of the `wanted` roles (every team for a superuser;
    none for a robot or an anonymous caller)."""
    if actor is None or not actor.is_authenticated or is_robot(actor):
        return Team.objects.none()
    if actor.is_superuser:
        return Team.objects.all()
    return Team.objects.filter(memberships__user=actor, memberships__role__in=wanted).distinct()


def managed_teams(actor) -> QuerySet:
    """Teams the actor may create objects in."""
    return teams_with_role(actor, Role.ADMIN)
