"""`parse_criteria`: untrusted input to a validated `Criteria`, every problem reported at once.

Validation has three layers, and `parse_criteria` reports every problem it finds with a JSON
pointer path: (1) the input must be a bounded JSON value (depth, size, string lengths, finite
numbers, integers within +-2**53) so that nothing later can recurse or format without limit;
(2) the JSON Schema (``schemas/criteria-v1.schema.json`` in the ``proving_ground`` package),
with ``additionalProperties: false`` everywhere; (3) cross-field rules the schema cannot say:
unique stage ids, failure codes and check ids, references to existing stages and checks, and
stage weights summing to 1.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

import jsonschema

from proving_ground.criteria.automatic_checks import CHECK_CLASSES
from proving_ground.criteria.spec import (
    Criteria,
    CriteriaError,
    CriteriaProblem,
    FailureCode,
    Stage,
    SuccessCriterion,
    json_pointer,
    short_repr,
)

CRITERIA_SCHEMA: dict[str, Any] = json.loads(
    resources.files("proving_ground").joinpath("schemas/criteria-v1.schema.json").read_text("utf-8")
)
_VALIDATOR = jsonschema.Draft202012Validator(CRITERIA_SCHEMA)

WEIGHT_SUM_TOLERANCE = 1e-6

# Input bounds checked before the schema runs. A valid spec is 5 levels deep and at most a few
# thousand values (64 checks x 64 signals), its longest string 2000 characters; the bounds sit
# well above that and well below anything that could exhaust the stack or memory.
_MAX_DEPTH = 32
_MAX_VALUES = 10_000
_MAX_STRING_CHARS = 10_000
# JSON numbers are doubles in most readers; larger integers would not survive a round trip,
# and Python refuses to format integers past 4300 digits (which would crash error messages).
_MAX_SAFE_INTEGER = 2**53
_MAX_REPORTED_PROBLEMS = 50


def parse_criteria(spec: object) -> Criteria:
    """Validate a JSON-like spec and return it as `Criteria`.

    Raises `CriteriaError` listing every problem found (at most 50, then a count), and never
    any other exception, whatever the input.

    A valid spec of plain JSON values is parsed once per process and the (immutable) result
    reused: schema validation costs about 0.9 ms, and every trial report and check verdict
    parses its task version's criteria again.
    """
    canonical = _canonical_json(spec)
    if canonical is not None:
        return _parse_canonical(canonical)
    return _parse(spec)


def _canonical_json(spec: object) -> str | None:
    """The spec as sorted JSON text when that text reads back to an equal value of the same
    JSON types (no tuples, NaN, non-string keys or other Python values), else None."""
    try:
        text = json.dumps(spec, sort_keys=True, allow_nan=False)
        return text if json.loads(text) == spec else None
    except (TypeError, ValueError, RecursionError):
        return None


@functools.lru_cache(maxsize=256)
def _parse_canonical(text: str) -> Criteria:
    return _parse(json.loads(text))  # a CriteriaError is raised, never cached


def _parse(spec: object) -> Criteria:
    unsafe, nonfinite = _json_value_problems(spec)
    if unsafe:
        raise CriteriaError(unsafe + nonfinite)
    problems = nonfinite + _schema_problems(spec) + _cross_field_problems(spec)
    if problems:
        problems = sorted(set(problems), key=lambda p: (p.path, p.message))
        if len(problems) > _MAX_REPORTED_PROBLEMS:
            extra = len(problems) - _MAX_REPORTED_PROBLEMS
            problems = problems[:_MAX_REPORTED_PROBLEMS]
            problems.append(CriteriaProblem("", f"and {extra} more problems"))
        raise CriteriaError(problems)
    assert isinstance(spec, dict)  # guaranteed by the schema
    success = spec["success"]
    return Criteria(
        success=SuccessCriterion(description=success["description"], check=success.get("check")),
        stages=tuple(
            Stage(id=s["id"], description=s["description"], weight=float(s["weight"]))
            for s in spec.get("stages", ())
        ),
        failure_codes=tuple(
            FailureCode(code=f["code"], description=f["description"])
            for f in spec.get("failure_codes", ())
        ),
        checks=tuple(CHECK_CLASSES[c["type"]].from_dict(c) for c in spec.get("checks", ())),
    )


def _json_value_problems(
    spec: object,
) -> tuple[list[CriteriaProblem], list[CriteriaProblem]]:
    """(unsafe, nonfinite): problems that make a value unsafe to hand to the schema validator
    (not JSON, too deep, too many values, strings too long, integers too large to format), and
    non-finite numbers, which are safe to validate but slip through the schema's bounds (every
    comparison with NaN is false).

    Iterative, so hostile nesting cannot exhaust the stack."""
    problems: list[CriteriaProblem] = []
    nonfinite: list[CriteriaProblem] = []
    stack: list[tuple[object, tuple[str | int, ...]]] = [(spec, ())]
    queued = 1
    while stack:
        value, parts = stack.pop()
        # Counted before a container's items are queued, so a million-item list costs nothing.
        queued += len(value) if isinstance(value, list | dict) else 0
        if queued > _MAX_VALUES:
            return [CriteriaProblem("", f"the spec holds more than {_MAX_VALUES} values")], []
        if len(parts) > _MAX_DEPTH:
            too_deep = CriteriaProblem(
                json_pointer(parts[:_MAX_DEPTH]), f"nested deeper than {_MAX_DEPTH} levels"
            )
            return [too_deep], []
        path = json_pointer(parts)
        if value is None or isinstance(value, bool):
            continue
        if isinstance(value, int):
            if abs(value) > _MAX_SAFE_INTEGER:
                problems.append(
                    CriteriaProblem(path, "integer too large; integers must lie within +-2**53")
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                nonfinite.append(CriteriaProblem(path, f"{value} is not a finite number"))
        elif isinstance(value, str):
            if len(value) > _MAX_STRING_CHARS:
                problems.append(
                    CriteriaProblem(path, f"string of {len(value)} characters is far too long")
                )
        elif isinstance(value, list):
            stack.extend((item, (*parts, i)) for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(
                        CriteriaProblem(path, f"object key {short_repr(key)} is not a string")
                    )
                elif len(key) > _MAX_STRING_CHARS:
                    problems.append(CriteriaProblem(path, "object key is far too long"))
                else:
                    stack.append((item, (*parts, key)))
        else:
            problems.append(CriteriaProblem(path, f"{type(value).__name__} is not a JSON value"))
    return problems, nonfinite


def _schema_problems(spec: object) -> list[CriteriaProblem]:
    problems: list[CriteriaProblem] = []
    for error in _VALIDATOR.iter_errors(spec):
        parts = list(error.absolute_path)
        if isinstance(error.instance, float) and not math.isfinite(error.instance):
            continue  # already reported by _json_value_problems
        problems.extend(_explain_schema_error(error, parts))
    return problems


def _explain_schema_error(
    error: jsonschema.ValidationError, parts: list[str | int]
) -> list[CriteriaProblem]:
    """Reword a jsonschema error as problems that say what is wrong and what is allowed."""
    instance, expected, schema = error.instance, error.validator_value, error.schema
    path = json_pointer(parts)
    match error.validator:
        case "required":
            return [
                CriteriaProblem(json_pointer([*parts, key]), f"'{key}' is required")
                for key in expected
                if key not in instance
            ]
        case "additionalProperties":
            allowed = ", ".join(sorted(schema.get("properties", {})))
            return [
                CriteriaProblem(
                    json_pointer([*parts, key]),
                    f"unknown key {short_repr(key)}; allowed: {allowed}",
                )
                for key in instance
                if key not in schema.get("properties", {})
            ]
        case "type":
            message = f"expected {expected}, got {_json_type_name(instance)}"
        case "enum":
            allowed = ", ".join(repr(option) for option in expected)
            message = f"{short_repr(instance)} is not allowed; use one of: {allowed}"
        case "const":
            message = f"must be {expected!r}, got {short_repr(instance)}"
        case "pattern":
            message = f"{short_repr(instance)} is not {schema.get('description', expected)}"
        case "minLength" | "maxLength":
            bound = "at least" if error.validator == "minLength" else "at most"
            message = f"has {len(instance)} characters; needs {bound} {expected}"
        case "minItems" | "maxItems":
            bound = "at least" if error.validator == "minItems" else "at most"
            message = f"has {len(instance)} items; {bound} {expected} allowed"
        case "minimum":
            message = f"{instance} is below the minimum {expected}"
        case "maximum":
            message = f"{instance} is above the maximum {expected}"
        case "exclusiveMinimum":
            message = f"{instance} must be greater than {expected}"
        case "uniqueItems":
            message = "items must be unique; some appear more than once"
        case _:
            message = error.message if len(error.message) <= 200 else error.message[:197] + "..."
    return [CriteriaProblem(path, message)]


def _json_type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _cross_field_problems(spec: object) -> list[CriteriaProblem]:
    """Rules the JSON Schema cannot express. Reads the raw spec defensively, so that these are
    reported alongside schema problems; malformed parts are skipped (the schema reports them)."""
    if not isinstance(spec, dict):
        return []
    problems: list[CriteriaProblem] = []
    stage_ids = _unique_slugs(spec, "stages", "id", "stage id", problems)
    _unique_slugs(spec, "failure_codes", "code", "failure code", problems)
    check_ids = _unique_slugs(spec, "checks", "id", "check id", problems)

    checks = spec.get("checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if not (isinstance(check, dict) and check.get("type") == "stage_by_time"):
            continue
        stage = check.get("stage")
        if isinstance(stage, str) and stage not in stage_ids:
            known = ", ".join(stage_ids) if stage_ids else "none: the spec has no stages"
            problems.append(
                CriteriaProblem(
                    json_pointer(["checks", i, "stage"]),
                    f"unknown stage {short_repr(stage)}; stages: {known}",
                )
            )

    success = spec.get("success")
    success_check = success.get("check") if isinstance(success, dict) else None
    if isinstance(success_check, str) and success_check not in check_ids:
        known = ", ".join(check_ids) if check_ids else "none: the spec has no checks"
        problems.append(
            CriteriaProblem(
                "/success/check", f"unknown check {short_repr(success_check)}; checks: {known}"
            )
        )

    stages = spec.get("stages")
    if isinstance(stages, list) and stages:
        weights = [s.get("weight") if isinstance(s, dict) else None for s in stages]
        usable = all(
            isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in weights
        )
        if usable:
            total = math.fsum(weights)
            if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
                problems.append(
                    CriteriaProblem(
                        "/stages",
                        f"stage weights sum to {total:.9g}; they must sum to 1 "
                        f"(within {WEIGHT_SUM_TOLERANCE:g})",
                    )
                )
    return problems


def _unique_slugs(
    spec: dict[str, Any], list_key: str, item_key: str, noun: str, problems: list[CriteriaProblem]
) -> list[str]:
    """The string values of `item_key` across ``spec[list_key]``, in order and without repeats;
    each repeat is appended to `problems`."""
    items = spec.get(list_key)
    first_at: dict[str, int] = {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        value = item.get(item_key) if isinstance(item, dict) else None
        if not isinstance(value, str):
            continue
        if value in first_at:
            problems.append(
                CriteriaProblem(
                    json_pointer([list_key, i, item_key]),
                    f"duplicate {noun} {short_repr(value)} (first at "
                    f"{json_pointer([list_key, first_at[value], item_key])})",
                )
            )
        else:
            first_at[value] = i
    return list(first_at)
