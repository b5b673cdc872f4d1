"""Teams, their members and roles (and the Django groups that mirror the roles)."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction

from core.errors import Conflict, InvalidInput, NotPermitted
from core.models import AuditEvent, Membership, Team
from core.services.audit import record_audit, snapshot
from core.services.team_owned import require_manager

# --- Teams and roles ------------------------------------------------------------------------

# Django groups mirror the team roles so the admin site and permission checks agree.
ROLE_GROUP_PERMISSIONS: dict[str, list[str]] = {
    Membership.Role.ADMIN: ["add", "change", "delete", "view"],
    Membership.Role.OPERATOR: ["view"],
    Membership.Role.RESEARCHER: ["view"],
}
_ROLE_MODELS = [
    "embodiment",
    "robot",
    "robotapikey",
    "operator",
    "condition",
    "task",
    "taskversion",
    "team",
    "membership",
]


def ensure_role_groups() -> dict[str, Group]:
    """Create (or bring up to date) one Django group per team role with its permissions."""
    groups = {}
    for role, verbs in ROLE_GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=f"role:{role}")
        codenames = [f"{verb}_{model}" for verb in verbs for model in _ROLE_MODELS]
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="core", codename__in=codenames)
        )
        groups[role] = group
    return groups


def create_team(*, actor, name: str, slug: str) -> Team:
    """Platform superusers create teams. Raises NotPermitted, Conflict."""
    if actor is not None and not getattr(actor, "is_superuser", False):
        raise NotPermitted("Only a platform admin may create teams.")
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name, slug=slug)
            record_audit(
                actor=actor,
                action=AuditEvent.Action.CREATE,
                obj=team,
                team=team,
                after=snapshot(team),
            )
    except IntegrityError as exc:
        raise Conflict(f"A team named '{name}' or with slug '{slug}' exists already.") from exc
    return team


def add_member(*, actor, team: Team, user, role: str) -> Membership:
    """Give `user` a role in `team` (idempotent). Team admins and superusers may do this."""
    if actor is not None:
        require_manager(actor, team)
    if role not in Membership.Role.values:
        raise InvalidInput(f"Unknown role '{role}'.", fields={"role": ["Unknown role."]})
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(team=team, user=user, role=role)
        user.groups.add(ensure_role_groups()[role])
        if created:
            record_audit(
                actor=actor,
                action=AuditEvent.Action.CREATE,
                obj=membership,
                team=team,
                after=snapshot(membership),
            )
    return membership
