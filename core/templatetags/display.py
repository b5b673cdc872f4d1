"""Small filters for how pages write things: who did something (the stored actor labels,
"user:olga", "robot:arm-1" from `core.access.actor_label`, are for the audit trail and the API;
people read names) and where long labels may wrap."""

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def who(label: str) -> str:
    """ "user:olga" -> "olga", "robot:arm-1" -> "robot arm-1"; anything else as it is."""
    kind, _, name = (label or "").partition(":")
    if not name:
        return label or ""
    return name if kind == "user" else f"{kind} {name}"


@register.filter
def soft_breaks(text: str) -> str:
    """Text that may wrap after ':' (long check names in flag badges), escaped."""
    return mark_safe(escape(text or "").replace(":", ":<wbr>"))
