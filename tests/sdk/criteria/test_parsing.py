"""Tests for proving_ground.criteria: the pg-criteria/1 spec, its validation, and the automatic
checks.

Runs without Django (`pytest -p no:django tests/core/test_criteria.py`)."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground.criteria import (
    CRITERIA_SCHEMA,
    CameraNotFrozenCheck,
    CheckResult,
    CheckStatus,
    ControlRateCheck,
    Criteria,
    CriteriaError,
    EpisodeSignals,
    FinalValueCheck,
    FiniteCheck,
    StageByTimeCheck,
    SuccessCriterion,
    canonical_json,
    evaluate_checks,
    parse_criteria,
    stage_score,
    success_from_checks,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

PICK_AND_PLACE: dict[str, Any] = {
    "schema": "pg-criteria/1",
    "success": {"description": "The cube rests inside the bin.", "check": "cube-lifted"},
    "stages": [
        {"id": "grasp", "description": "Gripper closed on the cube.", "weight": 0.25},
        {"id": "lift", "description": "Cube 5 cm above the table.", "weight": 0.25},
        {"id": "place", "description": "Cube inside the bin.", "weight": 0.5},
    ],
    "failure_codes": [
        {"code": "dropped", "description": "Cube fell during transport."},
        {"code": "missed_grasp", "description": "Gripper closed on nothing."},
    ],
    "checks": [
        {
            "id": "cube-lifted",
            "type": "final_value",
            "signal": "observations/qpos",
            "index": 2,
            "op": ">",
            "threshold": 0.05,
        },
        {"id": "grasp-in-time", "type": "stage_by_time", "stage": "grasp", "by_s": 10},
        {"id": "rate", "type": "control_rate", "min_hz": 45},
        {"id": "no-nan", "type": "finite", "signals": ["action", "observations/qpos"]},
        {
            "id": "wrist-live",
            "type": "camera_not_frozen",
            "camera": "cam_wrist",
            "max_frozen_s": 0.5,
        },
    ],
}


def spec(**top_level: Any) -> dict[str, Any]:
    """A fresh copy of the valid example, with top-level keys replaced."""
    out = copy.deepcopy(PICK_AND_PLACE)
    out.update(copy.deepcopy(top_level))
    return out


def spec_where(path: str, value: Any) -> dict[str, Any]:
    """A fresh copy of the valid example with the value at a JSON-pointer-like path replaced."""
    out = spec()
    *parents, last = [int(p) if p.isdigit() else p for p in path.strip("/").split("/")]
    target: Any = out
    for part in parents:
        target = target[part]
    target[last] = value
    return out


def check_spec(**fields: Any) -> dict[str, Any]:
    """A spec whose only check is the one given (and no success check)."""
    return spec(success={"description": "judged by the checks"}, checks=[fields])


def problems_of(bad: object) -> list[tuple[str, str]]:
    with pytest.raises(CriteriaError) as caught:
        parse_criteria(bad)
    return [(problem.path, problem.message) for problem in caught.value.problems]


# --- The schema and valid specs ----------------------------------------------------------------


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


# --- Invalid specs ---------------------------------------------------------------------------

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


# --- Automatic checks ----------------------------------------------------------------------------


def run_check(check: dict[str, Any], episode: EpisodeSignals) -> CheckResult:
    (result,) = evaluate_checks(parse_criteria(check_spec(**check)), episode)
    return result


def episode_with(**fields: Any) -> EpisodeSignals:
    fields.setdefault("timestamps", np.arange(100) / 50.0)
    return EpisodeSignals(**fields)


GRIPPER_ABOVE = {"id": "c", "type": "final_value", "signal": "qpos", "index": 1, "threshold": 0.5}


@pytest.mark.parametrize(
    ("op", "status"),
    [(">", "failed"), (">=", "passed"), ("<", "failed"), ("<=", "passed")],
)
def test_final_value_exactly_at_threshold_passes_only_inclusive_operators(op, status):
    qpos = np.zeros((100, 3))
    qpos[-1, 1] = 0.5

    result = run_check(GRIPPER_ABOVE | {"op": op}, episode_with(signals={"qpos": qpos}))

    assert result.status == status
    assert result.value == 0.5
    assert result.message == f"final value of qpos[1] = 0.5; needs {op} 0.5"


def test_final_value_reads_only_the_last_sample():
    qpos = np.full((100, 3), 0.9)
    qpos[-1, 1] = 0.1

    result = run_check(GRIPPER_ABOVE | {"op": ">"}, episode_with(signals={"qpos": qpos}))

    assert (result.status, result.value) == ("failed", 0.1)


def test_final_value_with_a_window_averages_the_last_seconds():
    timestamps = np.arange(100) / 50.0  # 50 Hz, last sample at 1.98 s
    height = np.zeros(100)
    height[-11:] = [0.0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]  # the last 0.2 s hold 11 samples

    result = run_check(
        {"id": "c", "type": "final_value", "signal": "h", "op": ">=", "threshold": 0.9}
        | {"window_s": 0.2},
        EpisodeSignals(timestamps=timestamps, signals={"h": height}),
    )

    assert result.status == "passed"
    assert result.value == pytest.approx(10 / 11)
    assert "over the last 0.2 s (11 samples)" in result.message


def test_final_value_of_a_one_dimensional_signal_needs_no_index():
    result = run_check(
        {"id": "c", "type": "final_value", "signal": "gripper", "op": "<", "threshold": 0},
        episode_with(signals={"gripper": np.linspace(1, -1, 100)}),
    )
    assert (result.status, result.value) == ("passed", -1.0)


@pytest.mark.parametrize(
    ("signals", "check", "reason"),
    [
        ({}, {}, "signal 'qpos' is not in the episode"),
        ({"qpos": np.zeros((0, 3))}, {}, "signal 'qpos' has no samples"),
        ({"qpos": np.zeros((100, 3))}, {"index": 3}, "index 3 is out of range"),
        ({"qpos": np.zeros(100)}, {"index": 0}, "one value per step; it has no index 0"),
        ({"qpos": np.zeros((100, 3))}, {"index": None}, "more than one value per step"),
        ({"qpos": np.full((100, 3), np.nan)}, {}, "final value of qpos[1] is nan, not finite"),
        ({"qpos": np.array([["a", "b"]] * 100)}, {}, "not real-valued"),
        ({"qpos": np.zeros((99, 3))}, {"window_s": 1}, "99 samples but the episode has 100"),
    ],
)
def test_final_value_is_not_evaluable_without_usable_data(signals, check, reason):
    check = {k: v for k, v in (GRIPPER_ABOVE | {"op": ">"} | check).items() if v is not None}

    result = run_check(check, episode_with(signals=signals))

    assert result.status == "not_evaluable"
    assert result.value is None
    assert reason in result.message


GRASP_BY_10 = {"id": "c", "type": "stage_by_time", "stage": "grasp", "by_s": 10}


@pytest.mark.parametrize(
    ("reached_at_s", "status"), [(9.999, "passed"), (10.0, "passed"), (10.001, "failed")]
)
def test_stage_reached_by_the_deadline_passes_and_after_it_fails(reached_at_s, status):
    episode = episode_with(stage_events=[("grasp", reached_at_s)])

    result = run_check(GRASP_BY_10, episode)

    assert (result.status, result.value) == (status, reached_at_s)
    assert result.message == f"stage 'grasp' first reached at {reached_at_s:g} s; needs by 10 s"


def test_stage_counts_from_its_first_event_and_ignores_other_stages():
    episode = episode_with(stage_events=[("lift", 1.0), ("grasp", 12.0), ("grasp", 4.0)])

    result = run_check(GRASP_BY_10, episode)

    assert (result.status, result.value) == ("passed", 4.0)


def test_stage_never_reached_fails():
    result = run_check(GRASP_BY_10, episode_with(stage_events=[("lift", 1.0)]))

    assert (result.status, result.value) == ("failed", None)
    assert "was not reached" in result.message


RATE_45 = {"id": "c", "type": "control_rate", "min_hz": 45}


def test_uniform_timestamps_at_exactly_the_minimum_rate_pass():
    # np.arange(n) / 50 has intervals of 0.020000000000000018 s: rounding must not fail it.
    result = run_check(RATE_45 | {"min_hz": 50}, EpisodeSignals(timestamps=np.arange(1000) / 50.0))
    assert result.status == "passed"
    assert result.value == pytest.approx(50.0, rel=1e-9)


def test_control_rate_below_the_minimum_fails():
    result = run_check(RATE_45, EpisodeSignals(timestamps=np.arange(100) / 40.0))

    assert (result.status, round(result.value, 6)) == ("failed", 40.0)
    assert "needs >= 45 Hz" in result.message


def test_jittery_timestamps_with_stalls_measure_the_typical_rate_and_report_late_intervals():
    rng = np.random.default_rng(7)
    intervals_s = rng.uniform(0.018, 0.022, size=1000)  # 50 Hz with +-10% jitter
    intervals_s[::100] = 0.5  # ten half-second stalls
    timestamps = np.concatenate([[0.0], np.cumsum(intervals_s)])

    result = run_check(RATE_45, EpisodeSignals(timestamps=timestamps, nominal_hz=50))

    assert result.status == "passed"
    assert result.value == pytest.approx(50, rel=0.02)
    # The mean interval would have put the rate near 34 Hz and failed the check.
    assert len(timestamps) / timestamps[-1] < 45
    assert result.details["late_fraction"] == pytest.approx(0.01)
    assert "1.0% of intervals longer than 1.5x the nominal 50 Hz period" in result.message


def test_late_fraction_is_left_out_without_a_nominal_rate():
    result = run_check(RATE_45, EpisodeSignals(timestamps=np.arange(100) / 50.0))

    assert "late_fraction" not in result.details


@pytest.mark.parametrize(
    ("timestamps", "reason"),
    [
        (np.array([0.0]), "at least 2 timestamps; the episode has 1"),
        (np.array([]), "at least 2 timestamps; the episode has 0"),
        (np.array([0.0, 0.02, 0.02, 0.04]), "timestamps do not increase at sample 2"),
        (np.array([0.0, np.nan, 0.04]), "timestamps contain NaN or infinity"),
        (np.zeros((3, 2)), "1-D array of seconds"),
    ],
)
def test_control_rate_is_not_evaluable_from_unusable_timestamps(timestamps, reason):
    result = run_check(RATE_45, EpisodeSignals(timestamps=timestamps))

    assert result.status == "not_evaluable"
    assert reason in result.message


NO_NAN = {"id": "c", "type": "finite", "signals": ["action", "qpos"]}


def test_nan_in_a_signal_fails_the_finite_check_and_says_where():
    action = np.zeros((100, 7))
    action[40, 3] = np.nan
    action[41, 0] = -np.inf

    result = run_check(NO_NAN, episode_with(signals={"action": action, "qpos": np.zeros((100, 7))}))

    assert (result.status, result.value) == ("failed", 2.0)
    assert result.message == "2 NaN or infinite values: action: 2 (first at sample 40)"


def test_finite_check_passes_clean_float_and_integer_signals():
    signals = {"action": np.zeros((100, 7)), "qpos": np.ones((100, 7), dtype=np.int16)}

    result = run_check(NO_NAN, episode_with(signals=signals))

    assert (result.status, result.value) == ("passed", 0.0)


def test_finite_check_without_a_list_reads_every_signal():
    signals = {"action": np.zeros((100, 7)), "observations/effort": np.full((100, 7), np.inf)}

    result = run_check({"id": "c", "type": "finite"}, episode_with(signals=signals))

    assert (result.status, result.value) == ("failed", 700.0)
    assert "observations/effort: 700" in result.message


def test_finite_check_is_not_evaluable_when_a_listed_signal_is_missing():
    result = run_check(NO_NAN, episode_with(signals={"action": np.zeros((100, 7))}))

    assert result.status == "not_evaluable"
    assert result.message == "signal 'qpos' is not in the episode"


def test_finite_check_fails_on_nan_even_when_another_signal_is_missing():
    result = run_check(NO_NAN, episode_with(signals={"action": np.full((100, 7), np.nan)}))

    assert result.status == "failed"
    assert "also signal 'qpos' is not in the episode" in result.message


def test_finite_check_is_not_evaluable_on_an_episode_without_signals():
    result = run_check({"id": "c", "type": "finite"}, episode_with())

    assert result.status == "not_evaluable"


WRIST_LIVE = {"id": "c", "type": "camera_not_frozen", "camera": "cam_wrist", "max_frozen_s": 0.5}


def camera_with_frozen_run(repeated_frames: int, fps: float = 30.0, at: int = 20):
    """60 distinct frames, except `repeated_frames` identical ones starting at frame `at`."""
    frames = [f"jpeg-{i}".encode() for i in range(60)]
    frames[at : at + repeated_frames] = [b"same-bytes"] * repeated_frames
    return {"cam_wrist": (frames, np.arange(60) / fps)}


@pytest.mark.parametrize(
    ("repeated_frames", "frozen_s", "status"),
    [(15, 14 / 30, "passed"), (16, 15 / 30, "passed"), (17, 16 / 30, "failed")],
)
def test_frozen_camera_run_just_under_at_and_over_the_limit(repeated_frames, frozen_s, status):
    episode = episode_with(camera_frames=camera_with_frozen_run(repeated_frames))

    result = run_check(WRIST_LIVE, episode)

    assert result.status == status
    assert result.value == pytest.approx(frozen_s)
    assert f"({repeated_frames} frames from 0.666667 s)" in result.message


def test_frozen_run_at_the_end_of_the_recording_counts():
    episode = episode_with(camera_frames=camera_with_frozen_run(20, at=40))

    result = run_check(WRIST_LIVE, episode)

    assert (result.status, result.value) == ("failed", pytest.approx(19 / 30))


def test_distinct_frames_of_equal_size_are_not_frozen():
    frames = [bytes([i]) * 1000 for i in range(60)]
    episode = episode_with(camera_frames={"cam_wrist": (frames, np.arange(60) / 30)})

    result = run_check(WRIST_LIVE, episode)

    assert (result.status, result.value) == ("passed", 0.0)


@pytest.mark.parametrize(
    ("camera_frames", "reason"),
    [
        ({}, "camera 'cam_wrist' is not in the episode"),
        ({"cam_wrist": ([], np.array([]))}, "camera 'cam_wrist' has no frames"),
        ({"cam_wrist": ([b"a", b"b"], np.array([0.0]))}, "2 frames but 1 frame timestamps"),
        ({"cam_wrist": ([b"a", b"b"], np.array([0.0, np.inf]))}, "NaN or infinity"),
    ],
)
def test_camera_check_is_not_evaluable_without_usable_frames(camera_frames, reason):
    result = run_check(WRIST_LIVE, episode_with(camera_frames=camera_frames))

    assert result.status == "not_evaluable"
    assert reason in result.message


def test_results_come_one_per_check_in_spec_order_and_serialize():
    results = evaluate_checks(parse_criteria(spec()), EpisodeSignals(timestamps=np.array([])))

    assert [r.check_id for r in results] == [c["id"] for c in PICK_AND_PLACE["checks"]]
    assert [r.to_dict()["status"] for r in results] == [
        "not_evaluable",
        "failed",
        "not_evaluable",
        "not_evaluable",
        "not_evaluable",
    ]
    json.dumps([r.to_dict() for r in results])


# --- Stage score and success -----------------------------------------------------------------


def test_stage_score_sums_the_weights_of_the_stages_reached():
    criteria = parse_criteria(spec())

    assert stage_score(criteria, []) == 0.0
    assert stage_score(criteria, ["grasp", "lift"]) == 0.5
    assert stage_score(criteria, ["grasp", "lift", "place"]) == 1.0
    assert stage_score(criteria, ["grasp", "grasp"]) == 0.25


def test_reaching_a_later_stage_does_not_credit_the_earlier_ones():
    assert stage_score(parse_criteria(spec()), ["place"]) == 0.5


def test_stage_score_refuses_a_stage_the_spec_does_not_define():
    with pytest.raises(CriteriaError, match="unknown stage 'stack'; stages: grasp, lift, place"):
        stage_score(parse_criteria(spec()), ["grasp", "stack"])


def test_stage_score_of_a_spec_without_stages_is_zero():
    without_stages = spec(stages=[], checks=[], success={"description": "d"})

    assert stage_score(parse_criteria(without_stages), []) == 0.0


def result_of(check_id: str, status: CheckStatus) -> CheckResult:
    return CheckResult(check_id, "final_value", status, None, "")


@pytest.mark.parametrize(
    ("status", "success"),
    [(CheckStatus.PASSED, True), (CheckStatus.FAILED, False), (CheckStatus.NOT_EVALUABLE, None)],
)
def test_success_follows_the_named_success_check(status, success):
    criteria = parse_criteria(spec())
    results = [result_of("rate", CheckStatus.PASSED), result_of("cube-lifted", status)]

    assert success_from_checks(criteria, results) is success


def test_success_is_undecided_without_a_success_check_or_its_result():
    with_check = parse_criteria(spec())
    without_check = parse_criteria(spec(success={"description": "a human decides"}))

    passed = CheckStatus.PASSED
    assert success_from_checks(without_check, [result_of("cube-lifted", passed)]) is None
    assert success_from_checks(with_check, [result_of("rate", passed)]) is None


# --- Properties --------------------------------------------------------------------------------


def json_values_with(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | floats | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=6)
            | st.dictionaries(st.text(max_size=12), children, max_size=6)
        ),
        max_leaves=40,
    )


json_values = json_values_with(st.floats())
finite_json_values = json_values_with(st.floats(allow_nan=False, allow_infinity=False))
slugs = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)
descriptions = st.text(min_size=1, max_size=30)
signal_names = st.sampled_from(["action", "observations/qpos", "observations/qvel", "effort"])


def numbers(low: float, high: float) -> st.SearchStrategy[float | int]:
    return st.floats(low, high, allow_nan=False) | st.integers(math.ceil(low), math.floor(high))


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    stage_ids = draw(st.lists(slugs, unique=True, max_size=6))
    parts = draw(st.lists(st.integers(0, 50), min_size=len(stage_ids), max_size=len(stage_ids)))
    if parts and sum(parts) == 0:
        parts[0] = 1
    stages = [
        {"id": stage_id, "description": draw(descriptions), "weight": part / sum(parts)}
        for stage_id, part in zip(stage_ids, parts, strict=True)
    ]
    check_ids = draw(st.lists(slugs, unique=True, max_size=8))
    kinds = ["final_value", "control_rate", "finite", "camera_not_frozen"]
    kinds += ["stage_by_time"] if stage_ids else []
    checks = []
    for check_id in check_ids:
        check: dict[str, Any] = {"id": check_id, "type": draw(st.sampled_from(kinds))}
        if draw(st.booleans()):
            check["description"] = draw(descriptions)
        match check["type"]:
            case "final_value":
                check |= {
                    "signal": draw(signal_names),
                    "op": draw(st.sampled_from([">", ">=", "<", "<="])),
                    "threshold": draw(numbers(-1e12, 1e12)),
                }
                if draw(st.booleans()):
                    check["index"] = draw(st.integers(0, 4095))
                if draw(st.booleans()):
                    check["window_s"] = draw(numbers(1e-3, 86400))
            case "stage_by_time":
                check |= {
                    "stage": draw(st.sampled_from(stage_ids)),
                    "by_s": draw(numbers(0, 86400)),
                }
            case "control_rate":
                check["min_hz"] = draw(numbers(1e-3, 100000))
            case "finite":
                if draw(st.booleans()):
                    check["signals"] = draw(st.lists(signal_names, min_size=1, unique=True))
            case "camera_not_frozen":
                check |= {"camera": draw(slugs.filter(lambda s: "-" not in s))}
                check["max_frozen_s"] = draw(numbers(0, 86400))
        checks.append(check)
    success: dict[str, Any] = {"description": draw(descriptions)}
    if check_ids and draw(st.booleans()):
        success["check"] = draw(st.sampled_from(check_ids))
    out: dict[str, Any] = {"schema": "pg-criteria/1", "success": success}
    # Optional lists are sometimes left out, to exercise normalization.
    for key, value in [("stages", stages), ("failure_codes", []), ("checks", checks)]:
        if value or draw(st.booleans()):
            out[key] = value
    if draw(st.booleans()):
        out["failure_codes"] = [
            {"code": code, "description": draw(descriptions)}
            for code in draw(st.lists(slugs, unique=True, max_size=4))
        ]
    return out


@st.composite
def damaged_specs(draw: st.DrawFn) -> object:
    """A valid spec with one value somewhere replaced by arbitrary JSON: near misses reach the
    cross-field rules, which read the raw spec."""
    damaged = draw(valid_specs())
    containers: list[Any] = []
    stack: list[Any] = [damaged]
    while stack:
        node = stack.pop()
        if isinstance(node, dict | list) and node:
            containers.append(node)
            stack.extend(node.values() if isinstance(node, dict) else node)
    target = draw(st.sampled_from(containers))
    key = draw(st.sampled_from(list(target) if isinstance(target, dict) else range(len(target))))
    target[key] = draw(json_values)
    return damaged


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


@settings(max_examples=150, deadline=None)
@given(valid_specs(), st.data())
def test_stage_score_is_within_0_and_1_and_grows_with_the_stages_reached(raw, data):
    criteria = parse_criteria(raw)
    stage_ids = [stage.id for stage in criteria.stages]
    larger = data.draw(st.sets(st.sampled_from(stage_ids)) if stage_ids else st.just(set()))
    smaller = data.draw(st.sets(st.sampled_from(sorted(larger))) if larger else st.just(set()))

    low, high = stage_score(criteria, smaller), stage_score(criteria, larger)

    assert 0.0 <= low <= high <= 1.0
    assert stage_score(criteria, stage_ids) == pytest.approx(1.0 if stage_ids else 0.0, abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(
    rate_hz=st.floats(0.5, 20_000),
    samples=st.integers(2, 2000),
    start_s=st.floats(0, 1e5),
)
def test_control_rate_of_uniform_timestamps_is_the_sampling_rate(rate_hz, samples, start_s):
    timestamps = start_s + np.arange(samples) / rate_hz
    check = ControlRateCheck(id="rate", min_hz=rate_hz)

    result = check.evaluate(EpisodeSignals(timestamps=timestamps))

    assert result.value == pytest.approx(rate_hz, rel=1e-6)


@settings(max_examples=100, deadline=None)
@given(valid_specs())
def test_evaluation_gives_one_result_per_check_in_order_even_on_an_empty_episode(raw):
    criteria = parse_criteria(raw)

    results = evaluate_checks(criteria, EpisodeSignals(timestamps=np.array([])))

    assert [(r.check_id, r.type) for r in results] == [(c.id, c.type) for c in criteria.checks]
