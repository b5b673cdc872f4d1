"""Forms of the recording pages. They validate; the views call services."""

import re
import uuid

from django import forms

from core import access, rights
from core.errors import InvalidInput
from core.models import (
    Condition,
    Membership,
    Operator,
    Robot,
    Task,
    TaskVersion,
    Team,
    Visibility,
)
from core.pages.refusals import show_refusal
from teleop import datasets, selectors
from teleop.models import CollectionProtocol, DatasetExport, Episode, Label
from teleop.services import protocols


class SessionForm(forms.Form):
    robot = forms.ModelChoiceField(queryset=Robot.objects.none())
    task_version = forms.ModelChoiceField(queryset=TaskVersion.objects.none(), label="Task version")
    operator = forms.ModelChoiceField(
        queryset=Operator.objects.none(),
        to_field_name="code",
        help_text="The pseudonym recorded with every episode.",
    )
    protocol = forms.ModelChoiceField(
        queryset=CollectionProtocol.objects.none(),
        required=False,
        label="Collection protocol (optional)",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # One records on a robot of one's own teams, whoever else it is shared with.
        self.fields["robot"].queryset = access.in_my_teams(
            Robot.objects.filter(status=Robot.Status.ACTIVE).select_related("embodiment"), user
        )
        tasks = access.visible(Task.objects.all(), user)
        self.fields["task_version"].queryset = (
            TaskVersion.objects.filter(task__in=tasks)
            .select_related("task")
            .order_by("task__name", "-number")
        )
        self.fields["operator"].queryset = access.in_my_teams(
            Operator.objects.filter(active=True), user
        )
        self.fields["protocol"].queryset = access.visible(
            CollectionProtocol.objects.filter(active=True), user
        )


class JudgementForm(forms.Form):
    """What a person judged of a take against the task's criteria: stages reached, failure
    codes (choices from the criteria) and notes. Labels and evaluation trial reports add their
    outcome."""

    stages_reached = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    failure_codes = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    notes = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args, criteria: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stages_reached"].choices = [
            (stage["id"], stage.get("description") or stage["id"])
            for stage in criteria.get("stages", [])
        ]
        self.fields["failure_codes"].choices = [
            (code["code"], code.get("description") or code["code"])
            for code in criteria.get("failure_codes", [])
        ]


class LabelForm(JudgementForm):
    outcome = forms.ChoiceField(choices=Label.Outcome.choices, widget=forms.RadioSelect)
    # Offered once a save was refused because the task's success check disagrees.
    confirm_disagreement = forms.BooleanField(
        required=False, label="Save anyway: I disagree with the success check"
    )
    field_order = ["outcome", "stages_reached", "failure_codes", "notes", "confirm_disagreement"]


class DiscardForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        label="Discard reason",
        error_messages={"required": "Say why the episode is discarded."},
        widget=forms.TextInput(
            attrs={"data-discard-reason": "", "placeholder": "Why is this take bad?"}
        ),
    )


SORTS = {
    "-created_at": "Newest first",
    "created_at": "Oldest first",
    "-duration_s": "Longest first",
    "duration_s": "Shortest first",
    "measured_hz": "Lowest control rate first",
}


class EpisodeFilterForm(forms.Form):
    task = forms.ChoiceField(required=False)
    robot = forms.ChoiceField(required=False)
    operator = forms.ChoiceField(required=False)
    outcome = forms.ChoiceField(
        required=False, choices=[("", "Any"), *Label.Outcome.choices, ("unlabelled", "Unlabelled")]
    )
    # Ready is the default of the shared filters (teleop.selectors.filter_episodes): it is
    # listed once, first, and an empty value (links made before it was listed) means it too.
    state = forms.ChoiceField(
        required=False,
        initial=Episode.State.READY,
        choices=[
            (Episode.State.READY, Episode.State.READY.label),
            *(choice for choice in Episode.State.choices if choice[0] != Episode.State.READY),
        ],
    )
    flag = forms.ChoiceField(
        required=False,
        label="Quality flag",
        help_text="A kind (check_failed) finds every flag of that kind.",
    )
    exclude_flagged = forms.BooleanField(required=False, label="Only unflagged episodes")
    include_discarded = forms.BooleanField(required=False, label="Include discarded episodes")
    recorded_after = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    recorded_before = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    sort = forms.ChoiceField(required=False, choices=list(SORTS.items()))

    def __init__(self, *args, episodes, **kwargs):
        super().__init__(*args, **kwargs)

        def choices(field):
            values = episodes.order_by(field).values_list(field, flat=True).distinct()
            return [("", "Any"), *((v, v) for v in values if v)]

        self.fields["task"].choices = choices("task_version__task__slug")
        flag_choices = [("", "Any")]
        for kind, flags in selectors.flag_choices(episodes):
            flag_choices.append((kind, f"{kind} (any)" if flags else kind))
            flag_choices += [(flag, f"\u2003{flag}") for flag in flags]
        self.fields["flag"].choices = flag_choices
        self.fields["robot"].choices = choices("robot__name")
        self.fields["operator"].choices = choices("operator__code")

    def filters(self) -> dict:
        """The shared episode filters (teleop.selectors.FILTER_KEYS) from the form."""
        data = self.cleaned_data
        filters = {k: data[k] for k in ("task", "robot", "operator", "outcome") if data.get(k)}
        if data.get("state") and data["state"] != Episode.State.READY:
            filters["state"] = data["state"]
        if data.get("flag"):
            filters["flags_any"] = [data["flag"]]
        for key in ("exclude_flagged", "include_discarded"):
            if data.get(key):
                filters[key] = True
        for key in ("recorded_after", "recorded_before"):
            if data.get(key):
                filters[key] = data[key].isoformat()
        return filters


class SaveViewForm(forms.Form):
    name = forms.CharField(max_length=200, label="Save these filters as a dataset view")
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        empty_label=None,
        help_text="The team that owns the view; you curate its datasets.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # The roles `datasets.create_view` accepts.
        self.fields["team"].queryset = access.teams_with_role(
            user, Membership.Role.RESEARCHER, Membership.Role.ADMIN
        ).order_by("name")


#: The image-size choice meaning "each camera's own size".
NATIVE_SIZE = "native"


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=DatasetExport.Format.choices)
    image_size = forms.ChoiceField(
        choices=[
            *((str(size), f"{size} x {size} pixels") for size in datasets.IMAGE_SIZES),
            (NATIVE_SIZE, "Each camera's own size"),
        ],
        initial=str(datasets.DEFAULT_IMAGE_SIZE),
        required=False,  # left out: the default size
        label="Image size (robomimic)",
        help_text="robomimic's image datasets are 84 x 84; every frame is resized to a square.",
        widget=forms.Select(attrs={"aria-describedby": "images-help"}),
    )
    images = forms.ChoiceField(
        choices=DatasetExport.Images.choices,
        initial=datasets.DEFAULT_IMAGES,
        label="Image compression (robomimic)",
        help_text="Compressed a frame at a time (HDF5 chunks of one image). LeRobot always "
        "stores camera frames as AV1 video.",
        widget=forms.Select(attrs={"aria-describedby": "images-help"}),
    )
    blur_faces = forms.BooleanField(
        required=False,
        label="Blur faces",
        help_text="Faces found in camera frames are blurred, in either format, by OpenCV's "
        "face detectors. It misses small, turned-away and covered faces (docs/privacy.md); "
        "the export says it was done. About half a second a camera frame.",
        widget=forms.CheckboxInput(attrs={"aria-describedby": "blur-faces-help"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("format") == DatasetExport.Format.LEROBOT:
            data["images"] = DatasetExport.Images.RAW  # the choices are robomimic's
            data["image_size"] = None
        else:
            size = data.get("image_size") or str(datasets.DEFAULT_IMAGE_SIZE)
            data["image_size"] = None if size == NATIVE_SIZE else int(size)
        return data


def _episode_ids(text: str) -> list[str]:
    """Episode ids from a text box: separated by spaces, commas or new lines."""
    ids = [part for part in re.split(r"[\s,]+", text) if part]
    bad = []
    for part in ids:
        try:
            uuid.UUID(part)
        except ValueError:
            bad.append(part)
    if bad:
        raise forms.ValidationError(
            f"Not an episode id: {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''}"
        )
    return ids


class ViewVersionForm(EpisodeFilterForm):
    """A new version of a dataset view: the episode browser's filters, plus episodes added or
    left out by id. Filters the form cannot show (a task version or condition id, several
    flags) are kept from the version it starts from; trims and per-episode metadata too."""

    includes = forms.CharField(
        required=False,
        label="Also include these episodes",
        help_text="Episode ids, one a line: ready episodes of the team, whatever the filters.",
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
    )
    excludes = forms.CharField(
        required=False,
        label="Leave out these episodes",
        help_text="Episode ids, one a line.",
        widget=forms.Textarea(attrs={"rows": 3, "class": "code"}),
    )

    def __init__(self, *args, version, **kwargs):
        self.version = version
        filters = version.filters
        flags = filters.get("flags_any") or []
        initial = {
            **{k: filters[k] for k in ("task", "robot", "operator", "outcome") if filters.get(k)},
            "state": filters.get("state") or Episode.State.READY,
            "flag": flags[0] if len(flags) == 1 else "",
            "exclude_flagged": bool(filters.get("exclude_flagged")),
            "include_discarded": bool(filters.get("include_discarded")),
            **{
                k: str(filters[k])[:10]
                for k in ("recorded_after", "recorded_before")
                if filters.get(k)
            },
            "includes": "\n".join(version.includes),
            "excludes": "\n".join(version.excludes),
        }
        super().__init__(*args, initial=initial, **kwargs)
        del self.fields["sort"]  # a view keeps no order of its own

    def clean_includes(self):
        return _episode_ids(self.cleaned_data.get("includes") or "")

    def clean_excludes(self):
        return _episode_ids(self.cleaned_data.get("excludes") or "")

    def kept_filters(self) -> dict:
        """The filters of the version it starts from that the form does not show."""
        kept = {k: v for k, v in self.version.filters.items() if k in ("task_version", "condition")}
        flags = self.version.filters.get("flags_any") or []
        if len(flags) > 1:
            kept["flags_any"] = flags
        return kept

    def version_filters(self) -> dict:
        """The new version's filters: the form's, with what it cannot show kept (several
        flags stay unless a flag is chosen)."""
        return {**self.kept_filters(), **self.filters()}


# --- Collection protocols -------------------------------------------------------------------


class ProtocolForm(forms.Form):
    """A protocol's settings; its condition targets are `ProtocolTargetFormSet`. The service
    (`teleop.services.protocols`) checks durations, cameras and targets."""

    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)
    name = forms.CharField(max_length=200)
    task_version = forms.ModelChoiceField(queryset=TaskVersion.objects.none(), label="Task version")
    instructions = forms.CharField(
        required=False,
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the operator reads in the console.",
    )
    min_control_hz = forms.FloatField(
        required=False, min_value=0, max_value=100000, label="Minimum control rate (Hz)"
    )
    min_duration_s = forms.FloatField(
        required=False, min_value=0, max_value=86400, label="Minimum duration (s)"
    )
    max_duration_s = forms.FloatField(
        required=False, min_value=0, max_value=86400, label="Maximum duration (s)"
    )
    required_cameras = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Episodes without one of these are flagged. Offered: the cameras every "
        "embodiment of the chosen task version has.",
    )
    visibility = forms.ChoiceField(choices=Visibility.choices, initial=Visibility.PRIVATE)
    shared_with = forms.ModelMultipleChoiceField(
        queryset=Team.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Shared with",
        help_text="Other teams that see it when the visibility is 'shared'.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        teams = rights.teams_where(user, rights.Right.AUTHOR).order_by("name")
        self.fields["team"].queryset = teams
        tasks = access.visible(Task.objects.all(), user)
        versions = (
            TaskVersion.objects.filter(task__in=tasks)
            .select_related("task")
            .prefetch_related("allowed_embodiments")
            .order_by("task__name", "-number")
        )
        self.fields["task_version"].queryset = versions
        # Each version's cameras, for the page script to offer only the chosen version's.
        self.cameras_by_version = {
            str(version.pk): protocols.protocol_cameras(version) for version in versions
        }
        cameras = sorted({name for names in self.cameras_by_version.values() for name in names})
        self.fields["required_cameras"].choices = [(name, name) for name in cameras]
        # A team sees its own protocols: "shared with" offers the others (with one team to
        # write for, it is left out; with several, the chosen one is refused in clean()).
        others = Team.objects.order_by("name")
        if len(teams) == 1:
            others = others.exclude(pk=teams[0].pk)
        self.fields["shared_with"].queryset = others

    def clean(self):
        data = super().clean()
        team, shared = data.get("team"), data.get("shared_with")
        if team is not None and shared is not None and team in shared:
            self.add_error("shared_with", f"'{team}' owns the protocol; share it with others.")
        # The service's checks of the settings, so every problem shows at once (the service
        # checks them again when it creates the protocol).
        if data.get("task_version") is not None:
            try:
                protocols.check_protocol_settings(
                    task_version=data["task_version"],
                    min_duration_s=data.get("min_duration_s"),
                    max_duration_s=data.get("max_duration_s"),
                    required_cameras=data.get("required_cameras") or [],
                )
            except InvalidInput as exc:
                show_refusal(self, exc)
        return data


class ProtocolTargetForm(forms.Form):
    condition = forms.ModelChoiceField(queryset=Condition.objects.none(), required=False)
    target_count = forms.IntegerField(
        min_value=1, max_value=1_000_000, required=False, label="Target episodes"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["condition"].queryset = access.visible(
            Condition.objects.select_related("team"), user
        )

    def clean(self):
        data = super().clean()
        if data.get("condition") and not data.get("target_count"):
            self.add_error("target_count", "How many accepted episodes under this condition?")
        if data.get("target_count") and not data.get("condition"):
            self.add_error("condition", "Choose the condition of this target.")
        return data


ProtocolTargetFormSet = forms.formset_factory(ProtocolTargetForm, extra=3, max_num=100)


def protocol_targets(formset) -> list[tuple[Condition, int]]:
    """The filled rows of a valid target formset (empty rows are left out)."""
    return [
        (form.cleaned_data["condition"], form.cleaned_data["target_count"])
        for form in formset.forms
        if form.cleaned_data.get("condition")
    ]
