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

from core.services import robots
from core.wsgi import application
from tests.core import factories

EXAMPLES_PER_OPERATION = 15


def test_schema_builds_and_validates():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    paths = schema["paths"]
    assert "/api/v1/whoami" in paths and "/api/v1/robots/{id}/heartbeat/" in paths
    assert schema["components"]["securitySchemes"]["RobotApiKey"]["name"] == "Authorization"


def test_every_operation_documents_its_error_answers_with_the_one_error_body():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    error = {"$ref": "#/components/schemas/ErrorOut"}
    assert set(schema["components"]["schemas"]["ErrorOut"]["required"]) == {
        "error",
        "detail",
        "fields",
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            errors = {code for code in responses if code >= "400"}
            assert {"400", "503"} <= errors, (method, path)
            if "{" in path:
                assert "404" in errors, (method, path)
            if method in ("post", "patch", "delete"):
                assert "409" in errors, (method, path)
            for code in errors:
                body = responses[code]["content"]["application/json"]["schema"]
                assert body == error, (method, path, code)
    heartbeat = schema["paths"]["/api/v1/robots/{id}/heartbeat/"]["post"]
    assert {"401", "403", "422", "429"} <= set(heartbeat["responses"])
    assert "Idempotency-Key" in [p["name"] for p in heartbeat["parameters"]]
    assert "Retry-After" in heartbeat["responses"]["429"]["headers"]
    version = schema["paths"]["/api/v1/version"]["get"]["responses"]
    assert "401" not in version  # no credentials taken, none refused


def test_the_short_lists_under_an_object_are_documented_as_the_arrays_they_are():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in (
        "/api/v1/tasks/{id}/versions/",
        "/api/v1/dataset-views/{id}/versions/",
        "/api/v1/dataset-view-versions/{id}/exports/",
        "/api/v1/policies/{id}/versions/",
        "/api/v1/robots/{id}/keys/",
        "/api/v1/trials/{id}/reports/",
        "/api/v1/episodes/{id}/labels/",
        "/api/v1/protocols/{id}/progress/",
    ):
        get = schema["paths"][path]["get"]
        assert get["responses"]["200"]["content"]["application/json"]["schema"]["type"] == (
            "array"
        ), path
        assert not {p["name"] for p in get.get("parameters", [])} & {"limit", "offset"}, path


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
    _, key = robots.issue_api_key(actor=world.a.admin, robot=world.a.robot)
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
