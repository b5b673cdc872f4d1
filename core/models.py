"""The domain both apps share: teams, robots and embodiments, operators, tasks, conditions,
API keys, idempotency records and the audit trail.

Every write goes through `core.services`; models hold fields, constraints and one-row
invariants only.
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from core.embodiment_spec import EmbodimentSpecError, parse_embodiment_spec


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private to the owning team"
    SHARED = "shared", "Shared with named teams"
    PUBLIC = "public", "Public"


class Licence(models.TextChoices):
    """What an episode's recording may be used for (docs/privacy.md, "Consent and licence"),
    narrowest first: each scope allows what the scopes before it allow."""

    INTERNAL = "internal", "Internal training (the recording team only)"
    TEAMS = "teams", "Sharing with named teams"
    PUBLIC = "public", "Public release"


class Team(models.Model):
    """A lab or site. Users belong to teams through memberships with a role."""

    class ErasedEpisodes(models.TextChoices):
        """What erasing an operator does to the episodes recorded under its pseudonym
        (docs/privacy.md, "Erasure")."""

        KEEP = "keep", "Keep them under the pseudonym"
        DELETE = "delete", "Delete them"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=120, unique=True)
    slug = models.SlugField(max_length=60, unique=True)
    # What erasing one of its operators does to the operator's episodes; team admins choose.
    erased_episodes = models.CharField(
        max_length=10, choices=ErasedEpisodes.choices, default=ErasedEpisodes.KEEP
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The licence scope an episode recorded in this team gets at creation (admins may change
    # an episode's scope later).
    default_licence = models.CharField(
        max_length=10, choices=Licence.choices, default=Licence.INTERNAL
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in a team. A user may hold several roles in one team."""

    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        OPERATOR = "operator", "Operator"
        RESEARCHER = "researcher", "Researcher"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["team__name", "user__username", "role"]
        constraints = [
            models.UniqueConstraint(fields=["team", "user", "role"], name="membership_unique_role")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.team}"


class TeamOwned(models.Model):
    """Belongs to one team; private to it, shared with named teams, or public."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="+")
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    shared_with = models.ManyToManyField(
        Team, blank=True, related_name="shared_%(app_label)s_%(class)s"
    )

    class Meta:
        abstract = True


class Embodiment(TeamOwned):
    """The spec of a robot type. `spec` follows `core.embodiment_spec` (joint names,
    observation and action keys with shapes and dtypes, cameras, nominal control rate)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    spec = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        try:
            parse_embodiment_spec(self.spec)
        except EmbodimentSpecError as exc:
            raise ValidationError({"spec": exc.messages}) from exc

    @property
    def control_hz(self) -> float:
        return float(self.spec["control_hz"])


class Robot(TeamOwned):
    """A physical unit of an embodiment at a site. Robots are principals of their own: they
    authenticate with API keys and act only as themselves."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        MAINTENANCE = "maintenance", "In maintenance"
        RETIRED = "retired", "Retired"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    embodiment = models.ForeignKey(Embodiment, on_delete=models.PROTECT, related_name="robots")
    name = models.SlugField(max_length=80)
    site = models.CharField(max_length=120, blank=True)
    serial = models.CharField(max_length=120, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    software_version = models.CharField(max_length=200, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="robot_unique_name_in_team")
        ]

    def __str__(self) -> str:
        return self.name


class RobotAPIKey(models.Model):
    """An API key of one robot. Only a SHA-256 digest of the secret is stored: keys carry 256
    bits of randomness, so a slow password hash would add latency to every request and no
    protection. `prefix` is public and finds the row; the secret never leaves the response
    that created it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    robot = models.ForeignKey(Robot, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["robot__name", "-created_at"]
        verbose_name = "robot API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.robot})"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class Operator(models.Model):
    """A pseudonymous operator code, the only operator reference anything public shows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="operators")
    code = models.CharField(max_length=32, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="operator",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class OperatorIdentity(models.Model):
    """The person behind an operator code. Read only by admins; no API serializer reads it."""

    operator = models.OneToOneField(Operator, on_delete=models.CASCADE, related_name="identity")
    full_name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    consent_given_at = models.DateTimeField(null=True, blank=True)
    consent_version = models.CharField(max_length=40, blank=True)
    consent_withdrawn_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["operator__code"]
        verbose_name_plural = "operator identities"

    def __str__(self) -> str:
        return f"identity of {self.operator}"


class Condition(TeamOwned):
    """A named level of a factor (lighting: dim), shared by data collection and evaluation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    factor = models.SlugField(max_length=60)
    level = models.SlugField(max_length=60)
    description = models.TextField(blank=True)
    reset_instructions = models.TextField(blank=True)
    reference_image = models.ImageField(upload_to="conditions/", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["factor", "level"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "factor", "level"], name="condition_unique_level_in_team"
            )
        ]

    def __str__(self) -> str:
        return f"{self.factor}: {self.level}"


class Task(TeamOwned):
    """A task; its content lives in immutable, content-hashed versions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=80)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "slug"], name="task_unique_slug_in_team")
        ]

    def __str__(self) -> str:
        return self.name


class TaskVersion(models.Model):
    """One version of a task. Editable until something references it (`locked_at` set by the
    service that creates the reference); from then on immutable, and editing the task makes a
    new version. `content_hash` is the SHA-256 of the canonical content."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    instruction = models.TextField()
    scene_setup = models.TextField(blank=True)
    allowed_embodiments = models.ManyToManyField(Embodiment, related_name="task_versions")
    time_limit_s = models.FloatField()
    criteria = models.JSONField()
    content_hash = models.CharField(max_length=64, editable=False)
    locked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["task__name", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="taskversion_unique_number"),
            models.CheckConstraint(
                condition=models.Q(time_limit_s__gt=0), name="taskversion_time_limit_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task.slug} v{self.number}"

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None


class AuditEvent(models.Model):
    """Who changed what, when, with the state before and after. Append-only."""

    class Action(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"
        REVOKE = "revoke", "Revoke"
        LOCK = "lock", "Lock"
        ERASE = "erase", "Erase"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_robot = models.ForeignKey(
        Robot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the record still says who acted after the actor is deleted.
    actor_label = models.CharField(max_length=200)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.object_type} {self.object_repr}"


class IdempotencyRecord(models.Model):
    """The stored answer to a POST sent with an `Idempotency-Key`, scoped to the caller."""

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight", "In flight"
        COMPLETED = "completed", "Completed"

    principal = models.CharField(max_length=80)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="idempotency_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.principal} {self.key} ({self.state})"


class WorkerHeartbeat(models.Model):
    """A job worker's sign of life, written every few seconds by `manage.py worker`. A job
    whose worker has not beaten for `JOB_WORKER_DEAD_AFTER_S` is queued again (core.jobs)."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"worker {self.worker_id} on {self.host} pid {self.pid}"


class ThrottleWindow(models.Model):
    """How many requests a caller (`key`: a throttle scope and principal) made in the current
    fixed window of its rate, when the counters live in the database (core/api/throttling.py).
    One row per caller, overwritten when a new window starts; old rows are swept."""

    key = models.CharField(max_length=200, primary_key=True)
    window_start = models.BigIntegerField(help_text="Unix seconds")
    hits = models.PositiveIntegerField()

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}: {self.hits} since {self.window_start}"


class DataRequest(models.Model):
    """A person's request about the data held on an operator (docs/privacy.md): an access
    archive (`pg-access/1`), built by a job, downloadable once by the requester until it
    expires. Holds no personal data itself beyond the links to the operator and the
    requester; the archive file does."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access and portability"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Building"
        READY = "ready", "Ready to download"
        DOWNLOADED = "downloaded", "Downloaded"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.ACCESS)
    operator = models.ForeignKey(Operator, on_delete=models.CASCADE, related_name="data_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    include_files = models.BooleanField(default=False)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)  # percent
    step = models.CharField(max_length=80, blank=True)  # what the build is doing now
    file = models.CharField(max_length=300, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    checksum = models.CharField(max_length=64, blank=True)  # SHA-256 of the zip
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(db_index=True)
    downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} request for {self.operator} ({self.state})"
