"""Admin for evaluation. Policies and benchmarks are edited like the core catalog (audited);
campaigns, trials and their reports are shown, never edited here: schedules come from seeds
and outcomes from reports, through the services."""

from django.contrib import admin

from core.admin import AuditedAdmin
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
    list_display = ["name", "team", "visibility", "created_at"]
    list_filter = ["visibility", "team"]
    search_fields = ["name", "description"]
    list_select_related = ["team"]
    inlines = [PolicyVersionInline]


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["policy", "label", "checkpoint_sha256", "server_url", "created_at"]
    list_filter = ["policy__team"]
    search_fields = ["policy__name", "label", "checkpoint_sha256", "server_url"]
    list_select_related = ["policy"]
    readonly_fields = [f.name for f in PolicyVersion._meta.fields]

    def has_change_permission(self, request, obj=None):
        return False  # versions are immutable: a new checkpoint is a new version


class BenchmarkCellInline(_ReadOnlyInline):
    model = BenchmarkCell
    fields = ["task_version", "condition"]
    readonly_fields = fields


@admin.register(Benchmark)
class BenchmarkAdmin(AuditedAdmin):
    list_display = [
        "name",
        "team",
        "visibility",
        "trials_per_cell",
        "scoring_version",
        "published_at",
    ]
    list_filter = ["visibility", "scoring_version", ("published_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "description"]
    list_select_related = ["team"]
    readonly_fields = ["trials_per_cell", "scoring_version", "published_at", "created_by"]
    inlines = [BenchmarkCellInline]


class CampaignCellInline(_ReadOnlyInline):
    model = CampaignCell
    fields = ["task_version", "condition"]
    readonly_fields = fields


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
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
    list_filter = ["status", "mode", "blinded", "team"]
    search_fields = ["name", "description", "schedule_fingerprint"]
    list_select_related = ["team", "benchmark"]
    readonly_fields = [f.name for f in Campaign._meta.fields]
    inlines = [CampaignCellInline]

    def has_add_permission(self, request):
        return False


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
    list_filter = ["state", "outcome", "invalid_reason", "check_disagrees", "campaign"]
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


@admin.register(LeaderboardSnapshot)
class LeaderboardSnapshotAdmin(admin.ModelAdmin):
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
    list_select_related = ["benchmark", "campaign"]
    readonly_fields = [f.name for f in LeaderboardSnapshot._meta.fields]

    def has_add_permission(self, request):
        return False
