"""Forms of the task and condition pages. They only shape input: the services validate it
(rights, criteria, time limits, uniqueness) and their messages are put beside the fields
(`core.pages.refusals.show_refusal`), so a page refuses exactly what the API refuses."""

from __future__ import annotations

import json

from django import forms

from core import access, rights
from core.models import Embodiment, TaskVersion, Team, Visibility

# Pages offer private and public; sharing with named teams is the API's for now.
_PAGE_VISIBILITIES = [
    (Visibility.PRIVATE, "Private: my team only"),
    (Visibility.PUBLIC, "Public: everyone"),
]


class CriteriaJSONField(forms.CharField):
    """The criteria document as JSON text; only its syntax is checked here."""

    widget = forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"})

    def to_python(self, value):
        text = super().to_python(value)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value


class TaskVersionForm(forms.Form):
    """What a version holds. The bounds (time limit, at least one embodiment, the criteria's
    rules) are the service's, not repeated here."""

    instruction = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}))
    scene_setup = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="How to set the scene before each attempt.",
    )
    time_limit_s = forms.FloatField(label="Time limit (s)")
    allowed_embodiments = forms.ModelMultipleChoiceField(
        queryset=Embodiment.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Robots of these embodiments may record and run this task.",
    )
    criteria = CriteriaJSONField(
        label="Success criteria (JSON)",
        help_text="pg-criteria/1 (docs/criteria.md): the editor writes it, or write it here.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["allowed_embodiments"].queryset = access.visible(
            Embodiment.objects.all(), user
        ).order_by("name")

    def version_fields(self) -> dict:
        data = self.cleaned_data
        return {
            "instruction": data["instruction"],
            "scene_setup": data.get("scene_setup") or "",
            "time_limit_s": data["time_limit_s"],
            "criteria": data["criteria"],
            "allowed_embodiments": list(data["allowed_embodiments"]),
        }

    @classmethod
    def initial_from(cls, version: TaskVersion) -> dict:
        return {
            "instruction": version.instruction,
            "scene_setup": version.scene_setup,
            "time_limit_s": version.time_limit_s,
            "allowed_embodiments": list(version.allowed_embodiments.all()),
            "criteria": version.criteria,
        }


class TaskForm(TaskVersionForm):
    """A new task and its first version."""

    field_order = ["team", "slug", "name", "visibility"]

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    slug = forms.SlugField(
        max_length=80, help_text="Short name in URLs and the API: lowercase, digits, '-'."
    )
    name = forms.CharField(max_length=200)
    visibility = forms.ChoiceField(choices=_PAGE_VISIBILITIES, initial=Visibility.PRIVATE)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["team"].queryset = rights.teams_where(user, rights.Right.AUTHOR).order_by(
            "name"
        )


class ConditionForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    factor = forms.SlugField(max_length=60, help_text="What varies, e.g. lighting.")
    level = forms.SlugField(max_length=60, help_text="This setting of it, e.g. dim.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    reset_instructions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What the operator does to set the scene to this condition.",
    )
    visibility = forms.ChoiceField(choices=_PAGE_VISIBILITIES, initial=Visibility.PRIVATE)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = rights.teams_where(user, rights.Right.AUTHOR).order_by(
            "name"
        )
