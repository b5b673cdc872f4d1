from django.contrib import admin
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import health
from core.api.exceptions import error_body
from core.csp import SWAGGER_POLICY, content_security_policy

urlpatterns = [
    # The project's URLconf: apps are included by name; core's code imports neither app.
    path("", include("evaluation.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("teleop.urls")),
    path("", include("core.data_request_urls")),
    path("", include("core.pages.urls")),
    path("", include("core.pages.robot_urls")),
    path("", include("core.pages.operator_urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("core.api.urls")),
    path("api/v1/", include("teleop.api.urls")),
    path("api/v1/", include("evaluation.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("healthz/live", health.live, name="health-live"),
    path("healthz/ready", health.ready, name="health-ready"),
    # Browsers ask for /favicon.ico on pages without our <link rel="icon"> (admin, raw JSON).
    path("favicon.ico", lambda request: HttpResponsePermanentRedirect(static("core/favicon.svg"))),
    path(
        "api/docs/",
        content_security_policy(SWAGGER_POLICY)(SpectacularSwaggerView.as_view(url_name="schema")),
        name="swagger-ui",
    ),
    # Last: any other /api/ path is a JSON 404 for API clients, DEBUG or not (Django's
    # handler404 is only used when DEBUG is off).
    re_path(r"^api/", csrf_exempt(lambda request: not_found(request))),
]


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("server_error", "Internal error; it has been logged."), status=500
        )
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)


handler404 = not_found
handler500 = server_error
