"""Admin for recording. Episodes are curated through services (labels, discards); the admin
shows them and never deletes one."""

from django.contrib import admin

from core.admin import AuditedAdmin
from teleop.models import CollectionProtocol, Episode, Label, ProtocolTarget, Session, Upload


class ProtocolTargetInline(admin.TabularInline):
    model = ProtocolTarget
    extra = 0


@admin.register(CollectionProtocol)
class CollectionProtocolAdmin(AuditedAdmin):
    list_display = ["name", "team", "task_version", "active", "created_at"]
    list_filter = ["active", "team"]
    search_fields = ["name", "instructions"]
    inlines = [ProtocolTargetInline]


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ["opened_at", "robot", "operator", "task_version", "kind", "status"]
    list_filter = ["status", "kind", "team", "robot"]
    search_fields = ["robot__name", "operator__code", "task_version__task__slug"]
    list_select_related = ["robot", "operator", "task_version__task"]
    readonly_fields = ["opened_by", "opened_at", "closed_at"]


class LabelInline(admin.TabularInline):
    model = Label
    extra = 0
    can_delete = False
    fields = [
        "outcome",
        "stages_reached",
        "failure_codes",
        "notes",
        "labeler_label",
        "created_at",
        "superseded_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Episode)
class EpisodeAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "robot",
        "operator",
        "task_version",
        "state",
        "duration_s",
        "measured_hz",
        "truncated",
        "discarded_at",
    ]
    list_filter = [
        "state",
        "truncated",
        "team",
        "robot",
        ("discarded_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["id", "sha256", "robot__name", "operator__code", "rejection_code"]
    list_select_related = ["robot", "operator", "task_version__task"]
    readonly_fields = [f.name for f in Episode._meta.fields]
    inlines = [LabelInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # discarding is a tombstone with a reason, never a deletion


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["created_at", "episode", "offset", "length", "state", "expires_at"]
    list_filter = ["state"]
    search_fields = ["id", "episode__id"]
    readonly_fields = [f.name for f in Upload._meta.fields]

    def has_add_permission(self, request):
        return False
