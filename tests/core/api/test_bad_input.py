"""Bad input is a 4xx that says what was wrong, and nothing is stored."""

import json

import pytest

from core.models import AuditEvent, Condition, Embodiment, Robot, Task, TaskVersion
from tests.core.factories import ARM_SPEC, PICK_CRITERIA

pytestmark = pytest.mark.django_db


def _condition(**extra):
    return {"team": "{team}", "factor": "lighting", "level": "dim", **extra}


def _task(**extra):
    body = {
        "team": "{team}",
        "slug": "new-task",
        "name": "New task",
        "instruction": "Do it",
        "time_limit_s": 30,
        "criteria": PICK_CRITERIA,
        "allowed_embodiments": ["{emb}"],
    }
    return body | extra


def _nested(depth: int):
    value = {}
    for _ in range(depth):
        value = {"x": value}
    return value


# (id, method, path, body, content type, expected status, expected error code)
# A body that is `bytes` is sent as is; anything else is JSON-encoded after substituting
# {team} / {emb} / {robot}.
CASES = [
    (
        "nul-in-string",
        "post",
        "/api/v1/conditions/",
        _condition(level="d\x00m"),
        None,
        400,
        "parse_error",
    ),
    (
        "nul-in-key",
        "post",
        "/api/v1/conditions/",
        _condition(**{"a\x00": 1}),
        None,
        400,
        "parse_error",
    ),
    ("nul-in-query", "get", "/api/v1/tasks/?team=%00", None, None, 400, "nul_byte"),
    ("nul-in-path", "get", "/api/v1/robots/%00/", None, None, 400, "nul_byte"),
    ("deep-brackets", "post", "/api/v1/conditions/", b"[" * 200_000, None, 400, "parse_error"),
    (
        "nested-too-deep",
        "post",
        "/api/v1/tasks/",
        _task(criteria=_nested(40)),
        None,
        400,
        "parse_error",
    ),
    ("malformed-json", "post", "/api/v1/conditions/", b'{"team": ', None, 400, "parse_error"),
    ("nan-literal", "post", "/api/v1/tasks/", b'{"time_limit_s": NaN}', None, 400, "parse_error"),
    (
        "infinite-number",
        "post",
        "/api/v1/tasks/",
        b'{"time_limit_s": 1e999}',
        None,
        400,
        "parse_error",
    ),
    (
        "huge-integer",
        "post",
        "/api/v1/conditions/",
        b'{"level": ' + b"9" * 5000 + b"}",
        None,
        400,
        "parse_error",
    ),
    (
        "invalid-utf8",
        "post",
        "/api/v1/conditions/",
        b'{"level": "\xff\xfe"}',
        None,
        400,
        "parse_error",
    ),
    ("empty-body", "post", "/api/v1/conditions/", b"", None, 400, "invalid"),
    ("body-is-a-list", "post", "/api/v1/conditions/", [1, 2], None, 400, "invalid"),
    ("wrong-type", "post", "/api/v1/tasks/", _task(time_limit_s="soon"), None, 400, "invalid"),
    (
        "unknown-field",
        "post",
        "/api/v1/conditions/",
        _condition(colour="red"),
        None,
        400,
        "unknown_field",
    ),
    (
        "missing-field",
        "post",
        "/api/v1/conditions/",
        {"team": "{team}", "factor": "light"},
        None,
        400,
        "invalid",
    ),
    (
        "bad-choice",
        "post",
        "/api/v1/conditions/",
        _condition(visibility="everyone"),
        None,
        400,
        "invalid",
    ),
    ("bad-slug", "post", "/api/v1/conditions/", _condition(level="very dim"), None, 400, "invalid"),
    ("too-long", "post", "/api/v1/conditions/", _condition(level="d" * 500), None, 400, "invalid"),
    ("negative-time-limit", "post", "/api/v1/tasks/", _task(time_limit_s=-5), None, 400, "invalid"),
    (
        "unknown-embodiment",
        "post",
        "/api/v1/tasks/",
        _task(allowed_embodiments=["nope"]),
        None,
        400,
        "invalid",
    ),
    (
        "bad-criteria",
        "post",
        "/api/v1/tasks/",
        _task(criteria=PICK_CRITERIA | {"checks": [{"id": "x", "type": "eval", "code": "1"}]}),
        None,
        400,
        "invalid",
    ),
    (
        "bad-embodiment-spec",
        "post",
        "/api/v1/embodiments/",
        {"team": "{team}", "name": "bad", "spec": ARM_SPEC | {"control_hz": -1}},
        None,
        400,
        "invalid",
    ),
    (
        "unknown-team",
        "post",
        "/api/v1/conditions/",
        _condition(team="no-such-team"),
        None,
        400,
        "invalid",
    ),
    (
        "oversized-body",
        "post",
        "/api/v1/conditions/",
        b'{"description": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        None,
        413,
        "payload_too_large",
    ),
    (
        "form-encoded",
        "post",
        "/api/v1/conditions/",
        b"factor=lighting",
        "text/plain",
        415,
        "unsupported_media_type",
    ),
    ("bad-uuid-in-path", "get", "/api/v1/robots/not-a-uuid/", None, None, 404, "not_found"),
    (
        "bad-uuid-key-revoke",
        "post",
        "/api/v1/robots/{robot}/keys/zzzz/revoke",
        None,
        None,
        404,
        "not_found",
    ),
    ("unknown-endpoint", "get", "/api/v1/teleportation/", None, None, 404, "not_found"),
    ("put-not-allowed", "put", "/api/v1/conditions/", {}, None, 405, "method_not_allowed"),
    ("bad-limit", "get", "/api/v1/tasks/?limit=-1", None, None, 400, "invalid"),
    (
        "huge-limit",
        "get",
        "/api/v1/teams/?limit=235895600468948086334838242541568",
        None,
        None,
        400,
        "invalid",
    ),
    (
        "huge-offset",
        "get",
        "/api/v1/operators/?offset=99999999999999999999",
        None,
        None,
        400,
        "invalid",
    ),
    # str.isdigit() takes superscripts, which int() then refuses (a 500 once); int() takes
    # other scripts' digits. Only ASCII digits are numbers here.
    ("superscript-limit", "get", "/api/v1/tasks/?limit=%C2%B2", None, None, 400, "invalid"),
    ("superscript-offset", "get", "/api/v1/tasks/?offset=%C2%B2", None, None, 400, "invalid"),
    ("arabic-indic-limit", "get", "/api/v1/tasks/?limit=%D9%A3", None, None, 400, "invalid"),
    ("unknown-filter", "get", "/api/v1/tasks/?colour=red", None, None, 400, "unknown_field"),
    ("bad-idempotency-key", "post", "/api/v1/conditions/", _condition(), None, 400, "invalid"),
]


def _fill(value, world):
    text = json.dumps(value)
    text = text.replace("{team}", world.a.team.slug).replace("{emb}", world.a.embodiment.name)
    return text.encode()


def _counts():
    return [
        m.objects.count() for m in (AuditEvent, Condition, Embodiment, Robot, Task, TaskVersion)
    ]


@pytest.mark.parametrize(
    "method,path,body,content_type,status,code",
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_bad_input_is_refused_with_its_code_and_nothing_is_stored(
    api, world, method, path, body, content_type, status, code, request
):
    client = api(world.a.admin)
    path = path.replace("{robot}", str(world.a.robot.pk))
    if body is not None and not isinstance(body, bytes):
        body = _fill(body, world)
    headers = {}
    if request.node.callspec.id == "bad-idempotency-key":
        headers["HTTP_IDEMPOTENCY_KEY"] = "has spaces in it"
    before = _counts()
    response = client.generic(
        method.upper(),
        path,
        data=body or b"",
        content_type=content_type or "application/json",
        **headers,
    )
    assert response.status_code == status, response.content[:500]
    payload = response.json()
    assert payload["error"] == code, payload
    assert payload["detail"]  # says what was wrong
    assert _counts() == before


def test_table_has_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_server_keeps_serving_after_bad_input(api, world):
    client = api(world.a.admin)
    client.generic(
        "POST", "/api/v1/conditions/", data=b"[" * 200_000, content_type="application/json"
    )
    assert client.get("/api/v1/whoami").status_code == 200
