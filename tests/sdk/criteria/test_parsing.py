"""proving_ground.criteria.parsing: the pg-criteria/1 schema, valid specs, and every way a spec
is refused (with the path and the reason). Runs without Django
(`pytest -p no:django tests/sdk/criteria`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground.criteria.automatic_checks import (
    CameraNotFrozenCheck,
    ControlRateCheck,
    FinalValueCheck,
    FiniteCheck,
    StageByTimeCheck,
)
from proving_ground.criteria.parsing import CRITERIA_SCHEMA, parse_criteria
from proving_ground.criteria.spec import (
    Criteria,
    CriteriaError,
    SuccessCriterion,
    canonical_json,
)
from tests.sdk.criteria.example_specs import (
    PICK_AND_PLACE,
    check_spec,
    damaged_specs,
    finite_json_values,
    json_values,
    spec,
    valid_specs,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def spec_where(path: str, value: Any) -> dict[str, Any]:
    """A fresh copy of the valid example with the value at a JSON-pointer-like path replaced."""
    out = spec()
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    target: Any = out
    for part in parents:
        target = target[part]
    target[last] = value
    return out


def problems_of(bad: object) -> list[tuple[str, str]]:
    with pytest.raises(CriteriaError) as caught:
        parse_criteria(bad)
    return [(problem.path, problem.message) for problem in caught.value.problems]


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(CRITERIA_SCHEMA)


def test_every_object_in_the_schema_refuses_unknown_keys():
    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            # The check dispatcher (and its `if` conditions) only selects a per-type schema,
            # and each of those is closed.
            dispatcher = where == "/$defs/check" or where.startswith("/$defs/check/")
            if "properties" in node and not dispatcher:
                assert node.get("additionalProperties") is False, where
            for key, child in node.items():
                walk(child, f"{where}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{where}/{i}")

    walk(CRITERIA_SCHEMA, "")


def test_a_full_spec_parses_into_typed_immutable_parts():
    criteria = parse_criteria(spec())

    assert criteria.success == SuccessCriterion("The cube rests inside the bin.", "cube-lifted")
    assert [stage.id for stage in criteria.stages] == ["grasp", "lift", "place"]
    assert [code.code for code in criteria.failure_codes] == ["dropped", "missed_grasp"]
    assert [type(check) for check in criteria.checks] == [
        FinalValueCheck,
        StageByTimeCheck,
        ControlRateCheck,
        FiniteCheck,
        CameraNotFrozenCheck,
    ]
    assert criteria.checks[0].index == 2
    assert criteria.checks[1].by_s == 10.0
    assert criteria.checks[3].signals == ("action", "observations/qpos")
    with pytest.raises(AttributeError):
        criteria.stages[0].weight = 1.0  # type: ignore[misc]


def test_a_minimal_spec_has_only_a_schema_and_a_success_description():
    criteria = parse_criteria({"schema": "pg-criteria/1", "success": {"description": "done"}})

    assert criteria == Criteria(success=SuccessCriterion("done"))
    assert criteria.to_dict() == {
        "schema": "pg-criteria/1",
        "success": {"description": "done"},
        "stages": [],
        "failure_codes": [],
        "checks": [],
    }


def test_weights_summing_to_one_within_a_millionth_are_accepted():
    stages = [
        {"id": "a", "description": "a", "weight": 1 / 3},
        {"id": "b", "description": "b", "weight": 1 / 3},
        {"id": "c", "description": "c", "weight": 0.3333335},
    ]
    unreferenced = spec(stages=stages, checks=[], success={"description": "d"})

    assert len(parse_criteria(unreferenced).stages) == 3


def test_normalized_spec_writes_numbers_as_floats_and_leaves_out_unset_options():
    criteria = parse_criteria(spec())

    normalized = criteria.to_dict()

    assert normalized["checks"][1] == {
        "id": "grasp-in-time",
        "type": "stage_by_time",
        "stage": "grasp",
        "by_s": 10.0,
    }
    assert "window_s" not in normalized["checks"][0]
    assert parse_criteria(normalized) == criteria


def test_the_complete_example_in_the_user_guide_is_valid():
    guide = (REPO_ROOT / "docs" / "criteria.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", guide, flags=re.DOTALL)
    assert blocks, "docs/criteria.md has no ```json example"
    for block in blocks:
        parse_criteria(json.loads(block))


INVALID_SPECS = [
    pytest.param([], "", "expected object, got array", id="array-instead-of-object"),
    pytest.param(None, "", "expected object, got null", id="null-instead-of-object"),
    pytest.param("criteria", "", "expected object, got string", id="string-instead-of-object"),
    pytest.param(spec(extra=1), "/extra", "unknown key 'extra'", id="unknown-top-level-key"),
    pytest.param(
        spec_where("/success/auto", True), "/success/auto", "unknown key", id="unknown-success-key"
    ),
    pytest.param(
        spec_where("/stages/0/colour", "red"),
        "/stages/0/colour",
        "unknown key",
        id="unknown-stage-key",
    ),
    pytest.param(
        spec_where("/checks/0/stage", "grasp"),
        "/checks/0/stage",
        "unknown key 'stage'; allowed: description, id, index, op, signal, threshold, type, "
        "window_s",
        id="key-of-another-check-type",
    ),
    pytest.param(
        spec_where("/failure_codes/0/severity", 3),
        "/failure_codes/0/severity",
        "unknown key",
        id="unknown-failure-code-key",
    ),
    pytest.param(
        spec_where("/schema", "pg-criteria/2"),
        "/schema",
        "must be 'pg-criteria/1', got 'pg-criteria/2'",
        id="unsupported-schema-version",
    ),
    pytest.param(
        {"schema": "pg-criteria/1"}, "/success", "'success' is required", id="missing-success"
    ),
    pytest.param(
        spec_where("/checks/1/type", "eval"),
        "/checks/1/type",
        "'eval' is not allowed; use one of: 'final_value', 'stage_by_time'",
        id="unknown-check-type",
    ),
    pytest.param(
        spec_where("/checks/0/op", "=="),
        "/checks/0/op",
        "'==' is not allowed; use one of: '>', '>=', '<', '<='",
        id="bad-operator",
    ),
    pytest.param(
        check_spec(id="x", type="final_value", signal="action", op=">"),
        "/checks/0/threshold",
        "'threshold' is required",
        id="missing-threshold",
    ),
    pytest.param(
        spec_where("/checks/0/threshold", True),
        "/checks/0/threshold",
        "expected number, got boolean",
        id="boolean-threshold",
    ),
    pytest.param(
        spec_where("/checks/0/threshold", float("nan")),
        "/checks/0/threshold",
        "nan is not a finite number",
        id="nan-threshold",
    ),
    pytest.param(
        spec_where("/checks/0/threshold", float("inf")),
        "/checks/0/threshold",
        "inf is not a finite number",
        id="infinite-threshold",
    ),
    pytest.param(
        spec_where("/checks/0/threshold", 10**400),
        "/checks/0/threshold",
        "integer too large",
        id="huge-integer-threshold",
    ),
    pytest.param(
        spec_where("/checks/0/index", 1.5),
        "/checks/0/index",
        "expected integer",
        id="fractional-index",
    ),
    pytest.param(
        spec_where("/checks/0/index", -1),
        "/checks/0/index",
        "below the minimum 0",
        id="negative-index",
    ),
    pytest.param(
        spec_where("/checks/0/window_s", 0),
        "/checks/0/window_s",
        "must be greater than 0",
        id="zero-window",
    ),
    pytest.param(
        spec_where("/checks/0/signal", "observations/../qpos"),
        "/checks/0/signal",
        "is not a signal name",
        id="signal-name-with-dots",
    ),
    pytest.param(
        spec_where("/checks/1/by_s", -0.5),
        "/checks/1/by_s",
        "-0.5 is below the minimum 0",
        id="negative-time",
    ),
    pytest.param(
        spec_where("/checks/2/min_hz", 0),
        "/checks/2/min_hz",
        "must be greater than 0",
        id="zero-rate",
    ),
    pytest.param(
        spec_where("/checks/3/signals", []),
        "/checks/3/signals",
        "has 0 items; at least 1 allowed",
        id="empty-signal-list",
    ),
    pytest.param(
        spec_where("/checks/3/signals", ["action", "action"]),
        "/checks/3/signals",
        "items must be unique",
        id="repeated-signal",
    ),
    pytest.param(
        spec_where("/checks/4/max_frozen_s", -1),
        "/checks/4/max_frozen_s",
        "below the minimum 0",
        id="negative-frozen-limit",
    ),
    pytest.param(
        spec_where("/stages/0/id", "Grasp"),
        "/stages/0/id",
        "'Grasp' is not a slug (a lowercase letter",
        id="stage-id-not-a-slug",
    ),
    pytest.param(
        spec_where("/stages/0/weight", -0.25),
        "/stages/0/weight",
        "below the minimum 0",
        id="negative-weight",
    ),
    pytest.param(
        spec_where("/stages/0/description", "x" * 2001),
        "/stages/0/description",
        "has 2001 characters; needs at most 2000",
        id="description-too-long",
    ),
    pytest.param(
        spec_where("/stages/2/weight", 0.4),
        "/stages",
        "stage weights sum to 0.9; they must sum to 1 (within 1e-06)",
        id="weights-not-summing-to-one",
    ),
    pytest.param(
        spec_where("/stages/1/id", "grasp"),
        "/stages/1/id",
        "duplicate stage id 'grasp' (first at /stages/0/id)",
        id="duplicate-stage-id",
    ),
    pytest.param(
        spec_where("/failure_codes/1/code", "dropped"),
        "/failure_codes/1/code",
        "duplicate failure code 'dropped'",
        id="duplicate-failure-code",
    ),
    pytest.param(
        spec(checks=[PICK_AND_PLACE["checks"][2]] * 2),
        "/checks/1/id",
        "duplicate check id 'rate' (first at /checks/0/id)",
        id="duplicate-check-id",
    ),
    pytest.param(
        spec_where("/checks/1/stage", "stack"),
        "/checks/1/stage",
        "unknown stage 'stack'; stages: grasp, lift, place",
        id="stage-reference-to-unknown-stage",
    ),
    pytest.param(
        spec_where("/success/check", "cube-placed"),
        "/success/check",
        "unknown check 'cube-placed'; checks: cube-lifted, grasp-in-time",
        id="success-check-that-does-not-exist",
    ),
    pytest.param(
        spec(checks=[{"id": f"rate-{i}", "type": "control_rate", "min_hz": 1} for i in range(65)]),
        "/checks",
        "has 65 items; at most 64 allowed",
        id="too-many-checks",
    ),
    pytest.param(
        spec(stages=[{"id": f"s{i}", "description": "s", "weight": 1 / 65} for i in range(65)]),
        "/stages",
        "has 65 items; at most 64 allowed",
        id="too-many-stages",
    ),
    pytest.param(
        spec(checks=[0] * 1_000_000), "", "holds more than 10000 values", id="too-many-values"
    ),
    pytest.param({(1, 2): "x"}, "", "object key (1, 2) is not a string", id="non-string-key"),
    pytest.param({"schema": {1, 2}}, "/schema", "set is not a JSON value", id="non-json-value"),
    pytest.param(
        spec(success={"description": "x" * 50_000}),
        "/success/description",
        "string of 50000 characters is far too long",
        id="huge-string",
    ),
]


@pytest.mark.parametrize(("bad_spec", "path", "message"), INVALID_SPECS)
def test_invalid_spec_is_refused_with_the_path_and_reason(bad_spec, path, message):
    problems = problems_of(bad_spec)

    assert any(p == path and message in m for p, m in problems), problems


def test_stage_reference_to_unknown_stage_is_refused():
    assert ("/checks/1/stage", "unknown stage 'stack'; stages: grasp, lift, place") in problems_of(
        spec_where("/checks/1/stage", "stack")
    )


def test_stage_reference_in_a_spec_without_stages_says_there_are_none():
    bad = spec(stages=[], checks=[PICK_AND_PLACE["checks"][1]], success={"description": "d"})

    assert problems_of(bad) == [
        ("/checks/0/stage", "unknown stage 'grasp'; stages: none: the spec has no stages")
    ]


def test_every_problem_is_reported_at_once():
    bad = spec(extra=1)
    bad["checks"][0]["op"] = "=="
    bad["checks"][0]["threshold"] = float("nan")
    bad["checks"][1]["stage"] = "stack"
    bad["stages"][2]["weight"] = 0.4

    assert [path for path, _ in problems_of(bad)] == [
        "/checks/0/op",
        "/checks/0/threshold",
        "/checks/1/stage",
        "/extra",
        "/stages",
    ]


def test_nesting_deeper_than_the_limit_is_refused_without_recursing():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]

    ((path, message),) = problems_of({"schema": deep})

    assert message == "nested deeper than 32 levels"
    assert path.startswith("/schema/0/0")


def test_a_criteria_error_is_a_value_error_that_names_its_problems():
    with pytest.raises(ValueError, match=r"/schema: must be 'pg-criteria/1'"):
        parse_criteria(spec(schema="pg-criteria/0"))


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, damaged_specs()))
def test_any_json_value_either_parses_or_raises_criteria_error(value):
    try:
        criteria = parse_criteria(value)
    except CriteriaError as exc:
        assert exc.problems
        assert all(p.path == "" or p.path.startswith("/") for p in exc.problems)
    else:
        assert isinstance(criteria, Criteria)


@settings(max_examples=150, deadline=None)
@given(valid_specs())
def test_valid_specs_round_trip_through_the_normalized_dict(raw):
    criteria = parse_criteria(raw)

    assert parse_criteria(criteria.to_dict()) == criteria
    assert canonical_json(parse_criteria(json.loads(canonical_json(criteria)))) == canonical_json(
        criteria
    )


def reverse_key_order(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reverse_key_order(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reverse_key_order(item) for item in value]
    return value


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=8), finite_json_values, max_size=8))
def test_canonical_json_does_not_depend_on_key_order(value):
    text = canonical_json(value)

    assert canonical_json(reverse_key_order(value)) == text
    assert json.loads(text) == value
    assert text.isascii()


def test_canonical_json_refuses_nan():
    with pytest.raises(CriteriaError, match="not serializable as JSON"):
        canonical_json({"threshold": float("nan")})
