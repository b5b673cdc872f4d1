"""Embodiments: a robot's kind, with its checked embodiment spec."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError

from core.embodiment_spec import EmbodimentSpecError, parse_embodiment_spec
from core.errors import Conflict, InvalidInput
from core.models import Embodiment, Team, Visibility
from core.services.team_owned import (
    create_team_owned,
    delete_team_owned,
    require_manager,
    update_team_owned,
)

# --- Embodiments ----------------------------------------------------------------------------


def valid_spec(spec: Any) -> dict:
    """The spec, checked and normalized; the service, the pages and the admin call it.
    Raises InvalidInput (field `spec`, each problem with its location)."""
    try:
        return parse_embodiment_spec(spec).to_dict()
    except EmbodimentSpecError as exc:
        raise InvalidInput(
            "The embodiment spec is not valid.", fields={"spec": exc.messages}
        ) from exc


def create_embodiment(
    *,
    actor,
    team: Team,
    name: str,
    spec: dict,
    description: str = "",
    visibility: str = Visibility.PUBLIC,
    shared_with: Iterable[Team] = (),
) -> Embodiment:
    """Raises NotPermitted, InvalidInput (bad spec), Conflict (name taken)."""
    require_manager(actor, team)  # before validating: strangers learn nothing
    return create_team_owned(
        Embodiment,
        actor=actor,
        conflict=f"An embodiment named '{name}' exists already.",
        shared_with=shared_with,
        team=team,
        name=name,
        spec=valid_spec(spec),
        description=description,
        visibility=visibility,
    )


def update_embodiment(*, actor, embodiment: Embodiment, **changes) -> Embodiment:
    if "spec" in changes:
        changes["spec"] = valid_spec(changes["spec"])
    try:
        return update_team_owned(
            actor=actor,
            obj=embodiment,
            changes=changes,
            allowed={"name", "spec", "description", "visibility"},
        )
    except IntegrityError as exc:
        raise Conflict(f"An embodiment named '{changes.get('name')}' exists already.") from exc


def delete_embodiment(*, actor, embodiment: Embodiment) -> None:
    delete_team_owned(actor=actor, obj=embodiment)
