"""Forms of the evaluation pages. They validate shape; the services decide the rest."""

from django import forms

from evaluation.models import InvalidReason, Outcome, Trial
from teleop.forms import JudgementForm


class TrialReportForm(JudgementForm):
    """An operator's score for one trial: the same fields the API's result takes."""

    outcome = forms.ChoiceField(
        choices=Outcome.choices,
        widget=forms.RadioSelect,
        required=False,
        help_text="Leave empty only for an invalid trial, or when the task's success check "
        "decides it from the attached episode.",
    )
    valid = forms.ChoiceField(
        choices=[
            ("yes", "Valid: counts on the leaderboard"),
            ("no", "Invalid: left out of success rates"),
        ],
        widget=forms.RadioSelect,
        initial="yes",
        label="Validity",
    )
    invalid_reason = forms.ChoiceField(
        choices=[("", "—")] + InvalidReason.choices,
        required=False,
        label="Why invalid",
    )
    field_order = [
        "outcome",
        "stages_reached",
        "failure_codes",
        "valid",
        "invalid_reason",
        "notes",
    ]

    def clean(self):
        data = super().clean()
        valid = data.get("valid") == "yes"
        if not valid and not data.get("invalid_reason"):
            self.add_error("invalid_reason", "Say why the trial is invalid.")
        if valid and data.get("invalid_reason"):
            self.add_error("invalid_reason", "A valid trial has no invalid reason.")
        return data

    @classmethod
    def for_trial(cls, trial: Trial, data=None) -> "TrialReportForm":
        """The form for `trial`: choices from its task version's criteria, its current report
        as the starting values (a correction), and element ids of its own, so the console can
        show one form per robot on a page."""
        if trial.state in (Trial.State.DONE, Trial.State.INVALID):
            initial = {
                "outcome": trial.outcome,
                "stages_reached": trial.stages_reached,
                "failure_codes": trial.failure_codes,
                "valid": "yes" if trial.state == Trial.State.DONE else "no",
                "invalid_reason": trial.invalid_reason,
                "notes": trial.notes,
            }
        else:
            initial = {"valid": "yes"}
        return cls(
            data,
            criteria=trial.task_version.criteria,
            initial=initial,
            auto_id=f"trial-{trial.pk}-%s",
        )
