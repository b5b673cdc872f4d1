"""Who sees what: each rule of `core.access`, for each kind of caller (superuser, team
member, non-member, anonymous caller, robot by API key) and each kind of record, on the real
database with state built through the services."""

import uuid
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser

from core import access
from core.models import AuditEvent, Membership, Operator, Robot, Task, Team, TeamOwned, Visibility
from core.services import audit, teams
from core.services import conditions as condition_services
from core.services import operators as operator_services
from core.services import robots as robot_services
from teleop.models import Episode, Session, Upload
from teleop.services import sessions
from teleop.services import uploads as upload_services
from tests.core.factories import make_task, make_team, make_user, superuser
from tests.evaluation.factories import make_policy_version, robot_actor

pytestmark = pytest.mark.django_db

Role = Membership.Role


def _names(queryset) -> set[str]:
    return {str(obj) for obj in queryset}


def _pks(queryset) -> set:
    return set(queryset.values_list("pk", flat=True))


# --- visible(): catalog objects, by visibility -----------------------------------------------


@dataclass
class Catalog:
    a_public: Task
    a_private: Task
    b_private: Task
    b_shared_with_a: Task
    b_shared_with_c: Task


@pytest.fixture
def catalog(world) -> Catalog:
    c = make_team()
    b = world.b
    return Catalog(
        a_public=world.a.task,
        a_private=world.a.private_task,
        b_private=b.private_task,
        b_shared_with_a=make_task(
            b.team,
            b.admin,
            b.embodiment,
            visibility=Visibility.SHARED,
            shared_with=[world.a.team],
        ),
        b_shared_with_c=make_task(
            b.team, b.admin, b.embodiment, visibility=Visibility.SHARED, shared_with=[c]
        ),
    )


def _visible_tasks(actor, catalog) -> set:
    everything = [getattr(catalog, name) for name in Catalog.__dataclass_fields__]
    return _pks(access.visible(Task.objects.filter(pk__in=[t.pk for t in everything]), actor))


def test_a_superuser_sees_every_catalog_object(world, catalog):
    assert _visible_tasks(superuser(), catalog) == {
        catalog.a_public.pk,
        catalog.a_private.pk,
        catalog.b_private.pk,
        catalog.b_shared_with_a.pk,
        catalog.b_shared_with_c.pk,
    }


@pytest.mark.parametrize("role", ["admin", "operator", "researcher"])
def test_a_member_sees_its_teams_objects_public_ones_and_ones_shared_with_its_team(
    world, catalog, role
):
    assert _visible_tasks(getattr(world.a, role), catalog) == {
        catalog.a_public.pk,
        catalog.a_private.pk,
        catalog.b_shared_with_a.pk,
    }


def test_another_teams_member_sees_only_public_ones_and_its_own(world, catalog):
    assert _visible_tasks(world.b.operator, catalog) == {
        catalog.a_public.pk,
        catalog.b_private.pk,
        catalog.b_shared_with_a.pk,
        catalog.b_shared_with_c.pk,
    }


def test_a_person_in_no_team_and_an_anonymous_caller_see_public_objects_only(world, catalog):
    assert _visible_tasks(world.stranger, catalog) == {catalog.a_public.pk}
    assert _visible_tasks(AnonymousUser(), catalog) == {catalog.a_public.pk}
    assert _visible_tasks(None, catalog) == {catalog.a_public.pk}


def test_a_robot_sees_what_its_team_sees(world, catalog):
    assert _visible_tasks(robot_actor(world.a.robot), catalog) == {
        catalog.a_public.pk,
        catalog.a_private.pk,
        catalog.b_shared_with_a.pk,
    }


def test_visibility_applies_to_robots_conditions_and_policies_alike(world):
    b = world.b
    public_robot = robot_services.create_robot(
        actor=b.admin,
        team=b.team,
        embodiment=b.embodiment,
        name="public-arm",
        visibility=Visibility.PUBLIC,
    )
    shared_condition = condition_services.create_condition(
        actor=b.admin,
        team=b.team,
        factor="lighting",
        level="dim",
        visibility=Visibility.SHARED,
        shared_with=[world.a.team],
    )
    private_condition = condition_services.create_condition(
        actor=b.admin, team=b.team, factor="lighting", level="bright", visibility="private"
    )
    private_policy = make_policy_version(b).policy
    public_policy = make_policy_version(b, visibility=Visibility.PUBLIC).policy
    member = world.a.operator
    assert _pks(access.visible(Robot.objects.filter(team=b.team), member)) == {public_robot.pk}
    conditions = type(shared_condition).objects.filter(team=b.team)
    assert _pks(access.visible(conditions, member)) == {shared_condition.pk}
    assert private_condition.pk in _pks(access.visible(conditions, superuser()))
    policies = type(private_policy).objects.filter(team=b.team)
    assert _pks(access.visible(policies, member)) == {public_policy.pk}
    assert _pks(access.visible(policies, world.b.researcher)) == {
        private_policy.pk,
        public_policy.pk,
    }


TEAM_OWNED = [m for m in apps.get_models() if issubclass(m, TeamOwned)]


@pytest.mark.parametrize("model", TEAM_OWNED, ids=lambda m: m.__name__)
def test_visible_filters_every_team_owned_model(world, model):
    """One rule for every kind: the filter (with its shared-with subquery) runs on each."""
    for actor in (superuser(), world.a.operator, world.stranger, AnonymousUser()):
        list(access.visible(model.objects.all(), actor))
    assert (
        model.objects.filter(team=world.b.team, visibility=Visibility.PRIVATE)
        .exclude(pk__in=access.visible(model.objects.all(), world.a.operator))
        .count()
        == model.objects.filter(team=world.b.team, visibility=Visibility.PRIVATE).count()
    )


# --- in_my_teams() and own_recordings(): records a team keeps to itself ------------------------


@dataclass
class Recordings:
    a_session: Session
    a_other_session: Session  # team a's other robot
    b_session: Session
    a_episode: Episode
    a_other_episode: Episode
    b_episode: Episode
    a_operator: Operator
    b_operator: Operator


def _session(tw, robot, operator) -> Session:
    return sessions.open_session(
        actor=tw.operator,
        robot=robot,
        task_version=tw.task.versions.get(),
        operator_code=operator.code,
    )


def _episode(session) -> Episode:
    episode, _, _ = upload_services.create_episode(
        actor=robot_actor(session.robot),
        episode_id=uuid.uuid4(),
        session=session,
        size_bytes=1000,
        sha256="0" * 64,
    )
    return episode


@pytest.fixture
def recordings(world, settings, tmp_path) -> Recordings:
    settings.UPLOAD_STAGING_DIR = tmp_path / "uploads"
    a_operator = operator_services.create_operator(actor=world.a.admin, team=world.a.team)
    b_operator = operator_services.create_operator(actor=world.b.admin, team=world.b.team)
    a_session = _session(world.a, world.a.robot, a_operator)
    a_other_session = _session(world.a, world.a.other_robot, a_operator)
    b_session = _session(world.b, world.b.robot, b_operator)
    return Recordings(
        a_session=a_session,
        a_other_session=a_other_session,
        b_session=b_session,
        a_episode=_episode(a_session),
        a_other_episode=_episode(a_other_session),
        b_episode=_episode(b_session),
        a_operator=a_operator,
        b_operator=b_operator,
    )


def test_team_records_a_member_sees_its_teams_only(world, recordings):
    r = recordings
    member = world.a.researcher
    assert _pks(access.in_my_teams(Session.objects.all(), member)) == {
        r.a_session.pk,
        r.a_other_session.pk,
    }
    assert _pks(access.in_my_teams(Episode.objects.all(), member)) == {
        r.a_episode.pk,
        r.a_other_episode.pk,
    }
    assert _pks(access.in_my_teams(Operator.objects.all(), member)) == {r.a_operator.pk}


def test_team_records_ignore_publishing_one_records_on_ones_own_teams_robots(world):
    public_b_robot = robot_services.update_robot(
        actor=world.b.admin, robot=world.b.robot, visibility=Visibility.PUBLIC
    )
    robots = access.in_my_teams(Robot.objects.all(), world.a.operator)
    assert public_b_robot.pk not in _pks(robots)
    assert _pks(robots) == {world.a.robot.pk, world.a.other_robot.pk}


def test_team_records_a_superuser_sees_all_and_strangers_none(world, recordings):
    everything = Session.objects.all()
    assert _pks(access.in_my_teams(everything, superuser())) == _pks(everything)
    assert len(_pks(everything)) == 3
    assert not access.in_my_teams(everything, world.stranger).exists()
    assert not access.in_my_teams(everything, AnonymousUser()).exists()
    assert not access.in_my_teams(everything, None).exists()


def test_team_records_follow_a_path_to_the_team(world, recordings):
    uploads = access.in_my_teams(Upload.objects.all(), world.b.admin, team_field="episode__team")
    assert set(uploads.values_list("episode_id", flat=True)) == {recordings.b_episode.pk}


def test_team_records_a_robot_sees_its_teams(world, recordings):
    operators = access.in_my_teams(Operator.objects.all(), robot_actor(world.a.robot))
    assert _pks(operators) == {recordings.a_operator.pk}


def test_recordings_a_robot_sees_only_its_own_not_its_team_mates(world, recordings):
    r = recordings
    robot = robot_actor(world.a.robot)
    assert _pks(access.own_recordings(Session.objects.all(), robot)) == {r.a_session.pk}
    assert _pks(access.own_recordings(Episode.objects.all(), robot)) == {r.a_episode.pk}
    uploads = access.own_recordings(
        Upload.objects.all(), robot, robot_field="episode__robot", team_field="episode__team"
    )
    assert set(uploads.values_list("episode_id", flat=True)) == {r.a_episode.pk}


def test_recordings_people_see_their_teams_and_a_superuser_all(world, recordings):
    r = recordings
    assert _pks(access.own_recordings(Episode.objects.all(), world.a.operator)) == {
        r.a_episode.pk,
        r.a_other_episode.pk,
    }
    assert _pks(access.own_recordings(Episode.objects.all(), superuser())) == {
        r.a_episode.pk,
        r.a_other_episode.pk,
        r.b_episode.pk,
    }
    assert not access.own_recordings(Episode.objects.all(), world.stranger).exists()
    assert not access.own_recordings(Episode.objects.all(), AnonymousUser()).exists()


# --- in_managed_teams(): the audit trail ---------------------------------------------------------


def test_the_audit_trail_is_read_by_the_teams_admins(world):
    a_events = access.in_managed_teams(AuditEvent.objects.all(), world.a.admin)
    assert a_events.exists()
    assert set(a_events.values_list("team_id", flat=True)) == {world.a.team.pk}
    for actor in (
        world.a.operator,
        world.a.researcher,
        world.stranger,
        AnonymousUser(),
        None,
        robot_actor(world.a.robot),
    ):
        assert not access.in_managed_teams(AuditEvent.objects.all(), actor).exists()


def test_a_superuser_reads_the_whole_audit_trail_team_less_events_included(world):
    root = superuser()
    audit.record_audit(actor=root, action="create", obj=root)
    team_less = AuditEvent.objects.filter(team=None)
    assert team_less.exists()
    everything = access.in_managed_teams(AuditEvent.objects.all(), root)
    assert everything.count() == AuditEvent.objects.count()
    assert not access.in_managed_teams(team_less, world.a.admin).exists()


# --- Teams ------------------------------------------------------------------------------------


def test_member_teams_are_the_actors_memberships(world):
    both = make_user(world.a.team, Role.OPERATOR)
    teams.add_member(actor=None, team=world.b.team, user=both, role=Role.RESEARCHER)
    assert _pks(access.member_teams(both)) == {world.a.team.pk, world.b.team.pk}
    assert _pks(access.member_teams(robot_actor(world.b.robot))) == {world.b.team.pk}
    assert not access.member_teams(world.stranger).exists()
    assert not access.member_teams(AnonymousUser()).exists()
    assert not access.member_teams(superuser()).exists()  # a superuser joins no team


def test_usable_teams_are_ones_own_or_every_team_for_a_superuser(world):
    assert _pks(access.usable_teams(superuser())) == _pks(Team.objects.all())
    assert _pks(access.usable_teams(world.a.admin)) == {world.a.team.pk}
    assert _pks(access.usable_teams(robot_actor(world.a.robot))) == {world.a.team.pk}
    assert not access.usable_teams(world.stranger).exists()
    assert not access.usable_teams(AnonymousUser()).exists()


def test_teams_with_a_role(world):
    assert _pks(access.managed_teams(world.a.admin)) == {world.a.team.pk}
    assert not access.managed_teams(world.a.operator).exists()
    assert _pks(access.teams_with_role(world.a.operator, Role.OPERATOR)) == {world.a.team.pk}
    assert _pks(access.managed_teams(superuser())) == _pks(Team.objects.all())
    assert not access.managed_teams(robot_actor(world.a.robot)).exists()
    assert not access.managed_teams(AnonymousUser()).exists()


# --- Rights checks ----------------------------------------------------------------------------


def test_roles_superusers_hold_every_role_robots_and_strangers_none(world):
    team = world.a.team.pk
    assert access.has_role(world.a.operator, team, Role.OPERATOR)
    assert not access.has_role(world.a.operator, team, Role.ADMIN)
    for nobody in (robot_actor(world.a.robot), world.stranger, AnonymousUser(), None):
        assert not access.has_role(nobody, team, Role.OPERATOR, Role.ADMIN)
    assert access.team_ids(None) == frozenset()
