"""Admin for evaluation. Policies and benchmarks are edited like the core catalog (audited);
they are created, like campaigns, trials and their reports, through the services: schedules
come from seeds and outcomes from reports. Operators appear by their pseudonymous code."""

from django.contrib import admin
from django.db import models

from core import access
from core.admin import AddedOnAPage, AuditedAdmin, ViewOnlyAdmin
from evaluation.models import (
    Benchmark,
    BenchmarkCell,
    Campaign,
    CampaignCell,
    LeaderboardSnapshot,
    Policy,
    PolicyVersion,
    Trial,
    TrialReport,
)


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    select_related: tuple[str, ...] = ()

    def get_queryset(self, request):
        return super().get_queryset(request).select_related(*self.select_related)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PolicyVersionInline(_ReadOnlyInline):
    model = PolicyVersion
    fields = ["label", "checkpoint_sha256", "server_url", "requires", "created_at"]
    readonly_fields = fields


@admin.register(Policy)
class PolicyAdmin(AuditedAdmin):
    list_display = ["name", "team", "visibility", "created_by", "created_at"]
    list_filter = ["visibility", "team"]
    search_fields = ["name", "description", "created_by"]
    list_select_related = ["team"]
    filter_horizontal = ["shared_with"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    inlines = [PolicyVersionInline]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = access.actor_label(request.user)
        super().save_model(request, obj, form, change)


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = [
        "policy",
        "label",
        "team",
        "checkpoint_sha256",
        "server_url",
        "created_by",
        "created_at",
    ]
    list_filter = ["policy__team"]
    search_fields = ["policy__name", "label", "checkpoint_sha256", "server_url"]
    list_select_related = ["policy__team"]
    date_hierarchy = "created_at"
    # A policy server is reached over https unless its URL says otherwise (Django 6's default).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    @admin.display(ordering="policy__team__name")
    def team(self, version):
        return version.policy.team

    def has_add_permission(self, request):
        return False  # the service checks the contract (`requires`) and audits

    def has_change_permission(self, request, obj=None):
        return False  # versions are immutable: a new checkpoint is a new version


class BenchmarkCellInline(_ReadOnlyInline):
    model = BenchmarkCell
    fields = ["task_version", "condition"]
    readonly_fields = fields
    select_related = ("task_version__task", "condition")


@admin.register(Benchmark)
class BenchmarkAdmin(AddedOnAPage, AuditedAdmin):
    """Name, description and sharing are edited here; a benchmark is created with its cells
    (checked, task versions locked) on /benchmarks/new."""

    add_page = "/benchmarks/new"
    list_display = [
        "name",
        "team",
        "visibility",
        "trials_per_cell",
        "scoring_version",
        "published_at",
    ]
    list_filter = [
        "visibility",
        "scoring_version",
        ("published_at", admin.EmptyFieldListFilter),
        "team",
    ]
    search_fields = ["name", "description"]
    list_select_related = ["team"]
    filter_horizontal = ["shared_with"]
    readonly_fields = [
        "trials_per_cell",
        "scoring_version",
        "published_at",
        "created_by",
        "created_at",
        "updated_at",
    ]
    inlines = [BenchmarkCellInline]


class CampaignCellInline(_ReadOnlyInline):
    model = CampaignCell
    fields = ["task_version", "condition"]
    readonly_fields = fields
    select_related = ("task_version__task", "condition")


@admin.register(Campaign)
class CampaignAdmin(AddedOnAPage, ViewOnlyAdmin):
    """Shown, not edited: a campaign is planned on /campaigns/new (its schedule drawn from
    a seed), started, finished and unblinded on its page."""

    add_page = "/campaigns/new"
    list_display = [
        "name",
        "team",
        "benchmark",
        "status",
        "mode",
        "blinded",
        "trials_per_cell",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "mode", "robot_assignment", "blinded", "scoring_version", "team"]
    search_fields = ["name", "description", "schedule_fingerprint"]
    list_select_related = ["team", "benchmark"]
    date_hierarchy = "created_at"
    inlines = [CampaignCellInline]
    # Its policy versions, robots and cells made the stored schedule: not edited. A draft
    # nothing refers to may be deleted.
    deletable = True


class TrialReportInline(_ReadOnlyInline):
    model = TrialReport
    fields = [
        "state",
        "outcome",
        "invalid_reason",
        "stage_score",
        "source",
        "operator",
        "reporter_label",
        "created_at",
        "superseded_at",
    ]
    readonly_fields = fields
    select_related = ("operator",)


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = [
        "campaign",
        "order",
        "alias",
        "policy_version",
        "task_version",
        "condition",
        "robot",
        "state",
        "outcome",
        "invalid_reason",
        "check_disagrees",
        "reported_at",
    ]
    list_filter = ["state", "outcome", "invalid_reason", "check_disagrees", "campaign", "robot"]
    search_fields = ["id", "campaign__name", "alias", "robot__name", "operator__code"]
    list_select_related = [
        "campaign",
        "policy_version__policy",
        "task_version__task",
        "condition",
        "robot",
    ]
    readonly_fields = [f.name for f in Trial._meta.fields]
    inlines = [TrialReportInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TrialReport)
class TrialReportAdmin(ViewOnlyAdmin):
    """Every report and correction of every trial; reporting goes through the service."""

    list_display = [
        "created_at",
        "trial",
        "state",
        "outcome",
        "invalid_reason",
        "source",
        "check_disagrees",
        "operator",
        "reporter_label",
        "superseded_at",
    ]
    list_filter = [
        "state",
        "outcome",
        "source",
        "check_disagrees",
        ("superseded_at", admin.EmptyFieldListFilter),
        "trial__campaign",
    ]
    search_fields = ["trial__id", "trial__campaign__name", "operator__code", "reporter_label"]
    list_select_related = ["trial__campaign", "operator"]
    date_hierarchy = "created_at"


@admin.register(LeaderboardSnapshot)
class LeaderboardSnapshotAdmin(ViewOnlyAdmin):
    list_display = [
        "computed_at",
        "scope",
        "benchmark",
        "campaign",
        "scoring_version",
        "trials_counted",
        "compute_s",
    ]
    list_filter = ["scope", "scoring_version"]
    search_fields = ["benchmark__name", "campaign__name", "counts_digest"]
    list_select_related = ["benchmark", "campaign"]
    date_hierarchy = "computed_at"
    deletable = True  # computed by the refresh job; `manage.py refresh_leaderboards` remakes it
