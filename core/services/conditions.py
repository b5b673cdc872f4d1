"""Conditions: the settings trials and recordings run under."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import IntegrityError

from core.errors import Conflict
from core.models import Condition, Team, Visibility
from core.services.team_owned import create_team_owned, delete_team_owned, update_team_owned

# --- Conditions -----------------------------------------------------------------------------


def create_condition(
    *,
    actor,
    team: Team,
    factor: str,
    level: str,
    description: str = "",
    reset_instructions: str = "",
    visibility: str = Visibility.PUBLIC,
    shared_with: Iterable[Team] = (),
) -> Condition:
    """Raises NotPermitted, Conflict (the level exists in the team)."""
    return create_team_owned(
        Condition,
        actor=actor,
        conflict=f"Condition '{factor}: {level}' exists in this team already.",
        shared_with=shared_with,
        team=team,
        factor=factor,
        level=level,
        description=description,
        reset_instructions=reset_instructions,
        visibility=visibility,
    )


def update_condition(*, actor, condition: Condition, **changes) -> Condition:
    try:
        return update_team_owned(
            actor=actor,
            obj=condition,
            changes=changes,
            allowed={"factor", "level", "description", "reset_instructions", "visibility"},
        )
    except IntegrityError as exc:
        raise Conflict("That condition level exists in this team already.") from exc


def delete_condition(*, actor, condition: Condition) -> None:
    delete_team_owned(actor=actor, obj=condition)
