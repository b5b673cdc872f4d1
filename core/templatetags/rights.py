"""What the signed-in person may do, for the pages' menus: `{% if user|holds:"author" %}`."""

from django import template

from core import rights

register = template.Library()


@register.filter
def holds(user, right: str) -> bool:
    """Whether `user` holds `right` (a `core.rights.Right` value) in some team."""
    return rights.teams_where(user, rights.Right(right)).exists()
