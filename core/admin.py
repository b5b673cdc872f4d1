"""Django admin for the core domain. Changes made here are audited like API writes."""

from django.contrib import admin

from core import services
from core.models import (
    AuditEvent,
    Condition,
    Embodiment,
    IdempotencyRecord,
    Membership,
    Operator,
    OperatorIdentity,
    Robot,
    RobotAPIKey,
    Task,
    TaskVersion,
    Team,
)


class AuditedAdmin(admin.ModelAdmin):
    """Records an audit event for every save and delete made through the admin."""

    def save_model(self, request, obj, form, change):
        before = None
        if change:
            before = services.snapshot(type(obj).objects.get(pk=obj.pk))
        super().save_model(request, obj, form, change)
        services.record_audit(
            actor=request.user,
            action="update" if change else "create",
            obj=obj,
            before=before,
            after=services.snapshot(obj),
        )

    def delete_model(self, request, obj):
        services.record_audit(
            actor=request.user, action="delete", obj=obj, before=services.snapshot(obj)
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


@admin.register(Embodiment)
class EmbodimentAdmin(AuditedAdmin):
    list_display = ["name", "team", "visibility", "updated_at"]
    list_filter = ["visibility", "team"]
    search_fields = ["name", "description"]
    filter_horizontal = ["shared_with"]


class RobotAPIKeyInline(admin.TabularInline):
    model = RobotAPIKey
    extra = 0
    can_delete = False
    fields = ["prefix", "name", "created_at", "expires_at", "revoked_at", "last_used_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False  # keys are issued by `create_robot_key` or the API, shown once


@admin.register(Robot)
class RobotAdmin(AuditedAdmin):
    list_display = ["name", "team", "embodiment", "site", "status", "last_seen_at"]
    list_filter = ["status", "team", "embodiment", "site"]
    search_fields = ["name", "serial", "site"]
    list_select_related = ["team", "embodiment"]
    filter_horizontal = ["shared_with"]
    inlines = [RobotAPIKeyInline]


@admin.register(RobotAPIKey)
class RobotAPIKeyAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "robot",
        "name",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["robot__team", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "robot__name", "name"]
    list_select_related = ["robot"]
    readonly_fields = ["robot", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        for key in queryset.select_related("robot"):
            services.revoke_api_key(actor=request.user, key=key)


class OperatorIdentityInline(admin.StackedInline):
    model = OperatorIdentity
    extra = 0

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser  # identities are for platform admins only


@admin.register(Operator)
class OperatorAdmin(AuditedAdmin):
    list_display = ["code", "team", "active", "created_at"]
    list_filter = ["active", "team"]
    search_fields = ["code"]
    inlines = [OperatorIdentityInline]
    actions = ["erase_identity"]

    @admin.action(description="Erase the identity (data request): keep only the pseudonym")
    def erase_identity(self, request, queryset):
        for operator in queryset:
            services.erase_operator_identity(actor=request.user, operator=operator)


@admin.register(Condition)
class ConditionAdmin(AuditedAdmin):
    list_display = ["factor", "level", "team", "visibility", "created_at"]
    list_filter = ["factor", "team", "visibility"]
    search_fields = ["factor", "level", "description"]
    filter_horizontal = ["shared_with"]


class TaskVersionInline(admin.TabularInline):
    model = TaskVersion
    extra = 0
    fields = ["number", "time_limit_s", "content_hash", "locked_at", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # versions are created through the service (validated, hashed)


@admin.register(Task)
class TaskAdmin(AuditedAdmin):
    list_display = ["name", "slug", "team", "visibility", "created_at"]
    list_filter = ["team", "visibility"]
    search_fields = ["name", "slug"]
    filter_horizontal = ["shared_with"]
    inlines = [TaskVersionInline]


@admin.register(TaskVersion)
class TaskVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are validated and hashed by the service, and immutable once used."""

    list_display = ["task", "number", "time_limit_s", "content_hash", "locked_at", "created_at"]
    list_filter = ["task__team", ("locked_at", admin.EmptyFieldListFilter)]
    search_fields = ["task__name", "task__slug", "content_hash", "instruction"]
    list_select_related = ["task"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_repr", "team"]
    list_filter = ["action", "object_type", "team"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "principal",
        "key",
        "method",
        "path",
        "state",
        "response_status",
        "expires_at",
    ]
    list_filter = ["state", "method"]
    search_fields = ["principal", "key", "path"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
