"""The OpenAPI schema's one addition to drf-spectacular: every operation documents its error
answers, with the body the one exception handler (core.api.exceptions) gives them all.

Which errors an operation documents follows from the view, in one place: every operation
may answer 400 (bad input or query, malformed JSON, a NUL byte in the URL) and 503 (the
database is away); authenticated views 401 and 403; throttled ones 429; a path naming an
object 404; writes 409, 413 and 415; POSTs taking `Idempotency-Key` 422 (and they document
that header). A view adds its own with `documented_errors = {status: description}` (the tus
views: 410, 411, 412, 460...).

An output serializer with `closed_shape = True` promises no field beyond its own
(`additionalProperties: false`): the blinded shapes, which a client tells from the full ones
that way.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from core.api.idempotency import HEADER as IDEMPOTENCY_HEADER

_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
_BODY_WRITES = {"POST", "PUT", "PATCH"}

ERRORS = {
    400: "Bad input: `invalid` (with `fields`), `unknown_field`, `parse_error` (malformed or "
    "over-nested JSON, NaN), `nul_byte` (a NUL in the URL).",
    401: "`not_authenticated` (no credentials) or `authentication_failed` (a wrong, revoked "
    "or expired API key).",
    403: "`permission_denied`: the caller may see the object but not do this.",
    404: "`not_found`: no such object, or one the caller may not see.",
    409: "A state conflict: `conflict`, `task_version_locked`, `still_referenced`, "
    "`idempotency_key_in_flight` (retry after `Retry-After` seconds)...",
    413: "`payload_too_large`: a JSON body over the limit (1 MiB by default).",
    415: "`unsupported_media_type`: send `application/json`.",
    422: "`idempotency_key_reused`: the same `Idempotency-Key` with a different request.",
    429: "`throttled`: over the caller's rate; wait `Retry-After` seconds.",
    503: "`database_unavailable`: retry after `Retry-After` seconds.",
}

_RETRY_AFTER = {
    "Retry-After": {
        "schema": {"type": "integer"},
        "description": "Seconds to wait before retrying.",
    }
}
_RETRY_AFTER_STATUSES = {409, 429, 503}


class ErrorOut(serializers.Serializer):
    """The body of every error answer."""

    error = serializers.CharField(help_text="A stable machine-readable code, e.g. `not_found`.")
    detail = serializers.CharField(help_text="A message for people.")
    fields = serializers.DictField(
        child=serializers.JSONField(),
        help_text="Per input field, its messages (nested as the input is); empty when the "
        "error concerns no field.",
    )


def _is_idempotent(view, method: str) -> bool:
    action = getattr(view, "action", None) or method.lower()
    handler = getattr(view, action, None)
    return getattr(handler, "idempotent", False)


class ErrorDocumentingAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, plus the error answers of every operation."""

    def _error_statuses(self) -> dict[int, str]:
        view, method = self.view, self.method
        statuses = [400, 503]
        if view.authentication_classes:
            statuses += [401, 403]
        elif not all(issubclass(p, AllowAny) for p in view.permission_classes):
            statuses.append(403)
        if view.throttle_classes:
            statuses.append(429)
        if "{" in self.path:
            statuses.append(404)
        if method in _WRITES:
            statuses.append(409)
        if method in _BODY_WRITES:
            statuses += [413, 415]
        if method == "POST" and _is_idempotent(view, method):
            statuses += [409, 422]
        documented = {status: ERRORS[status] for status in statuses}
        return documented | dict(getattr(view, "documented_errors", {}))

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        body = {"application/json": {"schema": self.resolve_serializer(ErrorOut, direction).ref}}
        for status, description in sorted(self._error_statuses().items()):
            answer = {"description": description, "content": body}
            if status in _RETRY_AFTER_STATUSES:
                answer["headers"] = _RETRY_AFTER
            responses.setdefault(str(status), answer)
        return responses

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and getattr(serializer, "closed_shape", False):
            schema["additionalProperties"] = False
        return schema

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST" and _is_idempotent(self.view, self.method):
            parameters.append(
                OpenApiParameter(
                    IDEMPOTENCY_HEADER,
                    str,
                    OpenApiParameter.HEADER,
                    description="1-255 printable ASCII characters: a retry with the same key "
                    "and body answers the first answer again, with no second effect.",
                )
            )
        return parameters


def _blank_branch(schema) -> bool:
    return schema == {"type": "string", "maxLength": 0}


def _make_blank_strings_exclusive(node) -> None:
    if isinstance(node, dict):
        branches = node.get("oneOf")
        if isinstance(branches, list) and len(branches) == 2 and _blank_branch(branches[1]):
            value = branches[0]
            if value.get("type") == "string" and value.get("minLength", 0) < 1:
                value["minLength"] = 1
        for child in node.values():
            _make_blank_strings_exclusive(child)
    elif isinstance(node, list):
        for child in node:
            _make_blank_strings_exclusive(child)


def exclusive_blank_strings(result, generator, request, public):
    """A postprocessing hook. drf-spectacular documents a string that may be blank (a URL
    field with `blank=True`) as `oneOf: [{the string}, {maxLength: 0}]`; `""` then matches
    both branches, which `oneOf` forbids. The first branch gets `minLength: 1`."""
    _make_blank_strings_exclusive(result.get("components", {}))
    return result
