"""The OpenAPI schema builds and validates, and schemathesis finds no 5xx in it."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils.crypto import get_random_string
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from core import services
from core.wsgi import application
from tests.core import factories

EXAMPLES_PER_OPERATION = 15


def test_schema_builds_and_validates():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    paths = schema["paths"]
    assert "/api/v1/whoami" in paths and "/api/v1/robots/{id}/heartbeat/" in paths
    assert schema["components"]["securitySchemes"]["RobotApiKey"]["name"] == "Authorization"


def test_swagger_ui_is_served_locally(client, db):
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "cdn" not in page.lower()


# tus chunks are raw bytes.
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))

# Loaded at collection: serving the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def _keep_test_transaction():
    """Requests go straight to the WSGI app; like Django's test client, keep the per-request
    connection clean-up from closing the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def principals(db):
    """A robot key and a signed-in team admin (session cookie + CSRF token)."""
    world = factories.build_world()
    client = Client()
    client.force_login(world.a.admin)  # a session, without a request through the signals
    csrf = get_random_string(32)  # any well-formed token works when cookie and header agree
    _, key = services.issue_api_key(actor=world.a.admin, robot=world.a.robot)
    return {
        "robot": {"headers": {"Authorization": f"Api-Key {key}"}},
        "admin": {
            "headers": {"X-CSRFToken": csrf},
            "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf},
        },
    }


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_has_no_server_errors_for_a_robot(case, principals):
    case.call_and_validate(checks=[not_a_server_error], **principals["robot"])


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_has_no_server_errors_for_an_admin(case, principals):
    case.call_and_validate(checks=[not_a_server_error], **principals["admin"])


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False])
def test_an_unknown_api_path_is_a_json_404_with_debug_on_or_off(settings, debug):
    from django.test import Client

    settings.DEBUG = debug
    client = Client(enforce_csrf_checks=True)  # a robot's POST carries no CSRF token
    for response in (
        client.get("/api/v1/nonexistent/"),
        client.post("/api/v1/nonexistent/", {}, content_type="application/json"),
    ):
        assert response.status_code == 404 and response["Content-Type"] == "application/json"
        assert response.json() == {
            "error": "not_found",
            "detail": "No endpoint at /api/v1/nonexistent/.",
            "fields": {},
        }


def test_the_favicon_is_served(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("core/favicon.svg")
    assert finders.find("core/favicon.svg")
