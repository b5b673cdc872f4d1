"""proving_ground.criteria.spec: what a validated spec decides: the stage score, success from
the checks' results, and one result per check."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proving_ground.criteria.automatic_checks import (
    CheckResult,
    CheckStatus,
    EpisodeSignals,
)
from proving_ground.criteria.parsing import parse_criteria
from proving_ground.criteria.spec import (
    CriteriaError,
    evaluate_checks,
    stage_score,
    success_from_checks,
)
from tests.sdk.criteria.example_specs import (
    PICK_AND_PLACE,
    spec,
    valid_specs,
)


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


@settings(max_examples=100, deadline=None)
@given(valid_specs())
def test_evaluation_gives_one_result_per_check_in_order_even_on_an_empty_episode(raw):
    criteria = parse_criteria(raw)

    results = evaluate_checks(criteria, EpisodeSignals(timestamps=np.array([])))

    assert [(r.check_id, r.type) for r in results] == [(c.id, c.type) for c in criteria.checks]
