"""The authoring pages: tasks (list, new, versions and their diff, edit as a new version),
the criteria editor's validation endpoint, and conditions. Each as an anonymous visitor, a
person of another team, an operator, a researcher and an admin; refusals answered beside the
field with the service's own message, nothing stored."""

import json

import pytest
from django.test import Client

from core.models import AuditEvent, Condition, Task, Visibility
from core.services import conditions
from tests.core.factories import PICK_CRITERIA

pytestmark = pytest.mark.django_db


def _as(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _task_post(world, **overrides) -> dict:
    data = {
        "team": str(world.a.team.pk),
        "slug": "stack-cubes",
        "name": "Stack the cubes",
        "visibility": Visibility.PRIVATE,
        "instruction": "Put the red cube on the blue one.",
        "scene_setup": "Both cubes 20 cm apart.",
        "time_limit_s": "45",
        "allowed_embodiments": [str(world.a.embodiment.pk)],
        "criteria": json.dumps(PICK_CRITERIA),
    }
    data.update(overrides)
    return data


# --- who gets what ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/tasks/", "/tasks/new", "/conditions/", "/tasks/{task}/", "/tasks/{task}/edit"]
)
def test_anonymous_visitors_are_sent_to_sign_in(world, path):
    response = _as().get(path.format(task=world.a.private_task.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_another_team_gets_404_for_a_private_task_and_403_for_editing_a_public_one(world):
    client = _as(world.b.researcher)
    assert client.get(f"/tasks/{world.a.private_task.pk}/").status_code == 404
    assert client.get(f"/tasks/{world.a.private_task.pk}/edit").status_code == 404
    assert client.get(f"/tasks/{world.a.task.pk}/").status_code == 200  # public
    assert client.get(f"/tasks/{world.a.task.pk}/edit").status_code == 403
    listed = client.get("/tasks/").content.decode()
    assert world.a.task.name in listed and world.a.private_task.name not in listed


def test_an_operator_sees_tasks_but_is_offered_no_authoring(world):
    client = _as(world.a.operator)
    page = client.get("/tasks/").content.decode()
    assert world.a.private_task.name in page
    assert "New task" not in page and 'href="/tasks/"' not in page  # no nav link either
    assert client.get("/tasks/new").status_code == 403
    assert client.post("/tasks/new", _task_post(world)).status_code == 403
    assert client.get(f"/tasks/{world.a.task.pk}/edit").status_code == 403
    conditions_page = client.get("/conditions/").content.decode()
    assert "New condition" not in conditions_page
    assert client.post("/conditions/", {"factor": "x", "level": "y"}).status_code == 403
    assert not Task.objects.filter(slug="stack-cubes").exists()


@pytest.mark.parametrize("role", ["researcher", "admin"])
def test_researchers_and_admins_create_a_task_with_its_first_version(world, role):
    client = _as(getattr(world.a, role))
    page = client.get("/tasks/new").content.decode()
    assert 'id="criteria-editor"' in page and 'id="criteria-kinds"' in page
    assert 'href="/tasks/"' in page and 'href="/conditions/"' in page  # the nav offers them
    response = client.post("/tasks/new", _task_post(world))
    task = Task.objects.get(slug="stack-cubes")
    assert response.status_code == 302 and response["Location"] == f"/tasks/{task.pk}/"
    version = task.versions.get()
    assert version.number == 1 and version.time_limit_s == 45
    assert version.criteria["stages"][2]["id"] == "lift"
    assert list(version.allowed_embodiments.all()) == [world.a.embodiment]
    assert task.visibility == Visibility.PRIVATE and task.team == world.a.team
    detail = client.get(response["Location"]).content.decode()
    assert "Stack the cubes" in detail and "Version 1" in detail


def test_the_team_choice_offers_only_teams_where_the_person_authors(world):
    from core.models import Membership
    from core.services import teams

    teams.add_member(
        actor=None, team=world.b.team, user=world.a.researcher, role=Membership.Role.OPERATOR
    )
    page = _as(world.a.researcher).get("/tasks/new").content.decode()
    assert world.a.team.name in page and world.b.team.name not in page
    response = _as(world.a.researcher).post(
        "/tasks/new", _task_post(world, team=str(world.b.team.pk))
    )
    assert response.status_code == 400
    assert not Task.objects.filter(slug="stack-cubes").exists()


# --- refusals beside the field ----------------------------------------------------------------


def test_criteria_the_service_refuses_are_answered_beside_the_field_and_nothing_is_saved(world):
    bad = json.loads(json.dumps(PICK_CRITERIA))
    bad["stages"][2]["weight"] = 0.4
    events = AuditEvent.objects.count()
    response = _as(world.a.researcher).post(
        "/tasks/new", _task_post(world, criteria=json.dumps(bad))
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["criteria"] == [
        "/stages: stage weights sum to 0.9; they must sum to 1 (within 1e-06)"
    ]
    page = response.content.decode()
    assert 'id="id_criteria_error"' in page and "stage weights sum to 0.9" in page
    assert not Task.objects.filter(slug="stack-cubes").exists()
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"time_limit_s": "0"}, "time_limit_s", "Must be > 0 and <= 86400."),
        ({"allowed_embodiments": []}, "allowed_embodiments", "At least one is required."),
        ({"criteria": "{not json"}, "criteria", "Not valid JSON"),
        ({"slug": "pick cube"}, "slug", "Enter a valid"),
    ],
)
def test_bad_task_input_is_answered_beside_its_field(world, overrides, field, message):
    response = _as(world.a.admin).post("/tasks/new", _task_post(world, **overrides))
    assert response.status_code == 400
    assert any(message in e for e in response.context["form"].errors[field])
    assert not Task.objects.filter(slug=_task_post(world, **overrides)["slug"]).exists()


def test_a_slug_the_team_has_already_is_refused_beside_the_slug(world):
    response = _as(world.a.researcher).post("/tasks/new", _task_post(world, slug=world.a.task.slug))
    assert response.status_code == 400
    assert "already" in response.context["form"].errors["slug"][0]
    assert Task.objects.filter(slug=world.a.task.slug).count() == 1


# --- versions and the diff --------------------------------------------------------------------


def test_edit_starts_from_the_latest_version_and_saves_a_new_one(world):
    client = _as(world.a.researcher)
    task = world.a.private_task
    form = client.get(f"/tasks/{task.pk}/edit").context["form"]
    assert form.initial["instruction"] == task.versions.get().instruction
    changed = json.loads(json.dumps(PICK_CRITERIA))
    changed["failure_codes"].append({"code": "collision", "description": "Arm hit the table"})
    data = _task_post(world, instruction="Pick the red cube and hold it.")
    data["criteria"] = json.dumps(changed)
    response = client.post(f"/tasks/{task.pk}/edit", data)
    assert response.status_code == 302
    assert list(task.versions.order_by("number").values_list("number", flat=True)) == [1, 2]
    first = task.versions.get(number=1)
    assert first.instruction == "Pick up the red cube and lift it."  # untouched

    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "What changed from v1 to v2" in page
    assert '<span class="add">+       &quot;code&quot;: &quot;collision&quot;,</span>' in page
    assert '<span class="del">- Pick up the red cube and lift it.</span>' in page
    assert '<span class="add">+ Pick the red cube and hold it.</span>' in page
    assert "Time limit (s)" in page  # 60 -> 45


def test_saving_the_same_content_keeps_the_version(world):
    client = _as(world.a.admin)
    task = world.a.private_task
    version = task.versions.get()
    data = _task_post(world, instruction=version.instruction, time_limit_s="60", scene_setup="")
    response = client.post(f"/tasks/{task.pk}/edit", data, follow=True)
    assert task.versions.count() == 1
    assert "Nothing changed" in response.content.decode()


def test_an_edit_the_service_refuses_saves_no_version(world):
    bad = dict(
        PICK_CRITERIA,
        checks=[{"id": "grasp-in-time", "type": "stage_by_time", "stage": "stack", "by_s": 5}],
    )
    response = _as(world.a.researcher).post(
        f"/tasks/{world.a.private_task.pk}/edit", _task_post(world, criteria=json.dumps(bad))
    )
    assert response.status_code == 400
    assert response.context["form"].errors["criteria"] == [
        "/checks/0/stage: unknown stage 'stack'; stages: reach, grasp, lift"
    ]
    assert world.a.private_task.versions.count() == 1


def test_the_diff_compares_the_two_chosen_versions(world):
    task = world.a.private_task
    for n, instruction in enumerate(["second", "third"], start=2):
        _as(world.a.admin).post(
            f"/tasks/{task.pk}/edit", _task_post(world, instruction=instruction, time_limit_s="60")
        )
        assert task.versions.count() == n
    page = _as(world.a.operator).get(f"/tasks/{task.pk}/?a=1&b=3").content.decode()
    assert "What changed from v1 to v3" in page and "+ third" in page and "second" not in page
    same = _as(world.a.operator).get(f"/tasks/{task.pk}/?a=2&b=2").content.decode()
    assert "What changed" not in same


def test_the_task_page_leads_authors_to_a_protocol_and_a_benchmark_for_its_newest_version(world):
    version = world.a.task.versions.get()
    page = _as(world.b.researcher).get(f"/tasks/{world.a.task.pk}/").content.decode()
    assert f'href="/protocols/new?task_version={version.pk}">New protocol for v1' in page
    assert f'href="/benchmarks/new?task_version={version.pk}">New benchmark with v1' in page
    seen = _as(world.a.operator).get(f"/tasks/{world.a.task.pk}/").content.decode()
    assert "New protocol for" not in seen and "New benchmark with" not in seen


# --- the validation endpoint ------------------------------------------------------------------


def _validate(client, draft):
    return client.post(
        "/tasks/criteria/validate", json.dumps({"criteria": draft}), content_type="application/json"
    )


def test_validate_answers_the_services_messages_with_their_paths(world):
    bad = dict(PICK_CRITERIA, stages=[{"id": "grasp", "description": "Held", "weight": 0.9}])
    bad["checks"] = [{"id": "c", "type": "final_value", "signal": "action", "op": "=="}]
    answer = _validate(_as(world.a.researcher), bad).json()
    assert answer["valid"] is False
    assert {
        "path": "/stages",
        "message": "stage weights sum to 0.9; they must sum to 1 (within 1e-06)",
    } in answer["problems"]
    assert {"path": "/checks/0/threshold", "message": "'threshold' is required"} in answer[
        "problems"
    ]
    assert any(p["path"] == "/checks/0/op" for p in answer["problems"])


def test_validate_answers_the_normalized_criteria_when_valid(world):
    answer = _validate(_as(world.a.admin), PICK_CRITERIA).json()
    assert answer == {"valid": True, "criteria": answer["criteria"], "problems": []}
    assert answer["criteria"]["stages"][0]["weight"] == 0.25


def test_validate_refuses_junk_and_people_who_author_nowhere(world):
    client = _as(world.a.researcher)
    junk = client.post("/tasks/criteria/validate", b"[1", content_type="application/json")
    assert junk.json()["problems"] == [{"path": "", "message": "The draft is not JSON."}]
    assert _validate(_as(world.a.operator), PICK_CRITERIA).status_code == 403
    anonymous = _validate(_as(), PICK_CRITERIA)
    assert anonymous.status_code == 302


def test_the_editor_is_given_every_kind_of_check_the_sdk_knows(world):
    from proving_ground.criteria.automatic_checks import CHECK_CLASSES

    page = _as(world.a.researcher).get("/tasks/new").content.decode()
    start = page.index('<script id="criteria-kinds" type="application/json">')
    text = page[start:].split(">", 1)[1].split("</script>", 1)[0]
    kinds = {kind["type"]: kind for kind in json.loads(text)}
    assert set(kinds) == set(CHECK_CLASSES)
    final_value = {p["name"]: p for p in kinds["final_value"]["parameters"]}
    assert final_value["op"]["options"] == [">", ">=", "<", "<="]
    assert final_value["threshold"]["required"] and not final_value["window_s"]["required"]
    assert final_value["window_s"]["label"] == "window (s)"


# --- conditions -------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["researcher", "admin"])
def test_researchers_and_admins_create_and_delete_conditions(world, role):
    client = _as(getattr(world.a, role))
    response = client.post(
        "/conditions/",
        {
            "team": str(world.a.team.pk),
            "factor": "lighting",
            "level": "dim",
            "description": "One lamp at 20%.",
            "reset_instructions": "Switch off the ceiling lights.",
            "visibility": Visibility.PRIVATE,
        },
    )
    assert response.status_code == 302
    condition = Condition.objects.get(factor="lighting", level="dim")
    assert condition.description == "One lamp at 20%."
    assert "lighting" in client.get("/conditions/").content.decode()
    client.post(f"/conditions/{condition.pk}/delete")
    assert not Condition.objects.filter(pk=condition.pk).exists()


def test_a_duplicate_condition_is_refused_beside_the_level(world):
    conditions.create_condition(actor=world.a.admin, team=world.a.team, factor="light", level="dim")
    response = _as(world.a.researcher).post(
        "/conditions/",
        {"team": str(world.a.team.pk), "factor": "light", "level": "dim", "visibility": "private"},
    )
    assert response.status_code == 400
    assert "exists in this team already" in response.context["form"].errors["level"][0]
    assert Condition.objects.filter(factor="light").count() == 1


def test_a_condition_still_in_use_is_not_deleted_and_says_why(world):
    from core.services import operators
    from teleop.services import sessions
    from tests.teleop.recordings import ready_episode_row

    condition = conditions.create_condition(
        actor=world.a.admin, team=world.a.team, factor="light", level="dim"
    )
    operator = operators.create_operator(actor=world.a.admin, team=world.a.team, code="OP-C")
    session = sessions.open_session(
        actor=world.a.operator,
        robot=world.a.robot,
        task_version=world.a.task.versions.get(),
        operator_code=operator.code,
    )
    ready_episode_row(session, condition=condition)
    response = _as(world.a.researcher).post(f"/conditions/{condition.pk}/delete", follow=True)
    assert Condition.objects.filter(pk=condition.pk).exists()
    assert "still referenced" in response.content.decode()


def test_conditions_of_another_team_are_hidden_or_not_deletable(world):
    private = conditions.create_condition(
        actor=world.a.admin,
        team=world.a.team,
        factor="light",
        level="dark",
        visibility=Visibility.PRIVATE,
    )
    public = conditions.create_condition(
        actor=world.a.admin,
        team=world.a.team,
        factor="light",
        level="bright",
        visibility=Visibility.PUBLIC,
    )
    client = _as(world.b.admin)
    page = client.get("/conditions/").content.decode()
    assert "bright" in page and "dark" not in page
    assert f"/conditions/{public.pk}/delete" not in page
    assert client.post(f"/conditions/{private.pk}/delete").status_code == 404
    assert client.post(f"/conditions/{public.pk}/delete").status_code == 403
    assert _as(world.a.operator).post(f"/conditions/{public.pk}/delete").status_code == 403
    assert Condition.objects.filter(pk__in=[private.pk, public.pk]).count() == 2
