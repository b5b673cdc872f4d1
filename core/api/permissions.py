"""Permission classes. Object visibility is decided by `core.access.visible` (an invisible
object is a 404); these decide what a caller that can see an object may do with it."""

from rest_framework import permissions

from core import access


class ReadAnyWriteTeamAdmin(permissions.BasePermission):
    """Anyone authenticated reads what they can see; only people write (robots never edit the
    catalog), and only admins of the owning team (checked per object, and again by the
    service)."""

    message = "Only an admin of the owning team may change this."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return not access.is_robot(request.user)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return access.can_manage(request.user, obj.team_id)


class IsPerson(permissions.BasePermission):
    message = "This endpoint is for people, not robots."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and not access.is_robot(
            request.user
        )
