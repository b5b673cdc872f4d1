"""API serializers: input and output kept apart. Input serializers validate and refuse
unknown fields; output serializers shape answers. Neither writes: views call services."""

from django.db.models import Q
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import access
from core.criteria_schema import openapi_criteria_schema
from core.models import (
    AuditEvent,
    Condition,
    Embodiment,
    Operator,
    Robot,
    RobotAPIKey,
    Task,
    TaskVersion,
    Team,
    Visibility,
)

MAX_TEXT = 20_000


@extend_schema_field(openapi_criteria_schema())
class CriteriaField(serializers.JSONField):
    """A task version's success criteria (`pg-criteria/1`, docs/criteria.md), documented in
    the OpenAPI schema with the SDK's JSON Schema instead of a bare object."""


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know, instead of silently ignoring a typo."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {"unknown_fields": [f"Unknown field '{name}'." for name in unknown[:20]]}
                )
        return super().to_internal_value(data)


class VisibleSlugRelatedField(serializers.SlugRelatedField):
    """Refers to a team-owned object by a slug-like field, among those the caller can see,
    so an object of another team reads as 'does not exist'."""

    def get_queryset(self):
        return access.visible(super().get_queryset(), self.context["request"].user)


class TeamField(serializers.SlugRelatedField):
    """A team the caller belongs to, by slug (superusers: any team)."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Team.objects.all(), **kwargs)

    def get_queryset(self):
        return access.usable_teams(self.context["request"].user)


def _text(**kwargs):
    return serializers.CharField(max_length=MAX_TEXT, allow_blank=True, **kwargs)


class SharingInput(StrictInputSerializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    shared_with = serializers.ListField(
        child=serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all()),
        required=False,
        max_length=100,
    )


# --- Outputs --------------------------------------------------------------------------------


class TeamOut(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "name", "slug"]


class TeamOwnedOut(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    shared_with = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)


class EmbodimentOut(TeamOwnedOut):
    class Meta:
        model = Embodiment
        fields = [
            "id",
            "name",
            "description",
            "spec",
            "team",
            "visibility",
            "shared_with",
            "created_at",
            "updated_at",
        ]


class RobotOut(TeamOwnedOut):
    embodiment = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Robot
        fields = [
            "id",
            "name",
            "team",
            "embodiment",
            "site",
            "serial",
            "status",
            "software_version",
            "last_seen_at",
            "visibility",
            "shared_with",
            "created_at",
            "updated_at",
        ]


class APIKeyOut(serializers.ModelSerializer):
    class Meta:
        model = RobotAPIKey
        fields = ["id", "name", "prefix", "created_at", "expires_at", "revoked_at", "last_used_at"]


class APIKeyCreatedOut(APIKeyOut):
    key = serializers.CharField(help_text="The key in clear. Shown once; store it now.")

    class Meta(APIKeyOut.Meta):
        fields = [*APIKeyOut.Meta.fields, "key"]


class TaskVersionOut(serializers.ModelSerializer):
    task = serializers.PrimaryKeyRelatedField(read_only=True)
    task_slug = serializers.CharField(source="task.slug", read_only=True)
    allowed_embodiments = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    locked = serializers.BooleanField(source="is_locked", read_only=True)
    criteria = CriteriaField(read_only=True)

    class Meta:
        model = TaskVersion
        fields = [
            "id",
            "task",
            "task_slug",
            "number",
            "instruction",
            "scene_setup",
            "allowed_embodiments",
            "time_limit_s",
            "criteria",
            "content_hash",
            "locked",
            "locked_at",
            "created_at",
            "updated_at",
        ]


class TaskOut(TeamOwnedOut):
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Task
        fields = [
            "id",
            "slug",
            "name",
            "team",
            "visibility",
            "shared_with",
            "latest_version",
            "created_at",
        ]

    def get_latest_version(self, task) -> TaskVersionOut:
        versions = list(task.versions.all())  # prefetched, newest first
        return TaskVersionOut(versions[0]).data if versions else None


class ConditionOut(TeamOwnedOut):
    reference_image = serializers.FileField(read_only=True, use_url=True)

    class Meta:
        model = Condition
        fields = [
            "id",
            "factor",
            "level",
            "description",
            "reset_instructions",
            "reference_image",
            "team",
            "visibility",
            "shared_with",
            "created_at",
        ]


class OperatorOut(serializers.ModelSerializer):
    """Pseudonym only: the identity table is never read here."""

    team = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Operator
        fields = ["id", "code", "team", "active", "created_at"]


class AuditEventOut(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_label",
            "team",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "before",
            "after",
        ]


class WhoAmIOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["robot", "person"])
    id = serializers.CharField()
    name = serializers.CharField()
    robot = RobotOut(required=False)
    teams = TeamOut(many=True)
    roles = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Roles per team slug (people only).",
    )
    is_superuser = serializers.BooleanField()


class VersionOut(serializers.Serializer):
    server_version = serializers.CharField()
    api_version = serializers.CharField()
    min_client_version = serializers.CharField()


# --- Inputs ---------------------------------------------------------------------------------


class EmbodimentIn(SharingInput):
    team = TeamField()
    name = serializers.SlugField(max_length=80)
    description = _text(required=False)
    spec = serializers.JSONField()


class EmbodimentPatch(SharingInput):
    name = serializers.SlugField(max_length=80, required=False)
    description = _text(required=False)
    spec = serializers.JSONField(required=False)


class RobotIn(SharingInput):
    team = TeamField()
    embodiment = VisibleSlugRelatedField(slug_field="name", queryset=Embodiment.objects.all())
    name = serializers.SlugField(max_length=80)
    site = serializers.CharField(max_length=120, allow_blank=True, required=False)
    serial = serializers.CharField(max_length=120, allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=Robot.Status.choices, required=False)


class RobotPatch(SharingInput):
    embodiment = VisibleSlugRelatedField(
        slug_field="name", queryset=Embodiment.objects.all(), required=False
    )
    name = serializers.SlugField(max_length=80, required=False)
    site = serializers.CharField(max_length=120, allow_blank=True, required=False)
    serial = serializers.CharField(max_length=120, allow_blank=True, required=False)
    status = serializers.ChoiceField(choices=Robot.Status.choices, required=False)


class HeartbeatIn(StrictInputSerializer):
    software_version = serializers.CharField(max_length=200, allow_blank=True, required=False)


class APIKeyIn(StrictInputSerializer):
    name = serializers.CharField(max_length=120, allow_blank=True, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class TaskVersionIn(StrictInputSerializer):
    instruction = serializers.CharField(max_length=MAX_TEXT)
    scene_setup = _text(required=False)
    time_limit_s = serializers.FloatField(min_value=0.001, max_value=86400)
    criteria = CriteriaField()
    allowed_embodiments = serializers.ListField(
        child=VisibleSlugRelatedField(slug_field="name", queryset=Embodiment.objects.all()),
        min_length=1,
        max_length=100,
    )


class TaskVersionPatch(StrictInputSerializer):
    instruction = serializers.CharField(max_length=MAX_TEXT, required=False)
    scene_setup = _text(required=False)
    time_limit_s = serializers.FloatField(min_value=0.001, max_value=86400, required=False)
    criteria = CriteriaField(required=False)
    allowed_embodiments = serializers.ListField(
        child=VisibleSlugRelatedField(slug_field="name", queryset=Embodiment.objects.all()),
        min_length=1,
        max_length=100,
        required=False,
    )


class TaskIn(TaskVersionIn, SharingInput):
    team = TeamField()
    slug = serializers.SlugField(max_length=80)
    name = serializers.CharField(max_length=200)


class TaskPatch(SharingInput):
    slug = serializers.SlugField(max_length=80, required=False)
    name = serializers.CharField(max_length=200, required=False)


class ConditionIn(SharingInput):
    team = TeamField()
    factor = serializers.SlugField(max_length=60)
    level = serializers.SlugField(max_length=60)
    description = _text(required=False)
    reset_instructions = _text(required=False)


class ConditionPatch(SharingInput):
    factor = serializers.SlugField(max_length=60, required=False)
    level = serializers.SlugField(max_length=60, required=False)
    description = _text(required=False)
    reset_instructions = _text(required=False)


class TeamFilter(StrictInputSerializer):
    """Query parameters shared by catalog lists."""

    team = serializers.SlugField(max_length=60, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    offset = serializers.IntegerField(min_value=0, max_value=10**9, required=False)

    def filter(self, queryset):
        team = self.validated_data.get("team")
        return queryset.filter(Q(team__slug=team)) if team else queryset
