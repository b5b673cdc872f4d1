"""The schema check every API answer in the tests goes through (tests/openapi_conformance.py)
catches an answer the schema does not describe."""

import json
import uuid

import pytest
from rest_framework.response import Response

from tests.openapi_conformance import NonConformingAnswer, check_answer

JSON = {"Content-Type": "application/json"}
VERSION = {"server_version": "1.0", "api_version": "1", "min_client_version": "0.1"}


def _check(method, path, status, body, headers=JSON):
    check_answer(method, path, status, headers, json.dumps(body).encode())


def test_a_conforming_answer_passes():
    _check("GET", "/api/v1/version", 200, VERSION)
    _check("GET", f"/api/v1/tasks/{uuid.uuid4()}/", 404, _error("not_found"))
    _check("GET", "/api/v1/nonexistent/", 404, _error("not_found"))  # no such path


def _error(code):
    return {"error": code, "detail": "No such thing.", "fields": {}}


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({**VERSION, "api_version": 1}, 'at /api_version: 1 is not of type "string"'),
        ({"server_version": "1.0"}, '"api_version" is a required property'),
        ([VERSION], "is not of type"),
    ],
)
def test_a_wrong_body_fails_with_where_it_is_wrong(body, complaint):
    with pytest.raises(NonConformingAnswer) as failure:
        _check("GET", "/api/v1/version", 200, body)
    assert "GET /api/v1/version answered 200" in str(failure.value)
    assert complaint in str(failure.value)


def test_a_bare_array_where_a_page_is_documented_fails():
    with pytest.raises(NonConformingAnswer, match="is not of type"):
        _check("GET", "/api/v1/tasks/", 200, [])


def test_null_where_the_schema_says_not_nullable_fails():
    robot = {
        "id": str(uuid.uuid4()),
        "name": "arm-1",
        "team": "lab",
        "embodiment": "arm",
        "site": "",
        "serial": "",
        "status": "active",
        "software_version": "",
        "last_seen_at": None,
        "visibility": "team",
        "shared_with": [],
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(NonConformingAnswer, match='at /name: null is not of type "string"'):
        _check("GET", f"/api/v1/robots/{robot['id']}/", 200, robot | {"name": None})


def test_an_undocumented_status_fails():
    with pytest.raises(NonConformingAnswer, match="status 418 is not documented"):
        _check("GET", "/api/v1/version", 418, _error("teapot"))


def test_an_error_answer_without_the_error_body_fails():
    with pytest.raises(NonConformingAnswer, match='"fields" is a required property'):
        _check("GET", "/api/v1/tasks/", 401, {"error": "not_authenticated", "detail": "No."})
    with pytest.raises(NonConformingAnswer, match="must be JSON"):
        check_answer("GET", "/api/v1/nonexistent/", 404, {"Content-Type": "text/html"}, b"<p>")


def test_an_undocumented_operation_fails():
    with pytest.raises(NonConformingAnswer, match="no operation documents"):
        _check("PUT", "/api/v1/version", 200, VERSION)


def test_answers_outside_the_versioned_api_are_not_checked():
    check_answer("GET", "/api/schema/", 200, {"Content-Type": "text/html"}, b"anything")


def test_every_test_client_answer_goes_through_the_check(client, monkeypatch):
    from core.api import views

    monkeypatch.setattr(views.VersionView, "get", lambda self, request: Response({"v": 1}))
    with pytest.raises(
        NonConformingAnswer, match="GET /api/v1/version answered 200.*is a required"
    ):
        client.get("/api/v1/version")
