"""Policy evaluation: policies and their versions, benchmarks, campaigns, trials, the outcome
history of each trial, and leaderboard snapshots.

Every write goes through `evaluation.services`; models hold fields, constraints and one-row
invariants only. A trial's current outcome sits on the `Trial` row, so a leaderboard is one
grouped query; every report and correction is also kept, in `TrialReport`.
"""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from core.models import Condition, Operator, Robot, TaskVersion, TeamOwned
from proving_ground.scheduling import MAX_SEED, SCHEDULE_ALGORITHM
from proving_ground.scoring import DEFAULT_SCORING_VERSION, SCORING_VERSIONS
from teleop.models import Episode

SCORING_CHOICES = [(name, name) for name in SCORING_VERSIONS]


class Policy(TeamOwned):
    """A policy a team evaluates. Its checkpoints live in versions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_by = models.CharField(max_length=200)  # actor label
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="policy_unique_name_in_team")
        ]

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    """One checkpoint of a policy (by SHA-256, optionally where to fetch it) or a policy server
    the robot queries, and the contract it needs from the robot.

    `requires` is ``{"observations": {key: shape or null}, "cameras": [name], "action": shape
    or null}``; shapes are lists of ints per step, null accepts any shape. It is checked
    against each robot's embodiment spec before trials are scheduled. Versions are immutable:
    a new checkpoint is a new version."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    label = models.CharField(max_length=80)
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    checkpoint_uri = models.CharField(max_length=500, blank=True)
    server_url = models.URLField(max_length=500, blank=True)
    requires = models.JSONField(default=dict, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["policy__name", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "label"], name="policyversion_unique_label"),
            models.CheckConstraint(
                condition=~models.Q(checkpoint_sha256="") | ~models.Q(server_url=""),
                name="policyversion_checkpoint_or_server",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} {self.label}"


class Benchmark(TeamOwned):
    """A fixed set of cells (task version x condition), trials per cell per policy, and the
    scoring version that turns trials into its leaderboard. Publishing freezes the cells:
    campaigns run only on published benchmarks, so every campaign on one ran the same
    design."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    trials_per_cell = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    scoring_version = models.CharField(
        max_length=40, choices=SCORING_CHOICES, default=DEFAULT_SCORING_VERSION
    )
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="benchmark_unique_name_in_team"),
            models.CheckConstraint(
                condition=models.Q(trials_per_cell__gte=1), name="benchmark_trials_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class BenchmarkCell(models.Model):
    """One cell of a benchmark: a task version under a condition."""

    benchmark = models.ForeignKey(Benchmark, on_delete=models.CASCADE, related_name="cells")
    task_version = models.ForeignKey(TaskVersion, on_delete=models.PROTECT, related_name="+")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = [
            "benchmark",
            "task_version__task__slug",
            "condition__factor",
            "condition__level",
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["benchmark", "task_version", "condition"], name="benchmarkcell_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.benchmark}: {self.task_version} / {self.condition}"


class Campaign(TeamOwned):
    """Policy versions run on a benchmark (or an ad hoc grid of cells), on the team's robots,
    scored by its operators. Starting it builds the trial schedule from `seed` with
    `proving_ground.scheduling` and stores the trials and the schedule's fingerprint."""

    class Mode(models.TextChoices):
        INTERLEAVED = "interleaved", "Interleaved blocks"
        PAIRED = "paired", "Counterbalanced A/B pairs"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    class RobotAssignment(models.TextChoices):
        # The schedule deals whole blocks to robots: every robot runs every policy equally
        # often; a robot that breaks down leaves its blocks waiting.
        DEALT = "dealt", "Blocks dealt to robots by the schedule"
        # Robots take the next unclaimed block from one queue: work goes on when a robot is
        # down; per-robot balance is whatever the queue gives.
        SHARED = "shared", "Robots take the next block from a shared queue"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    benchmark = models.ForeignKey(
        Benchmark, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    trials_per_cell = models.PositiveIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(10_000)]
    )
    scoring_version = models.CharField(
        max_length=40, choices=SCORING_CHOICES, default=DEFAULT_SCORING_VERSION
    )
    policy_versions = models.ManyToManyField(PolicyVersion, related_name="campaigns")
    robots = models.ManyToManyField(Robot, related_name="evaluation_campaigns")
    operators = models.ManyToManyField(Operator, blank=True, related_name="evaluation_campaigns")
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.INTERLEAVED)
    robot_assignment = models.CharField(
        max_length=10, choices=RobotAssignment.choices, default=RobotAssignment.DEALT
    )
    blinded = models.BooleanField(default=True)
    seed = models.BigIntegerField(validators=[MinValueValidator(0), MaxValueValidator(MAX_SEED)])
    # A random salt for the seed's commitment (`services.blinding`): the audit trail of a
    # blinded campaign holds sha256(salt, seed) until the campaign is done, then both. Never
    # served by the API.
    seed_salt = models.CharField(max_length=32, blank=True, editable=False)
    schedule_algorithm = models.CharField(max_length=40, default=SCHEDULE_ALGORITHM)
    schedule_fingerprint = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="campaign_unique_name_in_team"),
            models.CheckConstraint(
                condition=models.Q(seed__gte=0), name="campaign_seed_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignCell(models.Model):
    """One cell a campaign runs: copied from its benchmark, or its own ad hoc grid."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="cells")
    task_version = models.ForeignKey(TaskVersion, on_delete=models.PROTECT, related_name="+")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["campaign", "task_version__task__slug", "condition__factor", "condition__level"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "task_version", "condition"], name="campaigncell_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign}: {self.task_version} / {self.condition}"


class InvalidReason(models.TextChoices):
    SUCCESS_AT_RESET = "success_at_reset", "Task already solved at reset"
    NO_ACTIONS = "no_actions", "The policy sent no actions"
    MISSING_DATA = "missing_data", "Data missing"
    TIMEOUT = "timeout", "Timed out for a reason other than the policy"
    OPERATOR_ERROR = "operator_error", "Operator error"


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class OutcomeSource(models.TextChoices):
    ROBOT = "robot", "Reported by the robot"
    OPERATOR = "operator", "Entered by a person"
    CHECKS = "checks", "Decided by the task's success check"


class Trial(models.Model):
    """One scheduled run: a policy version (behind `alias` for the operator) on a task version
    under a condition, on a robot, at a place in the schedule.

    States: scheduled -> assigned (a robot took it) -> done | invalid. The current outcome is
    kept here for aggregation; `TrialReport` keeps every report and correction."""

    class State(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        ASSIGNED = "assigned", "Assigned to a robot"
        DONE = "done", "Done"
        INVALID = "invalid", "Invalid"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="trials")
    order = models.PositiveIntegerField()
    block = models.PositiveIntegerField()
    policy_version = models.ForeignKey(
        PolicyVersion, on_delete=models.PROTECT, related_name="trials"
    )
    alias = models.CharField(max_length=40)
    task_version = models.ForeignKey(TaskVersion, on_delete=models.PROTECT, related_name="+")
    condition = models.ForeignKey(Condition, on_delete=models.PROTECT, related_name="+")
    # The robot that runs the trial: set by the schedule (dealt), or when a robot claims the
    # trial's block from the shared queue.
    robot = models.ForeignKey(
        Robot, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The first trial of its block: in a shared queue, robots claim a block by locking it.
    block_head = models.BooleanField(default=False)
    pair_id = models.PositiveIntegerField(null=True, blank=True)
    pair_position = models.PositiveSmallIntegerField(null=True, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.SCHEDULED)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    stages_reached = models.JSONField(default=list, blank=True)
    stage_score = models.FloatField(null=True, blank=True)
    failure_codes = models.JSONField(default=list, blank=True)
    invalid_reason = models.CharField(max_length=20, choices=InvalidReason.choices, blank=True)
    notes = models.TextField(blank=True)
    episode = models.ForeignKey(
        Episode, null=True, blank=True, on_delete=models.PROTECT, related_name="evaluation_trials"
    )
    # What the task's success check said about the episode ("" = no verdict), and whether it
    # contradicts the reported outcome.
    check_outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    check_disagrees = models.BooleanField(default=False)
    outcome_source = models.CharField(max_length=10, choices=OutcomeSource.choices, blank=True)
    operator = models.ForeignKey(
        Operator, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reported_by = models.CharField(max_length=200, blank=True)  # actor label
    assigned_at = models.DateTimeField(null=True, blank=True)
    reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "order"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "order"], name="trial_unique_order"),
            # A robot holds at most one trial of a campaign at a time: two racing requests
            # of the same robot cannot both take one.
            models.UniqueConstraint(
                fields=["campaign", "robot"],
                condition=models.Q(state="assigned"),
                name="trial_one_assigned_per_robot",
            ),
            models.UniqueConstraint(
                fields=["episode"],
                condition=models.Q(episode__isnull=False),
                name="trial_unique_episode",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="done") | ~models.Q(outcome=""),
                name="trial_done_has_outcome",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="invalid") | ~models.Q(invalid_reason=""),
                name="trial_invalid_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "state", "order"]),
            models.Index(fields=["campaign", "block"]),
        ]

    def __str__(self) -> str:
        return f"trial {self.order} of {self.campaign} ({self.state})"

    @property
    def is_valid(self) -> bool:
        return self.state != self.State.INVALID


class TrialReport(models.Model):
    """One report or correction of a trial's outcome. A new report supersedes the current one;
    the history is kept (like teleop's labels)."""

    trial = models.ForeignKey(Trial, on_delete=models.CASCADE, related_name="reports")
    state = models.CharField(max_length=12, choices=Trial.State.choices)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    stages_reached = models.JSONField(default=list, blank=True)
    stage_score = models.FloatField(null=True, blank=True)
    failure_codes = models.JSONField(default=list, blank=True)
    invalid_reason = models.CharField(max_length=20, choices=InvalidReason.choices, blank=True)
    notes = models.TextField(blank=True)
    episode = models.ForeignKey(
        Episode, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    check_outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    check_disagrees = models.BooleanField(default=False)
    source = models.CharField(max_length=10, choices=OutcomeSource.choices)
    operator = models.ForeignKey(
        Operator, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reporter_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reporter_robot = models.ForeignKey(
        Robot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reporter_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["trial", "-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["trial"],
                condition=models.Q(superseded_at=None),
                name="trialreport_one_current_per_trial",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.state} {self.outcome or self.invalid_reason} by {self.reporter_label}"


class LeaderboardSnapshot(models.Model):
    """A leaderboard computed from trials at one moment, stored as the JSON the API serves.
    Refreshed by a background job after results commit; never hand-entered."""

    class Scope(models.TextChoices):
        BENCHMARK = "benchmark", "Benchmark"
        CAMPAIGN = "campaign", "Campaign"

    scope = models.CharField(max_length=10, choices=Scope.choices)
    benchmark = models.ForeignKey(
        Benchmark, null=True, blank=True, on_delete=models.CASCADE, related_name="snapshots"
    )
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="snapshots"
    )
    scoring_version = models.CharField(max_length=40)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    # SHA-256 of the grouped counts: a refresh that finds the same digest stores nothing new.
    counts_digest = models.CharField(max_length=64)
    trials_counted = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    computed_at = models.DateTimeField(auto_now_add=True)
    compute_s = models.FloatField(default=0.0)

    class Meta:
        ordering = ["-computed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="benchmark", benchmark__isnull=False, campaign__isnull=True)
                    | models.Q(scope="campaign", campaign__isnull=False, benchmark__isnull=True)
                ),
                name="snapshot_one_scope",
            )
        ]
        indexes = [
            models.Index(fields=["benchmark", "-computed_at"]),
            models.Index(fields=["campaign", "-computed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.scope} leaderboard {self.benchmark or self.campaign} at {self.computed_at}"
