"""Pagination with bounds: an absurd `limit` or `offset` is a 400, not a database overflow."""

import re

from rest_framework import exceptions
from rest_framework.pagination import LimitOffsetPagination

MAX_OFFSET = 10**9
# ASCII digits only: str.isdigit() also takes superscripts ("²", which int() refuses) and
# int() takes other scripts' digits ("٣").
_ASCII_NUMBER = re.compile(r"[0-9]{1,12}")


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000

    def _bounded(self, request, name: str, default: int, maximum: int) -> int:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            return default
        if not _ASCII_NUMBER.fullmatch(raw) or int(raw) > maximum:
            raise exceptions.ValidationError(
                {name: [f"Must be an integer between 0 and {maximum}."]}
            )
        return int(raw)

    def get_limit(self, request):
        limit = self._bounded(request, self.limit_query_param, self.default_limit, self.max_limit)
        return limit or self.default_limit

    def get_offset(self, request):
        return self._bounded(request, self.offset_query_param, 0, MAX_OFFSET)
