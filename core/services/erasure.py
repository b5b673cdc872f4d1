"""Erasing an operator: the right to be forgotten (docs/privacy.md, "Erasure").

One confirmed action removes the person behind a pseudonym and every stored thing that leads
from the pseudonym back to them:

- the identity row (name, e-mail, consent record) is deleted, and so are the operator's
  access requests and their archives (which hold the identity);
- the user account linked to the operator is deleted, and with it its memberships; every
  reference to it (nullable foreign keys) is cleared;
- every identity field that names the person (`core.privacy.fields_of_kind(Kind.IDENTITY)`:
  audit events' actor, object label and snapshots, labels' and trial reports' labeler,
  sessions' `opened_by`, trials' `reported_by`, `created_by` fields...) names the pseudonym
  instead (`operator:OP-7F3A2C`); stored API answers and throttle counters of the account
  (caches) are deleted, and so are its sign-in records;
- the apps do their part through `operator_erasing` (teleop: recordings that carried the
  person's name are rebuilt under a new key and the old object deleted, so signed links to
  it stop working; the operator's episodes kept under the pseudonym or deleted, as the
  team's `erased_episodes` policy says; exports holding deleted episodes marked stale).

All database work is one transaction; file work runs as jobs after it commits. What stays is
an `erase` audit event: when, by whom, for which pseudonym, what was done (counts), and no
name, e-mail or username.

The account is deleted, not kept scrubbed: nothing protects it (every reference to a user is
nullable, and cleared first), and a deleted row holds nothing. An account that another team
also uses, or a staff or superuser account, is not a team admin's to delete: that erasure is
refused (Conflict) unless a platform superuser asks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage
from django.db import models, transaction
from django.db.models import Q
from django.db.models.functions import Cast
from django.dispatch import Signal

from core import job_queue, rights
from core.errors import Conflict
from core.models import AuditEvent, DataRequest, Membership, Operator, OperatorIdentity, Team
from core.privacy import Kind, fields_of_kind
from core.services.audit import record_audit, snapshot

#: Sent inside the erasure's transaction (and, with `erasure.dry_run`, for the confirmation
#: page, changing nothing) with `erasure`, before the identity fields are rewritten: a
#: receiver still finds the person's rows by `erasure.user_id` and `erasure.old_label`.
#: Each receiver returns a list of `Step`s saying what it does.
operator_erasing = Signal()

# Identity fields handled by the erasure itself, not by the generic rewrite.
_HANDLED = {"auth.user", "core.membership", "core.operator", "core.operatoridentity"}
# Caches keyed by the account: deleted, not rewritten.
_CACHES = {"core.idempotencyrecord", "core.throttlewindow"}
# A username's characters (Django's default validator), to match one whole.
_USERNAME_CHARS = r"[\w.@+-]"
_BATCH = 500


@dataclass(frozen=True)
class Step:
    """One thing an erasure does: `count` rows or files of `what`, and what happens to them."""

    what: str
    count: int
    outcome: str


@dataclass
class Erasure:
    """Who is erased, and how to recognise them in stored text."""

    operator: Operator
    user_id: int | None
    username: str
    full_name: str
    email: str
    delete_episodes: bool
    dry_run: bool
    steps: list[Step] = field(default_factory=list)

    @property
    def label(self) -> str:
        """What names the person from now on: the pseudonym, as an actor label."""
        return f"operator:{self.operator.code}"

    @property
    def old_label(self) -> str:
        """The actor label the person's account left (`access.actor_label`)."""
        return f"user:{self.username}" if self.username else ""

    @property
    def needles(self) -> list[str]:
        """Strings that name the person, for a first filter in the database."""
        return [s for s in (self.old_label, self.full_name, self.email) if s]

    def scrub(self, text: str, *, bare_username: bool = False) -> str:
        """`text` with the person's label, name and e-mail (and, where asked, the bare
        username, as in a membership's "olga is operator of Lab") replaced by the pseudonym
        label."""
        if not text:
            return text
        if self.old_label:
            text = _whole(self.old_label).sub(self.label, text)
        for literal in (self.email, self.full_name):
            if literal:
                text = re.sub(re.escape(literal), self.label, text, flags=re.IGNORECASE)
        if bare_username and self.username:
            text = _whole(self.username).sub(self.label, text)
        return text

    def scrub_json(self, value: Any, user_keys: frozenset[str]) -> Any:
        """A JSON value with the person's strings scrubbed and the account's id, under a key
        that holds user ids (`user`, `labeler`...), replaced by null."""
        if isinstance(value, dict):
            return {
                key: None
                if key in user_keys and self.user_id is not None and item == self.user_id
                else self.scrub_json(item, user_keys)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.scrub_json(item, user_keys) for item in value]
        if isinstance(value, str):
            return self.scrub(value)
        return value

    def add(self, what: str, count: int, outcome: str) -> None:
        if count:
            self.steps.append(Step(what, count, outcome))


def _whole(word: str) -> re.Pattern:
    return re.compile(rf"(?<!{_USERNAME_CHARS}){re.escape(word)}(?!{_USERNAME_CHARS})")


# --- The team's policy -------------------------------------------------------------------------


def set_erased_episodes(*, actor, team: Team, policy: str) -> Team:
    """Choose what erasing one of `team`'s operators does to its episodes (keep them under
    the pseudonym, or delete them). Audited. Raises NotPermitted, Conflict (unknown choice)."""
    rights.require(actor, rights.Right.MANAGE, team)
    if policy not in Team.ErasedEpisodes.values:
        raise Conflict(f"Unknown choice '{policy}'.")
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team.pk)
        before = snapshot(team)
        team.erased_episodes = policy
        team.save(update_fields=["erased_episodes"])
        record_audit(
            actor=actor,
            action=AuditEvent.Action.UPDATE,
            obj=team,
            team=team,
            before=before,
            after=snapshot(team),
        )
    return team


# --- Erasing -----------------------------------------------------------------------------------


def plan_erasure(*, actor, operator: Operator) -> list[Step]:
    """What `erase_operator` would do now, changing nothing (the confirmation page shows
    it). Raises what `erase_operator` raises."""
    with transaction.atomic():
        return _run(actor, operator, dry_run=True)


def erase_operator(*, actor, operator: Operator) -> list[Step]:
    """Erase the person behind `operator` (module docstring), in one transaction; file work
    is queued to run after it commits. Returns what was done. Raises NotPermitted (not an
    admin of the operator's team), Conflict (the account is the actor's own, or is another
    team's, staff or superuser and the actor is no superuser)."""
    with transaction.atomic():
        return _run(actor, operator, dry_run=False)


def _run(actor, operator: Operator, *, dry_run: bool) -> list[Step]:
    rights.require(actor, rights.Right.MANAGE, operator.team_id)
    operator = (
        Operator.objects.select_for_update(of=("self",))
        .select_related("team", "user")
        .get(pk=operator.pk)
    )
    user = operator.user
    _check_account(actor, operator, user)
    identity = OperatorIdentity.objects.filter(operator=operator).first()
    erasure = Erasure(
        operator=operator,
        user_id=user.pk if user else None,
        username=user.get_username() if user else "",
        full_name=(identity.full_name if identity else "").strip(),
        email=(identity.email if identity else "").strip(),
        delete_episodes=operator.team.erased_episodes == Team.ErasedEpisodes.DELETE,
        dry_run=dry_run,
    )
    erasure.add("identity (name, e-mail, consent record)", int(identity is not None), "deleted")
    # Access archives hold the identity and the account (docs/privacy.md).
    archives = DataRequest.objects.filter(operator=operator)
    erasure.add("access requests and their archives", archives.count(), "deleted")
    if user is not None:
        memberships = Membership.objects.filter(user=user).count()
        erasure.add(
            f"user account (and its memberships: {memberships})",
            1,
            "deleted; the pseudonym no longer leads to it",
        )
    for _, steps in operator_erasing.send(sender=Operator, erasure=erasure):
        erasure.steps.extend(steps or [])
    _rewrite_identity_fields(erasure)
    _forget_account(erasure, user)
    if not dry_run:
        files = [key for key in archives.values_list("file", flat=True) if key]
        archives.delete()
        if files:
            job_queue.enqueue_on_commit("core.tasks.delete_stored_files_job", *files)
        if identity is not None:
            identity.delete()
        operator.user = None
        operator.active = False
        operator.save(update_fields=["user", "active"])
        if user is not None:
            user.delete()
        record_audit(
            actor=actor,
            action=AuditEvent.Action.ERASE,
            obj=operator,
            team=operator.team,
            after={
                "erased": operator.code,
                "episodes": "deleted" if erasure.delete_episodes else "kept",
                "steps": [
                    {"what": s.what, "count": s.count, "outcome": s.outcome} for s in erasure.steps
                ],
            },
        )
    return erasure.steps


def _check_account(actor, operator: Operator, user) -> None:
    if user is None:
        return
    if user.pk == getattr(actor, "pk", None):
        raise Conflict("You cannot erase your own account; another admin of the team can.")
    if getattr(actor, "is_superuser", False):
        return
    if user.is_staff or user.is_superuser:
        raise Conflict(
            f"The account behind {operator.code} is a platform staff account: "
            "a platform admin (superuser) erases it."
        )
    other_teams = Membership.objects.filter(user=user).exclude(team_id=operator.team_id).exists()
    if other_teams:
        raise Conflict(
            f"The account behind {operator.code} also belongs to another team: "
            "a platform admin (superuser) erases it, or that team removes it first."
        )


def _user_keys() -> frozenset[str]:
    """Names of every field that points at a user account, as they appear in snapshots."""
    user_model = get_user_model()
    return frozenset(
        f.name
        for model in apps.get_models()
        for f in model._meta.concrete_fields
        if f.is_relation and f.related_model is user_model
    )


def _rewrite_identity_fields(erasure: Erasure) -> None:
    """Every identity field (core/privacy.py) that names the person names the pseudonym
    instead; nullable links to the account are cleared (the account is deleted next)."""
    user_model = get_user_model()
    user_keys = _user_keys()
    for label, names in fields_of_kind(Kind.IDENTITY).items():
        if label in _HANDLED or label in _CACHES:
            continue
        model = apps.get_model(label)
        rows: set = set()
        for name in names:
            f = model._meta.get_field(name)
            if f.is_relation and f.related_model is user_model:
                rows |= _clear_links(erasure, model, name)
            elif isinstance(f, models.JSONField):
                rows |= _scrub_json_field(erasure, model, name, user_keys)
            elif isinstance(f, models.CharField | models.TextField):
                rows |= _scrub_text_field(erasure, model, name)
        erasure.add(
            f"{model._meta.verbose_name_plural} naming the person",
            len(rows),
            f"name {erasure.label} instead",
        )


def _clear_links(erasure: Erasure, model, name: str) -> set:
    """The rows linking the account through `name` (the link cleared); their pks."""
    if erasure.user_id is None:
        return set()
    rows = model.objects.filter(**{f"{name}_id": erasure.user_id})
    found = set(rows.values_list("pk", flat=True))
    if not erasure.dry_run:
        rows.update(**{name: None})
    return found


def _text_match(name: str, needles: Iterable[str]) -> Q:
    match = Q(pk__in=[])
    for needle in needles:
        match |= Q(**{f"{name}__icontains": needle})
    return match


def _scrub_text_field(erasure: Erasure, model, name: str) -> set:
    # A membership's or account's audit label holds the bare username ("olga is operator
    # of Lab"): those events are found by their snapshots (_membership_events).
    rows = model.objects.filter(_text_match(name, erasure.needles))
    bare = set()
    if model is AuditEvent and name == "object_repr":
        bare = set(_membership_events(erasure))
        rows = model.objects.filter(Q(pk__in=rows.values("pk")) | Q(pk__in=bare))
    changed = []
    for row in rows.iterator(chunk_size=_BATCH):
        value = getattr(row, name)
        scrubbed = erasure.scrub(value, bare_username=row.pk in bare)
        if scrubbed != value:
            setattr(row, name, scrubbed)
            changed.append(row)
    if not erasure.dry_run:
        model.objects.bulk_update(changed, [name], batch_size=_BATCH)
    return {row.pk for row in changed}


def _membership_events(erasure: Erasure) -> Iterable[int]:
    """Ids of audit events about one of the account's memberships (or the account)."""
    if erasure.user_id is None:
        return
    events = AuditEvent.objects.filter(object_type__in=["core.membership", "auth.user"])
    for pk, object_type, object_id, before, after in events.values_list(
        "pk", "object_type", "object_id", "before", "after"
    ):
        if object_type == "auth.user":
            if object_id == str(erasure.user_id):
                yield pk
        elif any((s or {}).get("user") == erasure.user_id for s in (before, after)):
            yield pk


def _scrub_json_field(erasure: Erasure, model, name: str, user_keys: frozenset[str]) -> set:
    text = Cast(name, models.TextField())
    candidates = model.objects.annotate(_text=text).filter(
        _text_match("_text", erasure.needles)
        | (Q(_text__contains=str(erasure.user_id)) if erasure.user_id is not None else Q())
    )
    changed = []
    for row in candidates.iterator(chunk_size=_BATCH):
        value = getattr(row, name)
        scrubbed = erasure.scrub_json(value, user_keys)
        if scrubbed != value:
            setattr(row, name, scrubbed)
            changed.append(row)
    if not erasure.dry_run:
        model.objects.bulk_update(changed, [name], batch_size=_BATCH)
    return {row.pk for row in changed}


def _forget_account(erasure: Erasure, user) -> None:
    """Caches and sign-in records keyed by the account: deleted."""
    if user is None:
        return
    principal = f"user:{user.pk}"
    idempotency = apps.get_model("core", "IdempotencyRecord").objects.filter(
        Q(principal=principal)
        | Q(pk__in=_json_matches("core.idempotencyrecord", "response_body", erasure))
    )
    throttles = apps.get_model("core", "ThrottleWindow").objects.filter(
        key__endswith=f"_{principal}"
    )
    sign_ins = _sign_in_records(erasure.username)
    admin_log = _admin_log(erasure, user)
    erasure.add(
        "stored API answers and rate counters of the account",
        _count(idempotency, throttles),
        "deleted",
    )
    erasure.add(
        "sign-in records and admin-site log entries of the account",
        _count(*sign_ins, admin_log),
        "deleted",
    )
    if not erasure.dry_run:
        for rows in (idempotency, throttles, *sign_ins, admin_log):
            rows.delete()


def _json_matches(label: str, name: str, erasure: Erasure) -> list:
    model = apps.get_model(label)
    return list(
        model.objects.annotate(_text=Cast(name, models.TextField()))
        .filter(_text_match("_text", erasure.needles))
        .values_list("pk", flat=True)
    )


def _sign_in_records(username: str) -> list:
    """django-axes' records of the account's sign-ins and failures (they hold the username
    and the IP address)."""
    found = []
    for name in ("AccessAttempt", "AccessLog", "AccessFailureLog"):
        try:
            model = apps.get_model("axes", name)
        except LookupError:
            continue
        found.append(model.objects.filter(username=username))
    return found


def _admin_log(erasure: Erasure, user):
    """The Django admin's log entries about the account, or whose label names the person
    (a membership's "olga is operator of Lab"); the account's own entries go with it."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    about_account = Q(content_type=ContentType.objects.get_for_model(user), object_id=str(user.pk))
    candidates = LogEntry.objects.filter(
        _text_match("object_repr", [*erasure.needles, erasure.username])
    ).values_list("pk", "object_repr")
    naming = [pk for pk, text in candidates if erasure.scrub(text, bare_username=True) != text]
    return LogEntry.objects.filter(about_account | Q(pk__in=naming))


def delete_stored_files(keys) -> int:
    """Delete stored files (after an erasure committed); returns how many were there."""
    deleted = 0
    for key in keys:
        if default_storage.exists(key):
            default_storage.delete(key)
            deleted += 1
    return deleted


def _count(*querysets) -> int:
    return sum(q.count() for q in querysets)
