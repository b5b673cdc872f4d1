"""Permission classes. Object visibility is decided by `core.access.visible` (an invisible
object is a 404); these decide what a caller that can see an object may do with it."""

from rest_framework import permissions

from core import access, rights


class ReadAnyWriteByRights(permissions.BasePermission):
    """Anyone authenticated reads what they can see; only people write (robots never edit the
    catalog), and only those holding the object's right in the owning team (`core.rights`:
    authors for tasks and conditions, admins for robots and embodiments; checked per object,
    and again by the service)."""

    message = "You may not change this object: its team has not given you that right."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return not access.is_robot(request.user)

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return rights.may_change(request.user, obj)


class IsPerson(permissions.BasePermission):
    message = "This endpoint is for people, not robots."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated) and not access.is_robot(
            request.user
        )
