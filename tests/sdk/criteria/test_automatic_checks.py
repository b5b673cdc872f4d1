"""proving_ground.criteria.automatic_checks: each automatic check on hand-made episode
signals, passing, failing and not evaluable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground.criteria.automatic_checks import (
    CheckResult,
    ControlRateCheck,
    EpisodeSignals,
)
from proving_ground.criteria.parsing import parse_criteria
from proving_ground.criteria.spec import (
    evaluate_checks,
)
from tests.sdk.criteria.example_specs import (
    check_spec,
)


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
