"""Every answer the test suite gets from the API conforms to the OpenAPI schema.

A pytest plugin (listed in tests/conftest.py). Its autouse fixture wraps Django's test client
(and so DRF's `APIClient`, which calls it): each answer to a `/api/v1/` request is checked
against the schema `manage.py spectacular` serves, built once per session:

- the operation (method and path) is documented, or the answer is a 404/405 error body for a
  path or method that does not exist;
- the status code is documented for that operation;
- a documented JSON body comes back as JSON and validates against the documented schema
  (schemathesis' response conformance: OpenAPI's `nullable`, `oneOf`, formats...).

HEAD and OPTIONS answers carry no body (and OpenAPI generators document neither); a streamed
file's bytes are not read; the redirect of plain HTTP to HTTPS (`SECURE_SSL_REDIRECT`) comes
before any operation. A 500 is a bug, which no schema documents: it must still carry the
one error body. An answer that does not conform fails the test with `NonConformingAnswer`.
`check_answer` is the check itself, for tests that feed it an answer directly.
"""

from __future__ import annotations

import functools
import json
from urllib.parse import urlsplit

import pytest

API_PREFIX = "/api/v1/"
_BODYLESS_METHODS = {"HEAD", "OPTIONS"}


class NonConformingAnswer(AssertionError):
    """An API answer that the OpenAPI schema does not describe."""


@functools.cache
def api_schema():
    """The schema as `/api/schema/` serves it, loaded by schemathesis (built once)."""
    import schemathesis
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    document = SchemaGenerator().get_schema(request=None, public=True)
    return schemathesis.openapi.from_dict(json.loads(OpenApiJsonRenderer().render(document)))


@functools.cache
def _error_validator():
    import jsonschema

    return jsonschema.Draft7Validator(api_schema().raw_schema["components"]["schemas"]["ErrorOut"])


def _operation(method: str, path: str):
    """The documented operation answering `method path`; the router takes paths with or
    without their trailing slash, the schema names them with it."""
    schema = api_schema()
    for candidate in (path, path + "/" if not path.endswith("/") else path.rstrip("/")):
        operation = schema.find_operation_by_path(method, candidate)
        if operation is not None:
            return operation
    return None


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _fail(method: str, path: str, status: int, problem: str, content: bytes) -> None:
    body = content[:2000].decode("utf-8", "replace")
    raise NonConformingAnswer(
        f"{method} {path} answered {status}, which the OpenAPI schema does not describe: "
        f"{problem}\nBody: {body}"
    )


def _check_error_body(method, path, status, content_type, content) -> None:
    if _media_type(content_type) != "application/json":
        _fail(method, path, status, f"an error answer must be JSON, not {content_type!r}", content)
    try:
        body = json.loads(content)
    except ValueError:
        _fail(method, path, status, "the body is not JSON", content)
    problems = sorted(_error_validator().iter_errors(body), key=str)
    if problems:
        _fail(method, path, status, f"not the error body: {problems[0].message}", content)


def check_answer(
    method: str,
    path: str,
    status: int,
    headers: dict[str, str],
    content: bytes | None,
) -> None:
    """Raise `NonConformingAnswer` unless the schema documents this answer. `content` is None
    for a streamed body, which is not read."""
    import requests
    from schemathesis.core.failures import Failure, FailureGroup
    from schemathesis.core.transport import Response

    method = method.upper()
    if not path.startswith(API_PREFIX) or method in _BODYLESS_METHODS:
        return
    headers = {name.lower(): value for name, value in headers.items()}
    if status == 301 and urlsplit(headers.get("location", "")).scheme == "https":
        return  # SECURE_SSL_REDIRECT sends plain HTTP to HTTPS before any operation runs
    content_type = headers.get("content-type", "")
    operation = _operation(method, path)
    if status == 500 or (operation is None and status in (404, 405)):
        _check_error_body(method, path, status, content_type, content or b"")
        return
    if operation is None:
        _fail(method, path, status, "no operation documents this method and path", content or b"")
    responses = operation.definition.raw.get("responses", {})
    documented = responses.get(str(status)) or responses.get("default")
    if documented is None:
        listed = ", ".join(sorted(responses))
        _fail(method, path, status, f"status {status} is not documented (only {listed})", b"")
    media_types = {_media_type(name) for name in documented.get("content", {})}
    if not media_types:
        if content:
            _fail(method, path, status, "a body where the schema documents none", content)
        return
    if _media_type(content_type) not in media_types:
        problem = f"content type {content_type!r}, documented {sorted(media_types)}"
        _fail(method, path, status, problem, content or b"")
    if content is None:
        return
    request = requests.Request(method, f"http://testserver{path}").prepare()
    answer = Response(
        status_code=status,
        headers={name: [value] for name, value in headers.items()},
        content=content,
        request=request,
        elapsed=0.0,
        verify=True,
    )
    try:
        operation.validate_response(answer)
    except (FailureGroup, Failure) as exc:
        failures = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
        problem = "\n".join(_describe(failure) for failure in failures)
        _fail(method, path, status, problem, content)


def _describe(failure) -> str:
    """A failure with where in the body it is (`results/0/condition`)."""
    where = getattr(failure, "instance_path", None)
    message = failure.message.split("\n")[0]
    if where is None:
        return f"{failure.title}: {message}"
    return f"at /{'/'.join(str(part) for part in where)}: {message}"


def _check_test_response(response) -> None:
    environ = response.request
    method = environ.get("HTTP_X_HTTP_METHOD_OVERRIDE") or environ["REQUEST_METHOD"]
    content = None if response.streaming else response.content
    check_answer(
        method, environ["PATH_INFO"], response.status_code, dict(response.items()), content
    )


@pytest.fixture(autouse=True)
def _api_answers_conform_to_the_schema(monkeypatch):
    """Every answer a test client gets from `/api/v1/` is checked against the schema."""
    from django.test import Client

    original = Client.request

    def request(self, **request_kwargs):
        response = original(self, **request_kwargs)
        _check_test_response(response)
        return response

    monkeypatch.setattr(Client, "request", request)
