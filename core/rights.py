"""Who may do what in a team: the one table of rights (docs/api.md, "Who may do what").

`core.access` says what an actor may *see*; this module says what an actor may *do*. The
services ask it before every write, the API's permission classes and the pages ask it to
decide what to offer, and the Django admin's forms go through the services, so the four
never disagree.

A right is granted by roles in the team that owns the object:

=========  =============================  =================================================
right      roles                          what it covers
=========  =============================  =================================================
author     admin, researcher              tasks and their versions, conditions, collection
                                          protocols, policies, benchmarks, campaigns,
                                          dataset views and exports
manage     admin                          the team itself, members, operators (people's
                                          pseudonyms), embodiments, robots and their API keys
operate    admin, operator                sessions, recording, running and scoring trials
label      admin, operator, researcher    labelling episodes
unblind    admin, researcher              seeing a blinded campaign's policies before it is
                                          done (unless also one of its operators)
=========  =============================  =================================================

Superusers hold every right in every team; robots hold none (a robot acts only as itself,
checked where it records).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.db.models import Model, QuerySet

from core import access
from core.errors import NotPermitted
from core.models import Membership, Team

Role = Membership.Role


class Right(StrEnum):
    AUTHOR = "author"
    MANAGE = "manage"
    OPERATE = "operate"
    LABEL = "label"
    UNBLIND = "unblind"


GRANTS: dict[Right, frozenset[str]] = {
    Right.AUTHOR: frozenset({Role.ADMIN, Role.RESEARCHER}),
    Right.MANAGE: frozenset({Role.ADMIN}),
    Right.OPERATE: frozenset({Role.ADMIN, Role.OPERATOR}),
    Right.LABEL: frozenset({Role.ADMIN, Role.OPERATOR, Role.RESEARCHER}),
    Right.UNBLIND: frozenset({Role.ADMIN, Role.RESEARCHER}),
}

# The right that creating, changing or deleting a team-owned model's rows needs, by
# "app_label.model_name".
MODEL_RIGHTS: dict[str, Right] = {
    "core.team": Right.MANAGE,
    "core.membership": Right.MANAGE,
    "core.operator": Right.MANAGE,
    "core.embodiment": Right.MANAGE,
    "core.robot": Right.MANAGE,
    "core.robotapikey": Right.MANAGE,
    "core.task": Right.AUTHOR,
    "core.taskversion": Right.AUTHOR,
    "core.condition": Right.AUTHOR,
    "teleop.collectionprotocol": Right.AUTHOR,
    "teleop.datasetview": Right.AUTHOR,
    "teleop.datasetexport": Right.AUTHOR,
    "evaluation.policy": Right.AUTHOR,
    "evaluation.policyversion": Right.AUTHOR,
    "evaluation.benchmark": Right.AUTHOR,
    "evaluation.campaign": Right.AUTHOR,
}

_WHO = {
    Right.AUTHOR: "an admin or researcher",
    Right.MANAGE: "an admin",
    Right.OPERATE: "an operator or admin",
    Right.LABEL: "a member",
    Right.UNBLIND: "an admin or researcher",
}


def _team_id(team: Team | Any) -> Any:
    return team.pk if isinstance(team, Team) else team


def may(actor, right: Right, team: Team | Any) -> bool:
    """Whether `actor` holds `right` in `team` (a Team or its id)."""
    return access.has_role(actor, _team_id(team), *GRANTS[right])


def require(actor, right: Right, team: Team | Any, message: str | None = None) -> None:
    """Raise NotPermitted unless `actor` holds `right` in `team`."""
    if not may(actor, right, team):
        raise NotPermitted(message or f"Only {_WHO[right]} of the owning team may do this.")


def right_for(model: type[Model] | Model) -> Right:
    """The right that writing rows of `model` needs (KeyError for a model not in the table:
    a new team-owned model must be added to `MODEL_RIGHTS`)."""
    return MODEL_RIGHTS[model._meta.label_lower]


def may_change(actor, obj: Model, team: Team | Any | None = None) -> bool:
    """Whether `actor` may create, change or delete `obj` (owned by `team`, by default
    `obj.team_id`)."""
    return may(actor, right_for(obj), obj.team_id if team is None else team)


def require_change(actor, obj: Model | type[Model], team: Team | Any | None = None) -> None:
    """Raise NotPermitted unless `actor` may write `obj` (a row, or a model class with the
    owning `team` given)."""
    require(actor, right_for(obj), obj.team_id if team is None else team)


def teams_where(actor, right: Right) -> QuerySet[Team]:
    """The teams in which `actor` holds `right` (for the pages' team choices)."""
    return access.teams_with_role(actor, *GRANTS[right])
