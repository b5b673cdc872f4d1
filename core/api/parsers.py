"""A JSON parser that refuses what the database or the parser itself cannot take.

Reproduced on this machine (design.md, known traps): a NUL byte in a string reaches
PostgreSQL and raises a database error; 200 KB of `[` makes `json.loads` raise
RecursionError. Both would be 500s. Here they, and NaN/Infinity, oversized bodies and
absurd numbers, are 4xx answers that say what was wrong.
"""

import json
import math

from django.conf import settings
from rest_framework import exceptions, parsers

from core.api.exceptions import PayloadTooLarge

MAX_DEPTH = 32


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 parses as inf, which no database JSON column accepts
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def check_json_value(value, max_depth: int = MAX_DEPTH) -> None:
    """Walk a parsed JSON value iteratively; refuse nesting past `max_depth` and NUL bytes."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            raise exceptions.ParseError(f"JSON is nested deeper than {max_depth} levels.")
        if isinstance(item, str):
            if "\x00" in item:
                raise exceptions.ParseError("Strings must not contain NUL (\\u0000) characters.")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if "\x00" in key:
                    raise exceptions.ParseError("Keys must not contain NUL (\\u0000) characters.")
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)


class StrictJSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if stream is None:
            raise exceptions.ParseError("Empty request body.")
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(f"JSON bodies are limited to {limit} bytes.")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError("The body is not valid UTF-8.") from exc
        try:
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError as exc:
            raise exceptions.ParseError(f"JSON is nested deeper than {MAX_DEPTH} levels.") from exc
        except ValueError as exc:  # JSONDecodeError, NaN/Infinity, over-long integers
            raise exceptions.ParseError(f"Malformed JSON: {exc}") from exc
        check_json_value(data)
        return data
