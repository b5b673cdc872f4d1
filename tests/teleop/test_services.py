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
