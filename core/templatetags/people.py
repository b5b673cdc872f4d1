"""How pages name who did something: the stored actor labels ("user:olga", "robot:arm-1",
see `core.access.actor_label`) are for the audit trail and the API; people read names."""

from django import template

register = template.Library()


@register.filter
def who(label: str) -> str:
    """ "user:olga" -> "olga", "robot:arm-1" -> "robot arm-1"; anything else as it is."""
    kind, _, name = (label or "").partition(":")
    if not name:
        return label or ""
    return name if kind == "user" else f"{kind} {name}"
