"""Evaluation API serializers: inputs validate, outputs shape; neither writes.

Blinding lives here as separate output shapes: the `Blind*` serializers have no field that
could carry a policy's name, version or id (nor the seed, from which the aliases follow).
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from core import access
from core.api.serializers import (
    MAX_TEXT,
    CriteriaField,
    SharingInput,
    StrictInputSerializer,
    TeamField,
)
from core.models import Condition, Operator, Robot, Task, TaskVersion
from evaluation import selectors
from evaluation.models import (
    Benchmark,
    Campaign,
    InvalidReason,
    Outcome,
    Policy,
    PolicyVersion,
    Trial,
    TrialReport,
)
from proving_ground.scheduling import MAX_SEED
from proving_ground.scoring import SCORING_VERSIONS
from teleop.api.serializers import VisiblePrimaryKeyField

SHA256_HEX = r"^[0-9a-fA-F]{64}$"


def _visible_task_versions(actor):
    return TaskVersion.objects.filter(task__in=access.visible(Task.objects.all(), actor))


def _visible_conditions(actor):
    return access.visible(Condition.objects.all(), actor)


def _visible_policy_versions(actor):
    return PolicyVersion.objects.filter(
        policy__in=access.visible(Policy.objects.all(), actor)
    ).select_related("policy")


def _visible_benchmarks(actor):
    return access.visible(Benchmark.objects.all(), actor)


def _visible_robots(actor):
    return access.visible(Robot.objects.select_related("embodiment"), actor)


@extend_schema_field(OpenApiTypes.UUID)
class VisibleIdField(VisiblePrimaryKeyField):
    """An object among those the caller may see, by id (documented as a UUID)."""


class OperatorCodeField(serializers.SlugRelatedField):
    """An operator of one of the caller's teams, by pseudonym code."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="code", queryset=Operator.objects.all(), **kwargs)

    def get_queryset(self):
        return access.in_my_teams(Operator.objects.all(), self.context["request"].user)


def _ids(field, **kwargs):
    return serializers.ListField(child=field, max_length=1000, **kwargs)


# --- Inputs ---------------------------------------------------------------------------------


class PolicyIn(SharingInput):
    team = TeamField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, required=False)


class PolicyPatch(SharingInput):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, required=False)


class PolicyVersionIn(StrictInputSerializer):
    label = serializers.CharField(max_length=80)
    checkpoint_sha256 = serializers.RegexField(SHA256_HEX, required=False, allow_blank=True)
    checkpoint_uri = serializers.CharField(max_length=500, required=False, allow_blank=True)
    server_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    requires = serializers.JSONField(
        required=False,
        help_text='{"observations": {"qpos": [7]}, "cameras": ["cam_high"], "action": [7]}; '
        "null as a shape accepts any shape.",
    )
    notes = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, required=False)


class BenchmarkIn(SharingInput):
    team = TeamField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, required=False)
    task_versions = _ids(VisibleIdField(_visible_task_versions), min_length=1)
    conditions = _ids(VisibleIdField(_visible_conditions), min_length=1)
    trials_per_cell = serializers.IntegerField(min_value=1, max_value=10_000)
    scoring_version = serializers.ChoiceField(choices=list(SCORING_VERSIONS), required=False)


class BenchmarkPatch(SharingInput):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, required=False)
    task_versions = _ids(VisibleIdField(_visible_task_versions), required=False)
    conditions = _ids(VisibleIdField(_visible_conditions), required=False)
    trials_per_cell = serializers.IntegerField(min_value=1, max_value=10_000, required=False)
    scoring_version = serializers.ChoiceField(choices=list(SCORING_VERSIONS), required=False)


class CampaignIn(SharingInput):
    team = TeamField()
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=MAX_TEXT, allow_blank=True, required=False)
    benchmark = VisibleIdField(_visible_benchmarks, required=False, allow_null=True)
    task_versions = _ids(VisibleIdField(_visible_task_versions), required=False)
    conditions = _ids(VisibleIdField(_visible_conditions), required=False)
    trials_per_cell = serializers.IntegerField(
        min_value=1, max_value=10_000, required=False, allow_null=True
    )
    scoring_version = serializers.ChoiceField(choices=list(SCORING_VERSIONS), required=False)
    policy_versions = _ids(VisibleIdField(_visible_policy_versions), min_length=1)
    robots = _ids(VisibleIdField(_visible_robots), min_length=1)
    operators = _ids(OperatorCodeField(), required=False)
    mode = serializers.ChoiceField(choices=Campaign.Mode.choices, required=False)
    robot_assignment = serializers.ChoiceField(
        choices=Campaign.RobotAssignment.choices, required=False
    )
    blinded = serializers.BooleanField(required=False)
    seed = serializers.IntegerField(min_value=0, max_value=MAX_SEED, required=False)


class ResultIn(StrictInputSerializer):
    outcome = serializers.ChoiceField(choices=Outcome.choices, required=False, allow_null=True)
    stages_reached = serializers.ListField(
        child=serializers.SlugField(max_length=64), required=False, max_length=64
    )
    failure_codes = serializers.ListField(
        child=serializers.SlugField(max_length=64), required=False, max_length=64
    )
    valid = serializers.BooleanField(default=True)
    invalid_reason = serializers.ChoiceField(
        choices=InvalidReason.choices, required=False, allow_blank=True
    )
    notes = serializers.CharField(max_length=5000, required=False, allow_blank=True)
    episode = serializers.UUIDField(required=False, allow_null=True)
    operator = serializers.CharField(max_length=32, required=False, allow_blank=True)


class PageParams(StrictInputSerializer):
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=10**9, required=False)


class TrialFilter(PageParams):
    campaign = serializers.UUIDField(required=False)
    state = serializers.ChoiceField(choices=Trial.State.choices, required=False)
    task_version = serializers.UUIDField(required=False)
    condition = serializers.UUIDField(required=False)
    robot = serializers.UUIDField(required=False)
    alias = serializers.CharField(max_length=40, required=False)
    policy_version = serializers.UUIDField(required=False)


class CellTrialsFilter(PageParams):
    policy_version = serializers.UUIDField(required=False)
    task_version = serializers.UUIDField(required=False)
    condition = serializers.UUIDField(required=False)
    check_disagrees = serializers.BooleanField(
        required=False, help_text="true: the trials whose automatic check contradicts the outcome."
    )


class CompareParams(StrictInputSerializer):
    a = serializers.CharField(max_length=64, help_text="A policy version id, or an alias.")
    b = serializers.CharField(max_length=64, help_text="A policy version id, or an alias.")


class TeamParams(PageParams):
    team = serializers.SlugField(max_length=60, required=False)
    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False)


# --- Outputs --------------------------------------------------------------------------------


class PolicyVersionOut(serializers.ModelSerializer):
    class Meta:
        model = PolicyVersion
        fields = [
            "id",
            "policy",
            "label",
            "checkpoint_sha256",
            "checkpoint_uri",
            "server_url",
            "requires",
            "notes",
            "created_at",
        ]


class PolicyOut(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    shared_with = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    versions = PolicyVersionOut(many=True, read_only=True)

    class Meta:
        model = Policy
        fields = [
            "id",
            "name",
            "description",
            "team",
            "visibility",
            "shared_with",
            "versions",
            "created_at",
            "updated_at",
        ]


class CellOut(serializers.Serializer):
    task_version = serializers.UUIDField(source="task_version_id")
    task = serializers.SerializerMethodField()
    condition = serializers.UUIDField(source="condition_id")
    condition_label = serializers.SerializerMethodField()

    def get_task(self, cell) -> str:
        return f"{cell.task_version.task.slug} v{cell.task_version.number}"

    def get_condition_label(self, cell) -> str:
        return str(cell.condition)


class BenchmarkOut(serializers.ModelSerializer):
    """A benchmark. The labels of task versions and conditions the reader may not see (made
    less visible after the benchmark referenced them) are masked as on its leaderboard
    (`selectors.mask_hidden_design`): the context's `hidden_design`
    (`selectors.hidden_design_ids`, one call per page), else computed for the request's user."""

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    shared_with = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    published = serializers.BooleanField(source="is_published", read_only=True)
    cells = CellOut(many=True, read_only=True)

    class Meta:
        model = Benchmark
        fields = [
            "id",
            "name",
            "description",
            "team",
            "visibility",
            "shared_with",
            "trials_per_cell",
            "scoring_version",
            "published",
            "published_at",
            "cells",
            "created_at",
            "updated_at",
        ]

    def to_representation(self, benchmark):
        data = super().to_representation(benchmark)
        hidden = self.context.get("hidden_design")
        if hidden is None:
            request = self.context.get("request")
            hidden = selectors.hidden_design_ids(
                request.user if request is not None else None,
                [cell["task_version"] for cell in data["cells"]],
                [cell["condition"] for cell in data["cells"]],
            )
        if not any(hidden):
            return data
        # Numbered in the board's order (cells by task, then condition label).
        ordered = sorted(data["cells"], key=lambda cell: (cell["task"], cell["condition_label"]))
        task_labels, condition_labels = selectors.design_placeholders(
            list(dict.fromkeys(cell["task_version"] for cell in ordered)),
            list(dict.fromkeys(cell["condition"] for cell in ordered)),
            hidden,
        )
        data["cells"] = [
            cell
            | {
                "task": task_labels.get(cell["task_version"], cell["task"]),
                "condition_label": condition_labels.get(cell["condition"], cell["condition_label"]),
            }
            for cell in data["cells"]
        ]
        return data


class CampaignPolicyOut(serializers.Serializer):
    id = serializers.UUIDField()
    policy = serializers.CharField(source="policy.name")
    policy_id = serializers.UUIDField()
    version = serializers.CharField(source="label")
    alias = serializers.SerializerMethodField()

    def get_alias(self, version) -> str | None:
        return self.context.get("aliases", {}).get(str(version.pk))


class BlindCampaignOut(serializers.ModelSerializer):
    """A campaign as a blinded viewer sees it: aliases, no policies, no seed (and no other
    field: `closed_shape`)."""

    closed_shape = True

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    benchmark = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    robots = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    operators = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    cells = CellOut(many=True, read_only=True)
    aliases = serializers.SerializerMethodField()
    blinded_view = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "description",
            "team",
            "visibility",
            "benchmark",
            "trials_per_cell",
            "scoring_version",
            "mode",
            "robot_assignment",
            "blinded",
            "status",
            "aliases",
            "robots",
            "operators",
            "cells",
            "created_at",
            "started_at",
            "finished_at",
            "blinded_view",
        ]

    def get_aliases(self, campaign) -> list[str]:
        return sorted(self.context.get("aliases", {}).values())

    def get_blinded_view(self, campaign) -> bool:
        return True


class CampaignOut(BlindCampaignOut):
    """A campaign as an unblinded viewer sees it: its policies, seed and schedule too."""

    closed_shape = False

    shared_with = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    policy_versions = serializers.SerializerMethodField()

    class Meta(BlindCampaignOut.Meta):
        fields = [
            *BlindCampaignOut.Meta.fields,
            "shared_with",
            "policy_versions",
            "seed",
            "schedule_algorithm",
            "schedule_fingerprint",
        ]

    @extend_schema_field(CampaignPolicyOut(many=True))
    def get_policy_versions(self, campaign) -> list:
        return CampaignPolicyOut(
            campaign.policy_versions.all(), many=True, context=self.context
        ).data

    def get_blinded_view(self, campaign) -> bool:
        return False


def campaign_or_blind_out(many: bool = False) -> PolymorphicProxySerializer:
    """For the schema: a campaign answers in the full shape, or the blinded one to a viewer
    who must not learn which policy is which (`blinded_view` tells them apart)."""
    return PolymorphicProxySerializer(
        component_name="CampaignOrBlindOut",
        serializers=[CampaignOut, BlindCampaignOut],
        resource_type_field_name=None,
        many=many,
    )


def trial_or_blind_out(many: bool = False) -> PolymorphicProxySerializer:
    """For the schema: a trial answers in the full shape, or the blinded one to a viewer who
    must not learn its policy."""
    return PolymorphicProxySerializer(
        component_name="TrialOrBlindOut",
        serializers=[TrialOut, BlindTrialOut],
        resource_type_field_name=None,
        many=many,
    )


_TRIAL_FIELDS = [
    "id",
    "campaign",
    "order",
    "block",
    "alias",
    "task_version",
    "condition",
    "robot",
    "pair_id",
    "pair_position",
    "state",
    "outcome",
    "stages_reached",
    "stage_score",
    "failure_codes",
    "invalid_reason",
    "notes",
    "episode",
    "check_outcome",
    "check_disagrees",
    "outcome_source",
    "operator",
    "assigned_at",
    "reported_at",
]


class BlindTrialOut(serializers.ModelSerializer):
    """A trial as a blinded viewer sees it: no field names its policy (nor any other field:
    `closed_shape`)."""

    closed_shape = True

    robot = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    operator = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = Trial
        fields = _TRIAL_FIELDS


class TrialOut(BlindTrialOut):
    closed_shape = False
    policy = serializers.CharField(source="policy_version.policy.name", read_only=True)
    version = serializers.CharField(source="policy_version.label", read_only=True)

    class Meta:
        model = Trial
        fields = [*_TRIAL_FIELDS, "policy_version", "policy", "version"]


class TaskBriefOut(serializers.ModelSerializer):
    task = serializers.CharField(source="task.slug")
    criteria = CriteriaField(read_only=True)

    class Meta:
        model = TaskVersion
        fields = ["id", "task", "number", "instruction", "scene_setup", "time_limit_s", "criteria"]


class ConditionBriefOut(serializers.ModelSerializer):
    reference_image = serializers.FileField(read_only=True, use_url=True)

    class Meta:
        model = Condition
        fields = ["id", "factor", "level", "description", "reset_instructions", "reference_image"]


class LoadOut(serializers.Serializer):
    """What the robot loads: a checkpoint (by hash, and where from) or a policy server."""

    checkpoint_sha256 = serializers.CharField()
    checkpoint_uri = serializers.CharField()
    server_url = serializers.CharField()


class NamedLoadOut(LoadOut):
    policy_version = serializers.UUIDField(source="id")
    policy = serializers.CharField(source="policy.name")
    version = serializers.CharField(source="label")


class RobotTrialOut(serializers.ModelSerializer):
    """The next-trial answer: what to load, the task, the condition to set up."""

    task_version = TaskBriefOut(read_only=True)
    condition = ConditionBriefOut(read_only=True)
    load = serializers.SerializerMethodField()
    report_url = serializers.SerializerMethodField()

    class Meta:
        model = Trial
        fields = [
            "id",
            "campaign",
            "order",
            "block",
            "alias",
            "pair_id",
            "pair_position",
            "state",
            "load",
            "task_version",
            "condition",
            "assigned_at",
            "report_url",
        ]

    def get_load(self, trial) -> LoadOut:
        blinded = self.context.get("blinded", True)
        shape = LoadOut if blinded else NamedLoadOut
        return shape(trial.policy_version).data

    def get_report_url(self, trial) -> str:
        request = self.context.get("request")
        path = f"/api/v1/trials/{trial.pk}/result"
        return request.build_absolute_uri(path) if request is not None else path


class TrialReportOut(serializers.ModelSerializer):
    operator = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    reporter = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    class Meta:
        model = TrialReport
        fields = [
            "id",
            "state",
            "outcome",
            "stages_reached",
            "stage_score",
            "failure_codes",
            "invalid_reason",
            "notes",
            "episode",
            "check_outcome",
            "check_disagrees",
            "source",
            "operator",
            "reporter",
            "created_at",
            "superseded_at",
            "current",
        ]

    def get_reporter(self, report) -> str:
        """A pseudonym: the robot's name or the operator's code, never a person's name."""
        if report.reporter_robot_id is not None:
            return f"robot:{report.reporter_robot.name}"
        if report.operator_id is not None:
            return f"operator:{report.operator.code}"
        return "person"

    def get_current(self, report) -> bool:
        return report.superseded_at is None


class CellProgressOut(serializers.Serializer):
    task_version_id = serializers.UUIDField()
    task = serializers.CharField()
    condition_id = serializers.UUIDField()
    condition = serializers.CharField()
    planned = serializers.IntegerField()
    done = serializers.IntegerField()
    invalid = serializers.IntegerField()
    assigned = serializers.IntegerField()
    remaining = serializers.IntegerField()


class ProgressOut(serializers.Serializer):
    planned = serializers.IntegerField()
    done = serializers.IntegerField()
    invalid = serializers.IntegerField()
    assigned = serializers.IntegerField()
    remaining = serializers.IntegerField()
    cells = CellProgressOut(many=True)


class ComparisonOut(serializers.Serializer):
    a = serializers.CharField()
    b = serializers.CharField()
    unpaired = serializers.DictField(allow_null=True)
    paired = serializers.DictField(allow_null=True)
    sequential = serializers.DictField(allow_null=True)
    notes = serializers.ListField(child=serializers.CharField())


class CellTrialOut(serializers.ModelSerializer):
    """A trial behind a leaderboard cell: enough to trace the figure, no personal data."""

    class Meta:
        model = Trial
        fields = [
            "id",
            "campaign",
            "order",
            "policy_version",
            "task_version",
            "condition",
            "state",
            "outcome",
            "stage_score",
            "invalid_reason",
            "check_outcome",
            "check_disagrees",
            "reported_at",
        ]


class NextTrialOut(serializers.Serializer):
    trial = RobotTrialOut(allow_null=True)
    detail = serializers.CharField()
