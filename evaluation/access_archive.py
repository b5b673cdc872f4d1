"""The evaluation app's part of an operator's access archive (core.access_archive): trials
run under the operator's code and trial reports the person gave.

Trials name the policy by its alias only, as the evaluation console does: an archive must
not unblind a running campaign to the operator who scores it.
"""

from __future__ import annotations

from core.access_archive import SectionData, Table, archive_section
from core.models import Operator
from evaluation.models import Trial, TrialReport

_TRIALS = Table(
    "trials",
    "Evaluation trials run under your operator code (policies by their alias only).",
    {
        "id": "the trial's id",
        "campaign": "the campaign's name",
        "alias": "the policy's alias in the campaign",
        "task": "the task's slug and version",
        "condition": "factor: level",
        "robot": "the robot's name",
        "state": "scheduled, assigned, done or invalid",
        "outcome": "success, failure or partial",
        "stage_score": "0-1",
        "failure_codes": "failure codes",
        "invalid_reason": "why it was invalid, if it was",
        "notes": "notes on the trial",
        "assigned_at": "when it was assigned",
        "reported_at": "when its outcome was reported",
    },
)
_REPORTS = Table(
    "trial_reports_given",
    "Trial reports and corrections you gave with your own account.",
    {
        "trial": "the trial's id",
        "state": "the state reported",
        "outcome": "success, failure or partial",
        "stages_reached": "stage ids",
        "stage_score": "0-1",
        "failure_codes": "failure codes",
        "invalid_reason": "why invalid, if so",
        "notes": "your notes",
        "source": "where the outcome came from (operator, check...)",
        "created_at": "when you gave it",
        "superseded_at": "when a newer report replaced it",
    },
)


@archive_section(_TRIALS, _REPORTS, order=20)
def read_evaluation(operator: Operator, *, user, include_files: bool) -> SectionData:
    data = SectionData()
    trials = (
        Trial.objects.filter(operator=operator)
        .select_related("campaign", "task_version__task", "condition", "robot")
        .order_by("campaign__name", "order")
    )
    data.rows["trials"] = [
        {
            "id": t.pk,
            "campaign": t.campaign.name,
            "alias": t.alias,
            "task": str(t.task_version),
            "condition": str(t.condition),
            "robot": t.robot.name if t.robot else "",
            "state": t.state,
            "outcome": t.outcome,
            "stage_score": t.stage_score,
            "failure_codes": t.failure_codes,
            "invalid_reason": t.invalid_reason,
            "notes": t.notes,
            "assigned_at": t.assigned_at,
            "reported_at": t.reported_at,
        }
        for t in trials
    ]
    data.rows["trial_reports_given"] = (
        []
        if user is None
        else [
            {name: getattr(r, name) for name in _REPORTS.columns if name != "trial"}
            | {"trial": r.trial_id}
            for r in TrialReport.objects.filter(reporter_user=user).order_by("created_at", "pk")
        ]
    )
    return data
