"""Health endpoints for the proxy and the service manager (docs/deploy.md).

`/healthz/live`: the process answers (no database, no cache, no session): restart it if not.
`/healthz/ready`: the database answers too: send it traffic. Both are plain text, exempt
from the HTTPS redirect (load balancers probe over plain HTTP), and never throttled.
"""

from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from core.api.exceptions import DATABASE_RETRY_AFTER_S


@never_cache
@require_GET
def live(request):
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_GET
def ready(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        response = HttpResponse("database unavailable\n", content_type="text/plain", status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
    return HttpResponse("ok\n", content_type="text/plain")
