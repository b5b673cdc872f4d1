"""`Idempotency-Key` support for POST endpoints that a robot may retry.

Same key, same body: the stored answer is replayed (`Idempotent-Replayed: true`). Same key,
different body: 422. Same key while the first request runs: 409 with `Retry-After`. Keys are
scoped to the caller and expire (`IDEMPOTENCY_KEY_TTL_HOURS`). Answers of 5xx, and
exceptions, release the key so the retry runs the request again. When even the release
cannot be written (the database went away mid-request) the claim is only a lease
(`IDEMPOTENCY_IN_FLIGHT_LEASE_S`, 30 s): the first retry after it runs the request.
"""

import functools
import hashlib
import json
import logging
import re

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from rest_framework import exceptions
from rest_framework.response import Response

from core.access import principal_key
from core.errors import DomainError
from core.models import IdempotencyRecord
from core.services import idempotency

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces


def fingerprint(method: str, path: str, data) -> str:
    """What makes two requests 'the same': method, path and the parsed body."""
    body = json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder, default=str)
    return hashlib.sha256(f"{method}\n{path}\n{body}".encode()).hexdigest()


def idempotent(handler):
    """Decorate a viewset/APIView method handling POST."""

    @functools.wraps(handler)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(self, request, *args, **kwargs)
        if not _VALID_KEY.match(key):
            raise exceptions.ValidationError(
                {HEADER: ["Must be 1 to 255 printable ASCII characters without spaces."]}
            )
        record = idempotency.begin_idempotent_request(
            principal=principal_key(request.user),
            key=key,
            fingerprint=fingerprint(request.method, request.path, request.data),
            method=request.method,
            path=request.path,
        )
        if record.state == IdempotencyRecord.State.COMPLETED:
            return Response(
                record.response_body,
                status=record.response_status,
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            response = handler(self, request, *args, **kwargs)
        except (exceptions.APIException, DomainError) as exc:
            status = exc.status_code if isinstance(exc, exceptions.APIException) else exc.status
            if status < 500:
                # A deterministic refusal is an answer too: store it so a retry sees the same.
                response = self.handle_exception(exc)
                idempotency.complete_idempotent_request(
                    record=record, status=response.status_code, body=response.data
                )
                return response
            _release(record)
            raise
        except Exception:
            _release(record)
            raise
        if response.status_code >= 500:
            _release(record)
        else:
            idempotency.complete_idempotent_request(
                record=record, status=response.status_code, body=response.data
            )
        return response

    wrapper.idempotent = True  # the OpenAPI schema documents the header (core.api.schema)
    return wrapper


def _release(record: IdempotencyRecord) -> None:
    """Release the key if the database lets us; if it does not, the error being handled is
    the one to answer with (a 503 when the database is away) and the lease frees the key."""
    try:
        idempotency.release_idempotent_request(record=record)
    except DatabaseError:
        log.warning("could not release Idempotency-Key %r; its lease will", record.key)
