"""Django admin for the core domain. Changes made here are audited like API writes; rows the
services compute (task versions, keys, the audit trail, idempotency records) are shown, not
edited. Secrets never reach a list column or a search: keys show their public prefix only,
operators their pseudonymous code, and identities are for platform superusers only."""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.shortcuts import redirect

from core.errors import DomainError
from core.models import (
    AuditEvent,
    Condition,
    DataRequest,
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
    ThrottleWindow,
    WorkerHeartbeat,
)
from core.names import NAME_FIELDS, refuse_bidi_controls
from core.services import audit, embodiments, erasure, robots

# Personal data kept out of audit records: an erasure must leave none of it behind.
_PERSONAL_FIELDS = {OperatorIdentity: ("full_name", "email")}


def audit_snapshot(obj) -> dict:
    """The audit copy of a row: `audit.snapshot` (no secrets) without personal data."""
    data = audit.snapshot(obj)
    for name in _PERSONAL_FIELDS.get(type(obj), ()):
        data.pop(name, None)
    return data


def audit_team(obj) -> Team | None:
    """The team an audit record of `obj` is filed under: its own, or its parent's (a key's
    robot's, an identity's operator's). None when `record_audit` can read `team_id` itself."""
    if isinstance(obj, Team):
        return obj
    if hasattr(obj, "team_id"):
        return None
    for field in obj._meta.concrete_fields:
        if field.many_to_one or field.one_to_one:
            parent = getattr(obj, field.name, None)
            if parent is not None and getattr(parent, "team_id", None) is not None:
                return parent.team
    return None


def _record(request, action: str, obj, *, before=None, after=None) -> None:
    audit.record_audit(
        actor=request.user,
        action=action,
        obj=obj,
        before=before,
        after=after,
        team=audit_team(obj),
    )


def run_per_row(modeladmin, request, rows, call, done: str) -> None:
    """Run a service call for each selected row; a refusal is reported, not a server error."""
    count = 0
    for row in rows:
        try:
            call(row)
        except DomainError as exc:
            modeladmin.message_user(request, f"{row}: {exc.detail}", messages.ERROR)
        else:
            count += 1
    if count:
        modeladmin.message_user(request, f"{count} {done}.", messages.SUCCESS)


class RefuseBidiNames:
    """Name fields refuse bidirectional control characters as a form error (the save-time
    guard in core.names would otherwise surface as a 500 in the admin)."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None and db_field.name in NAME_FIELDS:
            field.validators.append(refuse_bidi_controls)
        return field


class AuditedAdmin(RefuseBidiNames, admin.ModelAdmin):
    """Records an audit event for every save and delete made through the admin, rows of its
    inlines included. A save is recorded once its many-to-many fields are saved too, so the
    record shows what the object became (sharing included). The personal fields of an
    identity are left out of the records."""

    def save_model(self, request, obj, form, change):
        obj._audit_before = audit_snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        # As ModelAdmin.save_related, with the object's record between its many-to-many
        # fields and its inlines' rows (each recorded by save_formset).
        form.save_m2m()
        obj = form.instance
        _record(
            request,
            "update" if change else "create",
            obj,
            before=getattr(obj, "_audit_before", None),
            after=audit_snapshot(obj),
        )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def save_formset(self, request, form, formset, change):
        befores = {}
        deleted = set(formset.deleted_forms) if formset.can_delete else set()
        for inline_form in formset.initial_forms:
            instance = inline_form.instance
            if instance.pk is None:
                continue
            if inline_form in deleted:
                stored = type(instance).objects.get(pk=instance.pk)
                _record(request, "delete", stored, before=audit_snapshot(stored))
            elif inline_form.has_changed():
                befores[instance.pk] = audit_snapshot(type(instance).objects.get(pk=instance.pk))
        super().save_formset(request, form, formset, change)
        for instance in formset.new_objects:
            _record(request, "create", instance, after=audit_snapshot(instance))
        for instance, _fields in formset.changed_objects:
            _record(
                request,
                "update",
                instance,
                before=befores.get(instance.pk),
                after=audit_snapshot(instance),
            )

    def delete_model(self, request, obj):
        _record(request, "delete", obj, before=audit_snapshot(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self.delete_model(request, obj)


class ViewOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the services (history, computed results): shown, never added or
    edited here. `deletable` lets staff with the delete permission remove rows nothing
    protects (an expired idempotency record, an unused task version)."""

    deletable = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)


class AddedOnAPage:
    """A model whose rows the admin cannot create correctly (a task needs its first version,
    with instruction and success criteria, made by the service): "Add" leads to the page
    that creates them (`add_page`, a path) instead of saving an empty shell."""

    add_page = ""

    def has_add_permission(self, request, *args):
        # The "Add" button is shown (to staff with the add permission) and leads to the page.
        return admin.ModelAdmin.has_add_permission(self, request)

    def add_view(self, request, form_url="", extra_context=None):
        name = self.model._meta.verbose_name_plural
        self.message_user(
            request, f"New {name} are created on their page, which checks them.", messages.INFO
        )
        return redirect(self.add_page)


class SuperusersOnly:
    """Personal data: platform superusers only, whatever model permissions staff hold."""

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


# --- Teams ------------------------------------------------------------------------------------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(AuditedAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(AuditedAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["role", "team"]
    search_fields = ["user__username", "team__name"]
    list_select_related = ["user", "team"]
    autocomplete_fields = ["user", "team"]
    readonly_fields = ["created_at"]


# --- Robots -----------------------------------------------------------------------------------


class EmbodimentAdminForm(forms.ModelForm):
    class Meta:
        model = Embodiment
        fields = ["team", "name", "description", "spec", "visibility", "shared_with"]

    def clean_spec(self):
        # The service's own check, with its messages (each problem with its location).
        try:
            return embodiments.valid_spec(self.cleaned_data.get("spec"))
        except DomainError as exc:
            raise forms.ValidationError(exc.fields.get("spec") or exc.detail) from exc


@admin.register(Embodiment)
class EmbodimentAdmin(AuditedAdmin):
    form = EmbodimentAdminForm
    list_display = ["name", "team", "visibility", "created_at", "updated_at"]
    list_filter = ["visibility", "team"]
    search_fields = ["name", "description"]
    list_select_related = ["team"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created_at", "updated_at"]


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
    list_display = [
        "name",
        "team",
        "embodiment",
        "site",
        "status",
        "software_version",
        "last_seen_at",
    ]
    list_filter = ["status", "team", "embodiment", "site"]
    search_fields = ["name", "serial", "site", "team__name"]
    list_select_related = ["team", "embodiment"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["last_seen_at", "created_at", "updated_at"]
    inlines = [RobotAPIKeyInline]


@admin.register(RobotAPIKey)
class RobotAPIKeyAdmin(AuditedAdmin):
    """Keys by their public prefix; the hash is never shown or searched. Name and expiry may
    be edited (audited); revoking goes through the service."""

    list_display = [
        "prefix",
        "robot",
        "team",
        "name",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["robot__team", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "robot__name", "name"]
    list_select_related = ["robot__team"]
    date_hierarchy = "created_at"
    readonly_fields = ["robot", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.display(ordering="robot__team__name")
    def team(self, key):
        return key.robot.team

    def has_add_permission(self, request):
        return False  # keys are issued by `create_robot_key` or the API, shown once

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        run_per_row(
            self,
            request,
            queryset.select_related("robot"),
            lambda key: robots.revoke_api_key(actor=request.user, key=key),
            "key(s) revoked",
        )


# --- Operators --------------------------------------------------------------------------------


class OperatorIdentityInline(SuperusersOnly, RefuseBidiNames, admin.StackedInline):
    model = OperatorIdentity
    extra = 0
    readonly_fields = ["created_at", "updated_at"]


@admin.register(Operator)
class OperatorAdmin(AuditedAdmin):
    """Operators by pseudonym; the person behind a code is in an inline only superusers see."""

    list_display = ["code", "team", "active", "created_at"]
    list_filter = ["active", "team"]
    search_fields = ["code"]
    list_select_related = ["team"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]
    inlines = [OperatorIdentityInline]
    actions = ["erase_identity"]

    @admin.action(description="Erase the person (right to be forgotten): keep only the pseudonym")
    def erase_identity(self, request, queryset):
        """Erasing cannot be undone: the first submit answers a page that asks (Django's
        intermediate action page, as "delete selected" does) and says, per operator, what
        `erasure.erase_operator` will do; its button confirms."""
        # Imported here so this action stays one self-contained block of the module.
        from django.contrib.admin import helpers
        from django.template.response import TemplateResponse

        if request.POST.get("confirm") != "yes":
            plans = []
            for operator in queryset.select_related("team"):
                try:
                    steps = erasure.plan_erasure(actor=request.user, operator=operator)
                    plans.append((operator, steps, ""))
                except DomainError as exc:
                    plans.append((operator, [], exc.detail))
            return TemplateResponse(
                request,
                "admin/core/operator/erase_identity_confirmation.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Erase these operators?",
                    "opts": self.model._meta,
                    "queryset": queryset,
                    "plans": plans,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        run_per_row(
            self,
            request,
            queryset,
            lambda operator: erasure.erase_operator(actor=request.user, operator=operator),
            "operator(s) erased",
        )


@admin.register(OperatorIdentity)
class OperatorIdentityAdmin(SuperusersOnly, AuditedAdmin):
    """Consent records by operator code. Name and email are on the change page only; the
    search takes a code, or a whole email address (exact match, for a data request). Audit
    records of these rows leave the personal fields out."""

    list_display = [
        "operator",
        "team",
        "consent_version",
        "consent_given_at",
        "consent_withdrawn_at",
        "updated_at",
    ]
    list_filter = [
        "consent_version",
        ("consent_withdrawn_at", admin.EmptyFieldListFilter),
        "operator__team",
    ]
    search_fields = ["operator__code", "=email"]
    list_select_related = ["operator__team"]
    autocomplete_fields = ["operator"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(ordering="operator__team__name")
    def team(self, identity):
        return identity.operator.team


# --- Tasks and conditions ---------------------------------------------------------------------


@admin.register(Condition)
class ConditionAdmin(AuditedAdmin):
    list_display = ["factor", "level", "team", "visibility", "created_at"]
    list_filter = ["factor", "team", "visibility"]
    search_fields = ["factor", "level", "description"]
    list_select_related = ["team"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created_at"]


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
class TaskAdmin(AddedOnAPage, AuditedAdmin):
    """Name, slug and sharing are edited here; a task is created on /tasks/new with its
    first version (instruction, time limit, success criteria, embodiments)."""

    add_page = "/tasks/new"
    list_display = ["name", "slug", "team", "visibility", "created_at"]
    list_filter = ["team", "visibility"]
    search_fields = ["name", "slug"]
    list_select_related = ["team"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created_at"]
    inlines = [TaskVersionInline]


@admin.register(TaskVersion)
class TaskVersionAdmin(ViewOnlyAdmin):
    """Read-only: versions are validated and hashed by the service, and immutable once used."""

    deletable = True

    list_display = ["task", "number", "time_limit_s", "content_hash", "locked_at", "created_at"]
    list_filter = ["task__team", ("locked_at", admin.EmptyFieldListFilter)]
    search_fields = ["task__name", "task__slug", "content_hash", "instruction"]
    list_select_related = ["task"]


# --- System records ---------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_repr", "team"]
    list_filter = ["action", "object_type", "team"]
    search_fields = ["actor_label", "object_id", "object_repr"]
    list_select_related = ["team"]
    date_hierarchy = "created_at"


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ViewOnlyAdmin):
    deletable = True
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
    list_filter = ["state", "method", "response_status"]
    search_fields = ["principal", "key", "path"]
    date_hierarchy = "created_at"


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ViewOnlyAdmin):
    """Job workers and when each last showed a sign of life (docs/jobs.md). A stopped worker
    removes its row; a dead one's row ages until its jobs are queued again."""

    deletable = True
    list_display = ["worker_id", "host", "pid", "started_at", "last_seen"]
    search_fields = ["worker_id", "host"]
    date_hierarchy = "last_seen"


@admin.register(ThrottleWindow)
class ThrottleWindowAdmin(ViewOnlyAdmin):
    """Request counts of the current rate window per caller (core/api/throttling.py).
    Deleting a row lets that caller start its window again."""

    deletable = True
    list_display = ["key", "window_start", "hits"]
    search_fields = ["key"]


@admin.register(DataRequest)
class DataRequestAdmin(ViewOnlyAdmin):
    """Operators' access requests and their archives' state (docs/privacy.md); asked for and
    downloaded on the Data requests page, never here (the archive goes only to whoever
    asked)."""

    list_display = ["created_at", "operator", "team", "kind", "state", "progress", "expires_at"]
    list_filter = ["state", "kind", "team"]
    search_fields = ["operator__code"]
    list_select_related = ["operator", "team"]
    exclude = ["file"]
    date_hierarchy = "created_at"
