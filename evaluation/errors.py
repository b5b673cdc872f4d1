"""Evaluation's domain errors (see core.errors for the base and the API mapping)."""

from core.errors import Conflict, InvalidInput


class RequirementsNotMet(InvalidInput):
    """A policy version needs observations, cameras or an action shape a robot lacks."""

    code = "requirements_not_met"


class DesignNotVisible(InvalidInput):
    """A benchmark others may read references a task or condition some of them may not
    see (its name would show on the benchmark and its leaderboard)."""

    code = "design_not_visible"


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
