"""Robots authenticate with `Authorization: Api-Key <key>`."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from core.access import RobotPrincipal
from core.services import robots

KEYWORD = "Api-Key"


class RobotAPIKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates a robot. A request without the header falls through to session auth; a
    request with a wrong, revoked or expired key is refused with 401 (never silently
    anonymous)."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, clear = header.partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        clear = clear.strip()
        if not clear or len(clear) > 200 or "\x00" in clear:
            raise exceptions.AuthenticationFailed("Malformed API key.")
        key = robots.authenticate_api_key(clear)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, revoked or expired API key.")
        return RobotPrincipal(key.robot, key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (with WWW-Authenticate) rather than 403 to anonymous callers.
        return KEYWORD


class RobotAPIKeyScheme(OpenApiAuthenticationExtension):
    """Documents the API key scheme in the OpenAPI schema."""

    target_class = RobotAPIKeyAuthentication
    name = "RobotApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A robot's key, sent as `Authorization: Api-Key <key>`.",
        }
