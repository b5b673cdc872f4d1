"""Shared pieces of the evaluation services: their domain errors and the rights checks."""

from __future__ import annotations

from collections.abc import Iterable

from core import access
from core.errors import Conflict, InvalidInput, NotPermitted
from core.models import Membership, Team
from evaluation.models import Campaign

Role = Membership.Role


class RequirementsNotMet(InvalidInput):
    """A policy version needs observations, cameras or an action shape a robot lacks."""

    code = "requirements_not_met"


class BenchmarkFrozen(Conflict):
    code = "benchmark_frozen"


class CampaignNotDraft(Conflict):
    code = "campaign_not_draft"


class CampaignNotRunning(Conflict):
    code = "campaign_not_running"


class TrialNotAssigned(Conflict):
    code = "trial_not_assigned"


class TrialAlreadyReported(Conflict):
    code = "trial_already_reported"


# --- Rights ---------------------------------------------------------------------------------


def require_designer(actor, team_id) -> None:
    """Admins and researchers of the owning team define its policies, benchmarks and
    campaigns. Raises NotPermitted."""
    if not access.has_role(actor, team_id, Role.ADMIN, Role.RESEARCHER):
        raise NotPermitted("Only an admin or researcher of the owning team may do this.")


def set_shared_with(obj, shared_with: Iterable[Team] | None) -> None:
    """Set the teams a shared object is shared with (unchanged when `shared_with` is None)."""
    if shared_with is not None:
        obj.shared_with.set(list(shared_with))


def may_score(actor, campaign: Campaign) -> bool:
    """Operators and admins of the campaign's team run and score its trials."""
    return access.has_role(actor, campaign.team_id, Role.OPERATOR, Role.ADMIN)
