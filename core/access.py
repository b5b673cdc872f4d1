"""Who the caller is and what they may see: the one place the access rules live.

A caller (an *actor*) is either a Django user (a person, authenticated by session) or a
`RobotPrincipal` (a robot, authenticated by API key). People act through their team roles;
robots act only as themselves, inside their team. Every queryset an API, page or form
returns goes through one of the filters below, so an object of another team is
indistinguishable from a missing one. Views never write `is_superuser` or `team_id__in`
themselves.

The rules, one function each:

- `visible(queryset, actor)`: catalog objects a team may publish or share (embodiments,
  robots, tasks, conditions, protocols, policies, benchmarks, campaigns, dataset views): the
  actor's teams' own, public ones, and shared ones shared with one of the actor's teams.
  Anonymous callers see public ones only; superusers see everything.
- `in_my_teams(queryset, actor)`: records a team keeps to itself (sessions, episodes,
  operators; the robots one records on): those of the actor's teams (a robot's: its team's).
  Superusers see all; anonymous callers none. Publishing or sharing does not widen it.
- `own_recordings(queryset, actor)`: what a robot or a person recorded (sessions, episodes,
  uploads): a robot sees only its own; people see `in_my_teams`.
- `in_managed_teams(queryset, actor)`: records only a team's admins read (the audit trail):
  those of teams the actor administers. Superusers see all, including platform-wide ones
  (no team); robots and anonymous callers none.
- `hidden_from_audience(objects, visibility=, owner_id=, shared_with_ids=)`: the objects
  (tasks, conditions...) some reader of a thing with that visibility could not see: a public
  thing may show only public objects; a shared one, objects every team it reaches may see.
- `member_teams(actor)`: the teams the actor belongs to (a robot: its team).
- `usable_teams(actor)`: the teams the actor may list and name: `member_teams`, or every
  team for a superuser.
- `teams_with_role(actor, *roles)` / `managed_teams(actor)`: teams in which the actor holds
  a role (admin for `managed_teams`); every team for a superuser; none for robots.
- `has_role`, `roles`, `all_roles`: an actor's roles in a team (superusers hold every role;
  robots none). What each role may *do* is `core.rights`, the one table the services, the
  API and the pages ask before a write.
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
    if actor is None:
        return frozenset()
    cached = getattr(actor, "_pg_team_ids", None)
    if cached is not None:
        return cached
    if not actor.is_authenticated:
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


def _team_filter(team_field: str, teams) -> Q:
    return Q(**{f"{team_field}__in": teams})


def in_my_teams(queryset: QuerySet, actor, *, team_field: str = "team") -> QuerySet:
    """Restrict a queryset of records a team keeps to itself (no visibility, or one that
    does not apply here) to those of the actor's teams. Superusers see all; anonymous
    callers none. `team_field` names the path to the owning team (e.g. "episode__team")."""
    if actor is not None and actor.is_authenticated and not is_robot(actor):
        if actor.is_superuser:
            return queryset
    return queryset.filter(_team_filter(team_field, team_ids(actor)))


def own_recordings(
    queryset: QuerySet, actor, *, robot_field: str = "robot", team_field: str = "team"
) -> QuerySet:
    """Restrict sessions, episodes or uploads to those the actor may read: a robot its own
    (`robot_field` is the path to the recording robot); people those of their teams
    (`in_my_teams`)."""
    if is_robot(actor):
        return queryset.filter(**{robot_field: actor.robot})
    return in_my_teams(queryset, actor, team_field=team_field)


def in_managed_teams(queryset: QuerySet, actor, *, team_field: str = "team") -> QuerySet:
    """Restrict a queryset of admin-only records (the audit trail) to those of teams the
    actor administers. Superusers see all, team-less ones included; robots and anonymous
    callers none."""
    if actor is None or not actor.is_authenticated or is_robot(actor):
        return queryset.none()
    if actor.is_superuser:
        return queryset
    return queryset.filter(_team_filter(team_field, managed_teams(actor)))


def hidden_from_audience(
    objects: QuerySet, *, visibility: str, owner_id, shared_with_ids=()
) -> QuerySet:
    """Those of `objects` (team-owned, with a visibility) that some reader of a thing with
    `visibility`, owned by team `owner_id` and shared with `shared_with_ids`, may not see
    (`visible`). Whatever a thing shows of `objects` must come out of this empty:
    - public: every object must be public (anonymous readers see public ones only);
    - shared: each object must be public, or visible to the owner and to every team the
      thing is shared with (its own team's, or shared with that team);
    - private: the owner's members read it; each object must be visible to the owner."""
    audience = {owner_id, *shared_with_ids} if visibility != Visibility.PUBLIC else set()
    hidden = ~Q(visibility=Visibility.PUBLIC)
    if visibility == Visibility.PUBLIC:
        return objects.filter(hidden)
    through = objects.model.shared_with.through.objects
    reaches_all = Q()
    for team_id in audience:
        shared = through.filter(
            **{f"{objects.model._meta.model_name}_id": OuterRef("pk")}, team_id=team_id
        )
        reaches_all &= Q(team_id=team_id) | (Q(visibility=Visibility.SHARED) & Exists(shared))
    return objects.filter(hidden & ~reaches_all)


def member_teams(actor) -> QuerySet:
    """The teams the actor belongs to (a robot: its robot's team; anonymous: none)."""
    return Team.objects.filter(pk__in=team_ids(actor))


def usable_teams(actor) -> QuerySet:
    """The teams the actor may list and name in a request: its own, or every team for a
    superuser."""
    if actor is not None and actor.is_authenticated and not is_robot(actor):
        if actor.is_superuser:
            return Team.objects.all()
    return member_teams(actor)


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
