"""Shared pieces of the evaluation services (their domain errors are in `evaluation.errors`)."""

from __future__ import annotations

from collections.abc import Iterable

from core import rights
from core.models import Team

# --- Rights ---------------------------------------------------------------------------------


def require_designer(actor, team_id) -> None:
    """Admins and researchers of the owning team define its policies, benchmarks and
    campaigns. Raises NotPermitted."""
    rights.require(actor, rights.Right.AUTHOR, team_id)


def set_shared_with(obj, shared_with: Iterable[Team] | None) -> None:
    """Set the teams a shared object is shared with (unchanged when `shared_with` is None)."""
    if shared_with is not None:
        obj.shared_with.set(list(shared_with))
