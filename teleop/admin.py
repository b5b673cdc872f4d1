"""Admin for recording. Sessions, episodes, labels, uploads and dataset versions and exports
are made by the services (checks, hashes, history) and shown here; episodes are curated
through services (labels, discards) and the admin never deletes one. Operators appear by
their pseudonymous code."""

from django import forms
from django.contrib import admin

from core.admin import AuditedAdmin, ViewOnlyAdmin, run_per_row
from core.errors import DomainError
from core.pages.refusals import show_refusal
from core.services import task_versions
from teleop import consent
from teleop.models import (
    CollectionProtocol,
    DatasetExport,
    DatasetView,
    DatasetViewVersion,
    Episode,
    Label,
    ProtocolTarget,
    Session,
    Upload,
    UploadPart,
)
from teleop.services import protocols, sessions


class ProtocolTargetFormSet(forms.BaseInlineFormSet):
    """The targets as the service checks them (at least one, each condition once)."""

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        targets = [
            (form.cleaned_data["condition"], form.cleaned_data["target_count"])
            for form in self.forms
            if form.cleaned_data.get("condition") and not form.cleaned_data.get("DELETE")
        ]
        try:
            protocols.check_protocol_targets(targets)
        except DomainError as exc:
            raise forms.ValidationError(exc.fields.get("targets") or exc.detail) from exc


class ProtocolTargetInline(admin.TabularInline):
    model = ProtocolTarget
    formset = ProtocolTargetFormSet
    extra = 1


class CollectionProtocolAdminForm(forms.ModelForm):
    """The settings as the service checks them: durations in order, cameras every embodiment
    of the task version has (a comma-separated list here, not a bare JSON box), and sharing
    with teams other than the owner."""

    required_cameras = forms.CharField(
        required=False,
        help_text="Camera names, separated by commas (cam_high, cam_wrist). Each must be a "
        "camera of every embodiment the task version allows.",
    )

    class Meta:
        model = CollectionProtocol
        fields = [
            "team",
            "name",
            "task_version",
            "instructions",
            "min_control_hz",
            "min_duration_s",
            "max_duration_s",
            "required_cameras",
            "active",
            "visibility",
            "shared_with",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None and "required_cameras" in self.fields:
            self.initial["required_cameras"] = ", ".join(self.instance.required_cameras)

    def clean_required_cameras(self):
        text = self.cleaned_data.get("required_cameras") or ""
        return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))

    def clean(self):
        data = super().clean()
        # The task version is read-only once the protocol exists.
        version = data.get("task_version") or getattr(self.instance, "task_version", None)
        if version is not None:
            try:
                protocols.check_protocol_settings(
                    task_version=version,
                    min_duration_s=data.get("min_duration_s"),
                    max_duration_s=data.get("max_duration_s"),
                    required_cameras=data.get("required_cameras") or [],
                )
            except DomainError as exc:
                show_refusal(self, exc)
        team, shared = data.get("team"), data.get("shared_with")
        if team is not None and shared is not None and team in shared:
            self.add_error("shared_with", f"'{team}' owns the protocol; share it with others.")
        return data


@admin.register(CollectionProtocol)
class CollectionProtocolAdmin(AuditedAdmin):
    """Validated as `create_protocol` validates (the form and the targets' form set call the
    service's checks), so the operator's protocol menu never offers a broken one."""

    form = CollectionProtocolAdminForm
    list_display = ["name", "team", "task_version", "visibility", "active", "created_at"]
    list_filter = ["active", "visibility", "team"]
    search_fields = ["name", "instructions", "task_version__task__slug"]
    list_select_related = ["team", "task_version__task"]
    autocomplete_fields = ["task_version"]
    filter_horizontal = ["shared_with"]
    inlines = [ProtocolTargetInline]

    def get_readonly_fields(self, request, obj=None):
        # Sessions and episodes were recorded against the protocol's task version.
        return ["created_at"] + (["task_version"] if obj is not None else [])

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # as `create_protocol` does: a referenced version is immutable
            task_versions.lock_task_version(actor=request.user, version=obj.task_version)


@admin.register(Session)
class SessionAdmin(ViewOnlyAdmin):
    """Shown, not edited: sessions are opened by the service (roles, embodiment, locking the
    task version); the action closes them through the service too."""

    list_display = [
        "opened_at",
        "robot",
        "operator",
        "task_version",
        "team",
        "kind",
        "status",
        "closed_at",
    ]
    list_filter = ["status", "kind", "team", "robot"]
    search_fields = ["robot__name", "operator__code", "task_version__task__slug", "opened_by"]
    list_select_related = ["robot", "operator", "task_version__task", "team"]
    date_hierarchy = "opened_at"
    actions = ["close"]  # who recorded what stays on record: never deleted

    def has_close_permission(self, request):
        return request.user.has_perm("teleop.change_session")  # and the service checks roles

    @admin.action(description="Close the selected sessions", permissions=["close"])
    def close(self, request, queryset):
        run_per_row(
            self,
            request,
            queryset.select_related("robot"),
            lambda session: sessions.close_session(actor=request.user, session=session),
            "session(s) closed",
        )


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
        "condition",
        "state",
        "duration_s",
        "measured_hz",
        "truncated",
        "discarded_at",
        "licence",
    ]
    list_filter = [
        "state",
        "licence",
        "truncated",
        "team",
        "robot",
        ("discarded_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["id", "sha256", "robot__name", "operator__code", "rejection_code"]
    list_select_related = ["robot", "operator", "task_version__task", "condition"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Episode._meta.fields]
    inlines = [LabelInline]
    # The licence scope is an admin's decision (docs/privacy.md, "Consent and licence").
    actions = ["licence_internal", "licence_teams", "licence_public"]

    def _set_licence(self, request, queryset, licence: str) -> None:
        run_per_row(
            self,
            request,
            queryset,
            lambda e: consent.set_licence(actor=request.user, episodes=[e], licence=licence),
            f"episode(s) licensed '{licence}'",
        )

    @admin.action(description="Licence: internal training only")
    def licence_internal(self, request, queryset):
        self._set_licence(request, queryset, "internal")

    @admin.action(description="Licence: sharing with named teams")
    def licence_teams(self, request, queryset):
        self._set_licence(request, queryset, "teams")

    @admin.action(description="Licence: public release")
    def licence_public(self, request, queryset):
        self._set_licence(request, queryset, "public")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # discarding is a tombstone with a reason, never a deletion


@admin.register(Label)
class LabelAdmin(ViewOnlyAdmin):
    """Every label and the ones they superseded; labelling goes through the service."""

    list_display = [
        "created_at",
        "episode",
        "outcome",
        "stage_score",
        "labeler_label",
        "superseded_at",
    ]
    list_filter = ["outcome", ("superseded_at", admin.EmptyFieldListFilter), "episode__team"]
    search_fields = ["episode__id", "labeler_label", "notes"]
    list_select_related = ["episode"]
    date_hierarchy = "created_at"


class UploadPartInline(admin.TabularInline):
    """The chunks stored so far (object keys in the file storage), until processing joins
    them."""

    model = UploadPart
    extra = 0
    can_delete = False
    fields = ["offset", "size_bytes", "key", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    inlines = [UploadPartInline]
    list_display = [
        "created_at",
        "episode",
        "offset",
        "length",
        "state",
        "expires_at",
        "completed_at",
    ]
    list_filter = ["state"]
    search_fields = ["id", "episode__id"]
    list_select_related = ["episode"]
    date_hierarchy = "created_at"
    # The SHA-256 state is 112 opaque bytes (teleop.resumable_sha256): nothing to read.
    exclude = ["sha256_state"]
    readonly_fields = [f.name for f in Upload._meta.fields if f.name != "sha256_state"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # written by the tus endpoints only; the page is for reading


class DatasetViewVersionInline(admin.TabularInline):
    model = DatasetViewVersion
    extra = 0
    can_delete = False
    fields = ["number", "content_hash", "created_by", "created_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # versions are resolved and hashed by the service


@admin.register(DatasetView)
class DatasetViewAdmin(AuditedAdmin):
    """Name, description and sharing are edited here (audited); a view's content is in its
    versions, made by the service."""

    list_display = ["name", "team", "visibility", "created_by", "created_at"]
    list_filter = ["visibility", "team"]
    search_fields = ["name", "description", "created_by"]
    list_select_related = ["team"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created_by", "created_at"]
    inlines = [DatasetViewVersionInline]

    def has_add_permission(self, request):
        return False  # a view is created with its first version, by the service


@admin.register(DatasetViewVersion)
class DatasetViewVersionAdmin(ViewOnlyAdmin):
    list_display = ["view", "number", "episode_count", "content_hash", "created_by", "created_at"]
    list_filter = ["view__team"]
    search_fields = ["view__name", "content_hash", "created_by"]
    list_select_related = ["view"]
    date_hierarchy = "created_at"

    @admin.display(description="episodes")
    def episode_count(self, version):
        return len(version.episode_ids)


@admin.register(DatasetExport)
class DatasetExportAdmin(ViewOnlyAdmin):
    list_display = [
        "created_at",
        "view_version",
        "format",
        "images",
        "state",
        "num_episodes",
        "num_frames",
        "size_bytes",
        "finished_at",
    ]
    list_filter = ["state", "format", "images", "view_version__view__team"]
    search_fields = ["view_version__view__name", "checksum", "created_by", "error"]
    list_select_related = ["view_version__view"]
    date_hierarchy = "created_at"
