"""Keyset (cursor) pagination for lists that grow without bound (episodes).

A page is "the `limit` rows after this position" in a fixed order, newest first: `created_at`
descending, ties broken by `id` descending. The position is the last row's key, carried in an
opaque `cursor`; the query seeks to it through an index on the filter columns followed by
(`created_at`, `id`), so page 10,000 costs what page 1 costs, and no page counts the rows
(LimitOffsetPagination's `COUNT(*)` and `OFFSET` both grow with the table).

Answers `{"next", "previous", "results"}`: `next` and `previous` are URLs carrying a cursor
(or null at either end). `?limit=` is 1 to 1000 (ASCII digits only); `?offset=` is refused
with a 400 that says to follow `next`. Rows inserted while a client pages are never repeated
or skipped behind its position.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from django.db.models import Q
from rest_framework import exceptions
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_FORWARD, _BACKWARD = "n", "p"


def encode_cursor(direction: str, created_at: datetime, pk: uuid.UUID) -> str:
    """The opaque cursor for a position: rows after it (`n`) or before it (`p`)."""
    raw = f"{direction}|{created_at.isoformat()}|{pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, datetime, uuid.UUID]:
    """Direction, created_at and id of a cursor. Raises ValidationError when it is not one
    this module made."""
    try:
        if len(cursor) > 200 or not cursor.isascii():
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        direction, created_at, pk = raw.split("|")
        position = datetime.fromisoformat(created_at)
        if direction not in (_FORWARD, _BACKWARD) or position.tzinfo is None:
            raise ValueError
        return direction, position, uuid.UUID(pk)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise exceptions.ValidationError(
            {"cursor": ["Not a cursor of this list; follow `next` or `previous` as given."]}
        ) from None


def _limit(request) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise exceptions.ValidationError({"limit": [f"An integer from 1 to {MAX_LIMIT}."]})
    return int(raw)


class NewestFirstKeysetPagination(BasePagination):
    """Keyset pages over (`created_at`, `id`), newest first. The model needs both fields, and
    its filtered lists an index ending in (`created_at`, `id`)."""

    cursor_query_param = "cursor"
    limit_query_param = "limit"

    def paginate_queryset(self, queryset, request, view=None):
        if request.query_params.get("offset") not in (None, ""):
            raise exceptions.ValidationError(
                {"offset": ["This list pages by cursor: follow the `next` URL of each page."]}
            )
        self.request = request
        self.limit = _limit(request)
        cursor = request.query_params.get(self.cursor_query_param)
        self.position = decode_cursor(cursor) if cursor else None
        if self.position is None or self.position[0] == _FORWARD:
            if self.position is not None:
                _, at, pk = self.position
                # The redundant `created_at <= at` bounds the index scan; the OR breaks ties.
                queryset = queryset.filter(
                    Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk), created_at__lte=at
                )
            rows = list(queryset.order_by("-created_at", "-pk")[: self.limit + 1])
            self.page = rows[: self.limit]
            self.has_next = len(rows) > self.limit
            self.has_previous = self.position is not None
        else:
            _, at, pk = self.position
            queryset = queryset.filter(
                Q(created_at__gt=at) | Q(created_at=at, pk__gt=pk), created_at__gte=at
            )
            rows = list(queryset.order_by("created_at", "pk")[: self.limit + 1])
            self.page = rows[: self.limit][::-1]
            self.has_previous = len(rows) > self.limit
            self.has_next = True  # the row at the position comes after this page
        return self.page

    def _link(self, direction: str, row) -> str:
        if row is None:  # an empty page: go back across the position it was asked from
            _, at, pk = self.position
        else:
            at, pk = row.created_at, row.pk
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, encode_cursor(direction, at, pk))

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        return self._link(_FORWARD, self.page[-1] if self.page else None)

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        return self._link(_BACKWARD, self.page[0] if self.page else None)

    def get_paginated_response(self, data):
        return Response(
            {"next": self.get_next_link(), "previous": self.get_previous_link(), "results": data}
        )

    def get_paginated_response_schema(self, schema):
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {"next": link, "previous": link, "results": schema},
        }

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Where the page starts: the cursor of a `next` or `previous` URL.",
                "schema": {"type": "string"},
            },
            {
                "name": self.limit_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
        ]
