"""Forms of the authoring pages (policies, benchmarks, the campaign planner). They shape the
input; the services in `evaluation.services` decide and their refusals go beside the fields."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

from core import access, rights
from core.models import Condition, Operator, Robot, Task, TaskVersion, Team, Visibility
from evaluation.models import Benchmark, Campaign, Policy, PolicyVersion
from proving_ground.scoring import DEFAULT_SCORING_VERSION, SCORING_VERSIONS

AUTHOR = rights.Right.AUTHOR


def _author_teams(user):
    return rights.teams_where(user, AUTHOR).order_by("name")


class _UserForm(forms.Form):
    """A form whose choices depend on who fills it in (`user=`)."""

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user


class _Shared(_UserForm):
    """Team, visibility and the teams a shared object is shared with (never its own team)."""

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)
    shared_with = forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Only for “shared”: the other teams that may see it.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        teams = _author_teams(user)
        self.fields["team"].queryset = teams
        others = Team.objects.order_by("name")
        if teams.count() == 1:  # the one own team is never offered
            others = others.exclude(pk__in=teams.values("pk"))
        self.fields["shared_with"].queryset = others

    def clean(self):
        data = super().clean()
        team, shared = data.get("team"), data.get("shared_with") or []
        if team is not None and team in shared:
            self.add_error("shared_with", f"{team} owns it; share it with other teams.")
        if shared and data.get("visibility") != Visibility.SHARED:
            self.add_error("shared_with", "Only a shared one names teams; choose “shared”.")
        return data


# --- Policies -------------------------------------------------------------------------------

_SHAPE = re.compile(r"^\s*(any|\d+(\s*[,x]\s*\d+)*)\s*$")


def _shape(text: str) -> list[int] | None:
    """'7' -> [7]; '480, 640, 3' or '480x640x3' -> [480, 640, 3]; 'any' -> None."""
    text = text.strip().lower()
    if text == "any":
        return None
    return [int(part) for part in re.split(r"\s*[,x]\s*", text)]


class PolicyVersionForm(forms.Form):
    """One immutable version: a checkpoint (SHA-256, optionally where it is) or a server the
    robot queries, and what the policy needs from the robot (`requires`)."""

    label = forms.CharField(max_length=80, initial="v1", help_text="e.g. v1, step-40k.")
    checkpoint_sha256 = forms.RegexField(
        regex=r"^[0-9a-fA-F]{64}$",
        required=False,
        label="Checkpoint SHA-256",
        error_messages={"invalid": "64 hexadecimal characters (sha256sum of the file)."},
        widget=forms.TextInput(attrs={"class": "code", "autocomplete": "off"}),
    )
    checkpoint_uri = forms.CharField(
        max_length=500,
        required=False,
        label="Checkpoint location",
        help_text="Where the robot fetches it, e.g. s3://lab/act/v1.ckpt (optional).",
    )
    server_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        required=False,
        label="Policy server URL",
        help_text="Instead of a checkpoint: the server the robot queries for actions.",
    )
    observations = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
        help_text="One per line, key: shape per step, e.g. “qpos: 7”, “image: 480, 640, 3”, "
        "“effort: any”.",
    )
    cameras = forms.CharField(
        required=False, help_text="Camera names, comma separated, e.g. cam_high, cam_left."
    )
    action = forms.CharField(
        required=False,
        label="Action shape",
        help_text="e.g. 7 or 2, 7; empty: any shape.",
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    # The services' `requires` messages start with the part they are about.
    REQUIRES_FIELDS = ("observations", "cameras", "action")

    def clean_observations(self):
        observations = {}
        for number, line in enumerate(self.cleaned_data["observations"].splitlines(), 1):
            if not line.strip():
                continue
            key, colon, shape = line.partition(":")
            if not colon or not key.strip() or not _SHAPE.match(shape):
                raise ValidationError(
                    f"Line {number}: write “key: shape”, e.g. “qpos: 7” or “effort: any”."
                )
            observations[key.strip()] = _shape(shape)
        return observations

    def clean_cameras(self):
        return [name.strip() for name in self.cleaned_data["cameras"].split(",") if name.strip()]

    def clean_action(self):
        text = self.cleaned_data["action"].strip()
        if not text:
            return None
        if not _SHAPE.match(text):
            raise ValidationError("Numbers separated by commas, e.g. 7 or 2, 7; or “any”.")
        return _shape(text)

    def clean(self):
        data = super().clean()
        if not self.errors and not data.get("checkpoint_sha256") and not data.get("server_url"):
            self.add_error(
                "checkpoint_sha256", "Give the checkpoint's SHA-256 or a policy server URL."
            )
        return data

    def version_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "label": data["label"],
            "checkpoint_sha256": data["checkpoint_sha256"],
            "checkpoint_uri": data["checkpoint_uri"],
            "server_url": data["server_url"],
            "requires": {
                "observations": data["observations"],
                "cameras": data["cameras"],
                "action": data["action"],
            },
            "notes": data["notes"],
        }


class PolicyForm(_Shared):
    name = forms.CharField(max_length=200, help_text="e.g. act-pick.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    field_order = ["team", "name", "description", "visibility", "shared_with"]


# --- Benchmarks -----------------------------------------------------------------------------


class _Grid(_UserForm):
    """Task versions x conditions: every chosen pair is a cell."""

    task_versions = forms.ModelMultipleChoiceField(
        queryset=TaskVersion.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    conditions = forms.ModelMultipleChoiceField(
        queryset=Condition.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        tasks = access.visible(Task.objects.all(), user)
        self.fields["task_versions"].queryset = (
            TaskVersion.objects.filter(task__in=tasks)
            .select_related("task")
            .order_by("task__slug", "-number")
        )
        self.fields["task_versions"].label_from_instance = lambda v: (
            f"{v.task.name} v{v.number} ({v.time_limit_s:g} s)"
        )
        self.fields["conditions"].queryset = access.visible(Condition.objects.all(), user).order_by(
            "factor", "level"
        )

    def grid(self) -> dict:
        """Rows and columns of the cell grid and which cells the current choice makes."""
        chosen_versions = {str(v) for v in self["task_versions"].value() or []}
        chosen_conditions = {str(c) for c in self["conditions"].value() or []}
        return {
            "rows": [
                (box, box.data["value"] is not None and str(box.data["value"]) in chosen_versions)
                for box in self["task_versions"]
            ],
            "columns": list(self["conditions"]),
            "chosen_conditions": chosen_conditions,
            "fields": [self["task_versions"], self["conditions"]],
        }


class BenchmarkForm(_Grid, _Shared):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    trials_per_cell = forms.IntegerField(
        min_value=1,
        max_value=10_000,
        initial=10,
        help_text="Per policy and cell, in every campaign on the benchmark.",
    )
    scoring_version = forms.ChoiceField(
        choices=[(name, name) for name in reversed(SCORING_VERSIONS)],
        initial=DEFAULT_SCORING_VERSION,
        help_text="How trials become the leaderboard (docs/statistics.md); the newest is the "
        "default.",
    )
    field_order = ["team", "name", "description", "visibility", "shared_with"]


# --- Campaigns ------------------------------------------------------------------------------


class PlanForm(_Grid):
    """What the planner's figures need: policies, the design, trials per cell, the mode, and
    the difference to detect."""

    DESIGN_CHOICES = [("benchmark", "A published benchmark"), ("grid", "An ad hoc grid")]

    policy_versions = forms.ModelMultipleChoiceField(
        queryset=PolicyVersion.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        label="Policy versions",
    )
    design = forms.ChoiceField(
        choices=DESIGN_CHOICES, initial="benchmark", widget=forms.RadioSelect, label="Cells from"
    )
    benchmark = forms.ModelChoiceField(
        queryset=Benchmark.objects.none(), required=False, empty_label="—"
    )
    trials_per_cell = forms.IntegerField(
        min_value=1,
        max_value=10_000,
        required=False,
        initial=10,
        help_text="Per policy and cell (ad hoc grid; a benchmark sets its own).",
    )
    mode = forms.ChoiceField(
        choices=Campaign.Mode.choices, initial=Campaign.Mode.INTERLEAVED, widget=forms.RadioSelect
    )
    baseline = forms.FloatField(
        min_value=0,
        max_value=1,
        initial=0.5,
        label="Baseline success rate",
        help_text="The rate you expect of the weaker policy, 0 to 1.",
    )
    difference = forms.FloatField(
        min_value=0.01,
        max_value=1,
        initial=0.2,
        label="Difference to detect",
        help_text="e.g. 0.2 for 50% vs 70%.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        policies = access.visible(Policy.objects.all(), user)
        self.fields["policy_versions"].queryset = (
            PolicyVersion.objects.filter(policy__in=policies)
            .select_related("policy")
            .order_by("policy__name", "-created_at")
        )
        self.fields["benchmark"].label_from_instance = lambda b: (
            f"{b.name} ({b.team.name}, {b.trials_per_cell} per cell)"
        )
        self.fields["benchmark"].queryset = access.visible(
            Benchmark.objects.filter(published_at__isnull=False).select_related("team"), user
        ).order_by("name")

    def clean(self):
        data = super().clean()
        if data.get("design") == "benchmark":
            if not data.get("benchmark"):
                self.add_error("benchmark", "Choose a published benchmark, or an ad hoc grid.")
        elif data.get("design") == "grid":
            if not data.get("task_versions"):
                self.add_error("task_versions", "Choose at least one task version.")
            if not data.get("conditions"):
                self.add_error("conditions", "Choose at least one condition.")
            if not data.get("trials_per_cell"):
                self.add_error("trials_per_cell", "Required for an ad hoc grid.")
        baseline, difference = data.get("baseline"), data.get("difference")
        if baseline is not None and difference is not None and baseline + difference > 1:
            self.add_error("difference", "The baseline plus the difference is above 1.")
        return data

    def cells_and_trials(self) -> tuple[list[float], int] | None:
        """(the task time limit of every cell, trials per cell), from valid data."""
        data = self.cleaned_data
        if data.get("design") == "benchmark" and data.get("benchmark"):
            benchmark = data["benchmark"]
            limits = list(benchmark.cells.values_list("task_version__time_limit_s", flat=True))
            return limits, benchmark.trials_per_cell
        if data.get("task_versions") and data.get("conditions") and data.get("trials_per_cell"):
            per_condition = len(data["conditions"])
            limits = [v.time_limit_s for v in data["task_versions"] for _ in range(per_condition)]
            return limits, data["trials_per_cell"]
        return None


class CampaignForm(_Shared, PlanForm):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    robots = forms.ModelMultipleChoiceField(
        queryset=Robot.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    operators = forms.ModelMultipleChoiceField(
        queryset=Operator.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Who scores its trials (by pseudonym); they see aliases while it is blinded.",
    )
    blinded = forms.BooleanField(
        required=False,
        initial=True,
        label="Blinded",
        help_text="Operators and robots see aliases (“policy A”) until the campaign is done.",
    )
    robot_assignment = forms.ChoiceField(
        choices=Campaign.RobotAssignment.choices,
        initial=Campaign.RobotAssignment.DEALT,
        widget=forms.RadioSelect,
        label="How robots get trials",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        teams = _author_teams(user)
        self.fields["robots"].queryset = (
            Robot.objects.filter(team__in=teams)
            .exclude(status=Robot.Status.RETIRED)
            .select_related("embodiment")
            .order_by("name")
        )
        self.fields["robots"].label_from_instance = lambda r: f"{r.name} ({r.embodiment.name})"
        self.fields["operators"].queryset = Operator.objects.filter(
            team__in=teams, active=True
        ).order_by("code")

    def campaign_arguments(self) -> dict:
        data = self.cleaned_data
        on_benchmark = data["design"] == "benchmark"
        arguments = {
            "team": data["team"],
            "name": data["name"],
            "description": data["description"],
            "policy_versions": data["policy_versions"],
            "robots": data["robots"],
            "operators": data["operators"],
            "mode": data["mode"],
            "robot_assignment": data["robot_assignment"],
            "blinded": data["blinded"],
            "visibility": data["visibility"],
            "shared_with": data["shared_with"],
        }
        if on_benchmark:
            arguments["benchmark"] = data["benchmark"]
        else:
            arguments |= {
                "task_versions": data["task_versions"],
                "conditions": data["conditions"],
                "trials_per_cell": data["trials_per_cell"],
            }
        return arguments
