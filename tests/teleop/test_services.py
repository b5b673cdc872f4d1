"""Recording rules: sessions, labels, discards, protocols and balanced coverage."""

import random
from collections import Counter

import pytest

from core.errors import InvalidInput, NotPermitted
from core.models import Embodiment
from core.services import conditions as condition_services
from core.services import embodiments, operators
from teleop import selectors
from teleop.errors import EmbodimentNotAllowed
from teleop.models import Label
from teleop.services import labels as label_services
from teleop.services import protocols, sessions
from tests.core.factories import ARM_SPEC, make_robot
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


def test_opening_a_session_locks_the_task_version(world, session):
    assert session.task_version.is_locked
    assert session.status == "open" and session.opened_by.startswith("user:")


def test_a_robot_opens_a_session_on_itself_only(world):
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    from core.access import RobotPrincipal
    from core.models import RobotAPIKey

    key = RobotAPIKey.objects.get(robot=world.a.robot)
    robot_actor = RobotPrincipal(world.a.robot, key)
    version = world.a.task.versions.get()
    session = sessions.open_session(
        actor=robot_actor, robot=world.a.robot, task_version=version, operator_code=operator.code
    )
    assert session.opened_by == f"robot:{world.a.robot.name}"
    with pytest.raises(NotPermitted):
        sessions.open_session(
            actor=robot_actor,
            robot=world.a.other_robot,
            task_version=version,
            operator_code=operator.code,
        )


def test_researchers_cannot_open_sessions(world):
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    with pytest.raises(NotPermitted):
        sessions.open_session(
            actor=world.a.researcher,
            robot=world.a.robot,
            task_version=world.a.task.versions.get(),
            operator_code=operator.code,
        )


def test_a_robot_whose_embodiment_the_task_does_not_allow_is_refused(world):
    other = embodiments.create_embodiment(
        actor=world.a.admin, team=world.a.team, name="other-arm", spec=ARM_SPEC
    )
    robot = make_robot(world.a.team, world.a.admin, other)
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    with pytest.raises(EmbodimentNotAllowed):
        sessions.open_session(
            actor=world.a.admin,
            robot=robot,
            task_version=world.a.task.versions.get(),
            operator_code=operator.code,
        )
    assert Embodiment.objects.filter(name="other-arm").exists()


def test_an_operator_of_another_team_is_refused(world):
    foreign = operators.create_operator(actor=world.b.admin, team=world.b.team)
    with pytest.raises(InvalidInput):
        sessions.open_session(
            actor=world.a.admin,
            robot=world.a.robot,
            task_version=world.a.task.versions.get(),
            operator_code=foreign.code,
        )


def test_a_new_label_supersedes_the_old_and_keeps_history(world, session):
    episode = ready_episode_row(session)
    label_services.label_episode(
        actor=world.a.operator, episode=episode, outcome="failure", failure_codes=["dropped"]
    )
    label_services.label_episode(
        actor=world.a.operator,
        episode=episode,
        outcome="partial",
        stages_reached=["reach", "grasp"],
        notes="slipped at lift",
    )
    labels = list(Label.objects.filter(episode=episode).order_by("created_at"))
    assert [label.outcome for label in labels] == ["failure", "partial"]
    assert labels[0].superseded_at is not None and labels[1].superseded_at is None
    assert labels[1].stage_score == pytest.approx(0.5)


def test_unknown_stages_and_failure_codes_are_refused(world, session):
    episode = ready_episode_row(session)
    with pytest.raises(InvalidInput):
        label_services.label_episode(
            actor=world.a.operator, episode=episode, outcome="partial", stages_reached=["teleport"]
        )
    with pytest.raises(InvalidInput):
        label_services.label_episode(
            actor=world.a.operator, episode=episode, outcome="failure", failure_codes=["gremlins"]
        )
    assert not Label.objects.exists()


def test_discarding_keeps_the_row_with_a_reason(world, session):
    episode = ready_episode_row(session)
    with pytest.raises(InvalidInput):
        label_services.discard_episode(actor=world.a.operator, episode=episode, reason="  ")
    label_services.discard_episode(
        actor=world.a.operator, episode=episode, reason="bumped the table"
    )
    episode.refresh_from_db()
    assert episode.is_discarded and episode.discard_reason == "bumped the table"


def _protocol(world, targets):
    conditions = [
        condition_services.create_condition(
            actor=world.a.admin, team=world.a.team, factor="lighting", level=level
        )
        for level in targets
    ]
    protocol = protocols.create_protocol(
        actor=world.a.admin,
        team=world.a.team,
        name="pick data",
        task_version=world.a.task.versions.get(),
        targets=list(zip(conditions, targets.values(), strict=True)),
    )
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team)
    session = sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=protocol.task_version,
        operator_code=operator.code,
        protocol=protocol,
    )
    return protocol, session, conditions


def test_progress_counts_only_ready_labelled_kept_episodes(world):
    protocol, session, (bright, dim) = _protocol(world, {"bright": 2, "dim": 2})
    labelled = ready_episode_row(session, bright)
    label_services.label_episode(actor=world.a.operator, episode=labelled, outcome="success")
    ready_episode_row(session, bright)  # not labelled
    discarded = ready_episode_row(session, dim)
    label_services.label_episode(actor=world.a.operator, episode=discarded, outcome="success")
    label_services.discard_episode(actor=world.a.operator, episode=discarded, reason="bad take")
    progress = {row.level: row.accepted for row in selectors.protocol_progress(protocol)}
    assert progress == {"bright": 1, "dim": 0}


def test_next_condition_is_drawn_among_the_conditions_still_short(world):
    protocol, session, (bright, dim) = _protocol(world, {"bright": 1, "dim": 3})
    done = ready_episode_row(session, bright)
    label_services.label_episode(actor=world.a.operator, episode=done, outcome="success")
    rng = random.Random(5)
    drawn = Counter(sessions.next_condition(session=session, rng=rng).level for _ in range(50))
    assert drawn == Counter({"dim": 50})


def test_next_condition_is_balanced_over_short_conditions(world):
    _, session, _ = _protocol(world, {"bright": 10, "dim": 10})
    rng = random.Random(5)
    drawn = Counter(sessions.next_condition(session=session, rng=rng).level for _ in range(2000))
    assert 0.45 < drawn["bright"] / 2000 < 0.55


def test_next_condition_is_none_when_every_target_is_met(world):
    _, session, (bright,) = _protocol(world, {"bright": 1})
    label_services.label_episode(
        actor=world.a.operator, episode=ready_episode_row(session, bright), outcome="success"
    )
    assert sessions.next_condition(session=session) is None


def test_session_summary_counts_outcomes_and_discards(world, session):
    for outcome in ("success", "success", "failure"):
        label_services.label_episode(
            actor=world.a.operator, episode=ready_episode_row(session), outcome=outcome
        )
    label_services.discard_episode(
        actor=world.a.operator, episode=ready_episode_row(session), reason="operator sneezed"
    )
    summary = selectors.session_summary(session)
    assert (summary.episodes, summary.successes, summary.failures, summary.discarded) == (
        4,
        2,
        1,
        1,
    )


# --- Session codes --------------------------------------------------------------------------


def _as_robot(robot):
    from core.access import RobotPrincipal
    from core.models import RobotAPIKey

    return RobotPrincipal(robot, RobotAPIKey.objects.filter(robot=robot).first())


def test_a_session_has_a_short_code_that_reads_unambiguously(world, session):
    other = sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=session.task_version,
        operator_code=session.operator.code,
    )
    assert len(session.code) == 6 and session.code != other.code
    assert set(session.code) <= set("ACDEFGHJKMNPQRTUVWXY34679")


def test_the_robot_finds_its_open_session_by_code_typed_loosely(world, session):
    robot = _as_robot(world.a.robot)
    loose = f" {session.code[:3].lower()}-{session.code[3:]}"
    assert sessions.session_for_code(actor=robot, code=loose) == session
    assert sessions.session_for_code(actor=world.a.operator, code=session.code) == session


def test_a_code_of_another_team_another_robot_or_a_closed_session_is_refused(world, session):
    from teleop.errors import SessionClosed, SessionNotFound

    with pytest.raises(SessionNotFound, match="No session with code"):
        sessions.session_for_code(actor=_as_robot(world.b.robot), code=session.code)
    with pytest.raises(SessionNotFound):
        sessions.session_for_code(actor=world.b.admin, code=session.code)
    with pytest.raises(NotPermitted, match="records on robot"):
        sessions.session_for_code(actor=_as_robot(world.a.other_robot), code=session.code)
    sessions.close_session(actor=world.a.operator, session=session)
    with pytest.raises(SessionClosed, match="was closed"):
        sessions.session_for_code(actor=_as_robot(world.a.robot), code=session.code)


def test_console_and_robot_are_told_the_same_next_condition_until_an_episode_comes(world):
    _, session, conditions = _protocol(world, {"bright": 5, "dim": 5, "dark": 5})
    first = sessions.next_condition(session=session)
    assert all(sessions.next_condition(session=session) == first for _ in range(10))
    assert first.remaining == 5


# --- Labels and the automatic checks --------------------------------------------------------


def test_a_success_label_against_a_failed_success_check_needs_confirming(world, checked_session):
    from teleop.errors import CheckDisagrees
    from tests.teleop.recordings import checked_episode

    episode = checked_episode(checked_session, "failed")
    with pytest.raises(CheckDisagrees, match="success check 'lifted' failed"):
        label_services.label_episode(actor=world.a.operator, episode=episode, outcome="success")
    assert not Label.objects.exists()
    label = label_services.label_episode(
        actor=world.a.operator, episode=episode, outcome="success", confirm_disagreement=True
    )
    assert label.check_disagrees


def test_a_label_agreeing_with_the_check_or_without_a_verdict_is_not_flagged(
    world, checked_session
):
    from tests.teleop.recordings import checked_episode

    for status, outcome in (
        ("failed", "failure"),
        ("passed", "success"),
        ("not_evaluable", "success"),
    ):
        episode = checked_episode(checked_session, status)
        label = label_services.label_episode(
            actor=world.a.operator, episode=episode, outcome=outcome
        )
        assert not label.check_disagrees


def test_a_failure_label_against_a_passed_check_is_flagged_once_confirmed(world, checked_session):
    from teleop.errors import CheckDisagrees
    from tests.teleop.recordings import checked_episode

    episode = checked_episode(checked_session, "passed")
    with pytest.raises(CheckDisagrees, match="passed"):
        label_services.label_episode(actor=world.a.operator, episode=episode, outcome="partial")
    label = label_services.label_episode(
        actor=world.a.operator, episode=episode, outcome="failure", confirm_disagreement=True
    )
    assert label.check_disagrees


@pytest.mark.parametrize(
    "judgement, field, message",
    [
        (
            {"outcome": "success", "failure_codes": ["dropped"]},
            "failure_codes",
            "A success has no failure code",
        ),
        (
            {"outcome": "partial", "stages_reached": ["reach", "lift"]},
            "stages_reached",
            "Stage 'lift' is marked reached but 'grasp'",
        ),
        (
            {"outcome": "failure", "stages_reached": ["grasp"]},
            "stages_reached",
            "Stage 'grasp' is marked reached but 'reach'",
        ),
    ],
)
def test_contradictory_labels_are_refused_with_a_message(world, session, judgement, field, message):
    episode = ready_episode_row(session)
    with pytest.raises(InvalidInput, match=message) as refused:
        label_services.label_episode(actor=world.a.operator, episode=episode, **judgement)
    assert field in refused.value.fields
    assert not Label.objects.exists()


def test_stages_are_stored_in_the_criteria_order(world, session):
    label = label_services.label_episode(
        actor=world.a.operator,
        episode=ready_episode_row(session),
        outcome="partial",
        stages_reached=["grasp", "reach"],
    )
    assert label.stages_reached == ["reach", "grasp"]
