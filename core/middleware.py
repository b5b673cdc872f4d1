"""Request guards that must hold for every view, API or page."""

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.template import loader

from core.api.exceptions import DATABASE_RETRY_AFTER_S, error_body

log = logging.getLogger(__name__)


class RejectNulBytesMiddleware:
    """A NUL byte in a path or query parameter would reach a database lookup, where
    PostgreSQL raises (a 500). Refuse it up front."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return JsonResponse(
                error_body("nul_byte", "NUL characters are not allowed in URLs."), status=400
            )
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """While the database is away (restart, failover), answer 503 with Retry-After instead
    of a 500, so robots back off and retry: JSON under /api/, an HTML page elsewhere (a
    template rendered without the request, so no context processor reaches the database)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        log.warning("database unavailable: %s", exception)
        if request.path.startswith("/api/"):
            response = JsonResponse(
                error_body("database_unavailable", "The database is unavailable; retry shortly."),
                status=503,
            )
        else:
            page = loader.get_template("503.html").render({"retry_after_s": DATABASE_RETRY_AFTER_S})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
