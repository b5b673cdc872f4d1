"""`core.rights`: the one table of who may do what, and the API and services asking it."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import AnonymousUser

from core import rights
from core.errors import NotPermitted
from core.models import Membership
from core.services import conditions as condition_services
from tests.core.factories import PICK_CRITERIA, superuser
from tests.evaluation.factories import robot_actor

Right = rights.Right
Role = Membership.Role

EXPECTED = {
    Role.ADMIN: set(Right),
    Role.RESEARCHER: {Right.AUTHOR, Right.LABEL, Right.UNBLIND},
    Role.OPERATOR: {Right.OPERATE, Right.LABEL},
}


@pytest.mark.parametrize("role", list(EXPECTED))
def test_each_role_holds_exactly_its_rights_in_its_own_team_only(world, role):
    person = {
        Role.ADMIN: world.a.admin,
        Role.RESEARCHER: world.a.researcher,
        Role.OPERATOR: world.a.operator,
    }[role]
    held = {right for right in Right if rights.may(person, right, world.a.team)}
    assert held == EXPECTED[role]
    assert not any(rights.may(person, right, world.b.team) for right in Right)


def test_superusers_hold_every_right_robots_strangers_and_anonymous_none(world):
    assert all(rights.may(superuser(), right, world.a.team.pk) for right in Right)
    for nobody in (robot_actor(world.a.robot), world.stranger, AnonymousUser(), None):
        assert not any(rights.may(nobody, right, world.a.team) for right in Right)


def test_every_team_owned_model_has_a_right():
    """A new model with an owning team must say which right writes it."""
    owned = {
        model._meta.label_lower
        for model in apps.get_models()
        if model._meta.app_label in {"core", "teleop", "evaluation"}
        and any(f.name == "team" and f.is_relation for f in model._meta.fields)
    }
    assert owned - set(rights.MODEL_RIGHTS) <= {
        # Records a team keeps, written by their own flows (recording, trials, jobs,
        # audit), never through the catalog's create/change/delete.
        "core.auditevent",
        "core.datarequest",  # the operator or a team admin (core.services.consent.may_act_for)
        "teleop.session",
        "teleop.episode",
        "teleop.upload",
        "evaluation.trial",
        "evaluation.trialattempt",
        "evaluation.leaderboardsnapshot",
    }, owned - set(rights.MODEL_RIGHTS)


def test_the_service_refuses_with_who_may(world):
    with pytest.raises(NotPermitted, match="admin or researcher"):
        condition_services.create_condition(
            actor=world.a.operator, team=world.a.team, factor="lighting", level="dim"
        )


def _task_body(world, slug):
    return {
        "team": world.a.team.slug,
        "slug": slug,
        "name": "Stack",
        "instruction": "Stack the cubes.",
        "time_limit_s": 30,
        "criteria": PICK_CRITERIA,
        "allowed_embodiments": [world.a.embodiment.name],
    }


def test_a_researcher_authors_tasks_and_conditions_over_the_api(api, world):
    client = api(world.a.researcher)
    response = client.post("/api/v1/tasks/", _task_body(world, "stack"), format="json")
    assert response.status_code == 201, response.json()
    task_id = response.json()["id"]
    response = client.patch(f"/api/v1/tasks/{task_id}/", {"name": "Stack two"}, format="json")
    assert response.status_code == 200, response.json()
    response = client.post(
        "/api/v1/conditions/", {"team": world.a.team.slug, "factor": "lighting", "level": "dim"}
    )
    assert response.status_code == 201, response.json()


def test_an_operator_may_not_author_and_a_researcher_may_not_manage_robots(api, world):
    response = api(world.a.operator).post(
        "/api/v1/tasks/", _task_body(world, "stack-op"), format="json"
    )
    assert response.status_code == 403
    assert "admin or researcher" in response.json()["detail"]
    response = api(world.a.researcher).patch(
        f"/api/v1/robots/{world.a.robot.pk}/", {"name": "renamed"}, format="json"
    )
    assert response.status_code == 403
    response = api(world.a.researcher).post(f"/api/v1/robots/{world.a.robot.pk}/keys", {})
    assert response.status_code == 403
