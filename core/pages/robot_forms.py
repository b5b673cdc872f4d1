"""Forms of the robot pages. They parse; the services validate and write (core/pages/robots.py
shows a service's refusal beside the field it names)."""

from __future__ import annotations

import json

from django import forms

from core import access, rights
from core.models import Embodiment, Robot, Team, Visibility

# What a new embodiment's spec box starts with: a complete spec to edit (docs/hdf5-format.md).
EXAMPLE_SPEC = {
    "joint_names": ["waist", "shoulder", "elbow", "wrist", "gripper"],
    "observations": {
        "qpos": {"shape": [5], "dtype": "float32"},
        "qvel": {"shape": [5], "dtype": "float32"},
    },
    "action": {"shape": [5], "dtype": "float32"},
    "cameras": [{"name": "cam_high", "width": 640, "height": 480, "fps": 30}],
    "control_hz": 50,
}


class _ManagedTeamForm(forms.Form):
    """A form whose object belongs to a team the person manages (`rights.Right.MANAGE`)."""

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = rights.teams_where(user, rights.Right.MANAGE).order_by(
            "name"
        )


class RobotForm(_ManagedTeamForm):
    name = forms.SlugField(max_length=80, help_text="Letters, digits, '-' and '_': arm-3.")
    embodiment = forms.ModelChoiceField(queryset=Embodiment.objects.none())
    site = forms.CharField(max_length=120, required=False)
    serial = forms.CharField(max_length=120, required=False, label="Serial number")
    status = forms.ChoiceField(choices=Robot.Status.choices, initial=Robot.Status.ACTIVE)
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, user=user, **kwargs)
        self.fields["embodiment"].queryset = access.visible(Embodiment.objects.all(), user)


class EmbodimentForm(_ManagedTeamForm):
    name = forms.SlugField(max_length=80, help_text="Unique on the platform: aloha-2-arm.")
    description = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PUBLIC)
    spec = forms.CharField(
        label="Spec (JSON)",
        initial=json.dumps(EXAMPLE_SPEC, indent=2),
        max_length=100_000,
        help_text="Joint names, observations and action with shape and dtype, cameras, "
        "control rate: the format the episode files follow (docs/hdf5-format.md).",
        widget=forms.Textarea(attrs={"rows": 18, "class": "code", "spellcheck": "false"}),
    )

    def clean_spec(self):
        try:
            return json.loads(self.cleaned_data["spec"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            ) from exc


class APIKeyForm(forms.Form):
    name = forms.CharField(
        max_length=120, required=False, help_text="Where the key lives: lab-pc, ci-runner."
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires",
        help_text="Leave empty for a key that lasts until it is revoked.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
