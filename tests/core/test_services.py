"""Core services: task versioning and immutability, content hashes, audit, operators."""

import pytest

from core.errors import InvalidInput, NotPermitted, StillReferenced, TaskVersionLocked
from core.models import AuditEvent, OperatorIdentity, TaskVersion
from core.services import embodiments, erasure, operators, robots, task_versions
from tests.core.factories import PICK_CRITERIA, make_task

pytestmark = pytest.mark.django_db


def _version_fields(world, **changes):
    fields = {
        "instruction": "Pick up the red cube and lift it.",
        "time_limit_s": 60.0,
        "criteria": PICK_CRITERIA,
        "allowed_embodiments": [world.a.embodiment],
    }
    return fields | changes


def test_a_task_starts_with_version_one_and_a_content_hash(world):
    version = world.a.task.versions.get()
    assert version.number == 1
    assert len(version.content_hash) == 64
    assert not version.is_locked


def test_equal_content_gives_an_equal_hash_and_no_new_version(world):
    version = world.a.task.versions.get()
    again = task_versions.create_task_version(
        actor=world.a.admin, task=world.a.task, **_version_fields(world)
    )
    assert again.pk == version.pk
    assert world.a.task.versions.count() == 1


def test_hash_ignores_key_order_and_number_spelling(world):
    reordered = dict(reversed(list(PICK_CRITERIA.items())))
    reordered["checks"] = [
        {"min_hz": 150.0, "type": "control_rate", "id": "rate"} if c["id"] == "rate" else c
        for c in PICK_CRITERIA["checks"]
    ]
    again = task_versions.create_task_version(
        actor=world.a.admin, task=world.a.task, **_version_fields(world, criteria=reordered)
    )
    assert again.number == 1


def test_an_unused_version_is_edited_in_place_and_rehashed(world):
    version = world.a.task.versions.get()
    edited = task_versions.update_task_version(
        actor=world.a.admin, version=version, instruction="Pick up the blue cube."
    )
    assert edited.pk == version.pk
    assert edited.content_hash != version.content_hash
    assert AuditEvent.objects.filter(object_id=str(version.pk), action="update").exists()


def test_a_locked_version_is_immutable(world):
    version = task_versions.lock_task_version(
        actor=world.a.admin, version=world.a.task.versions.get()
    )
    assert version.is_locked
    with pytest.raises(TaskVersionLocked):
        task_versions.update_task_version(actor=world.a.admin, version=version, instruction="x")
    version.refresh_from_db()
    assert version.instruction == "Pick up the red cube and lift it."


def test_editing_a_used_task_makes_a_new_version(world):
    old = task_versions.lock_task_version(actor=world.a.admin, version=world.a.task.versions.get())
    new = task_versions.create_task_version(
        actor=world.a.admin,
        task=world.a.task,
        **_version_fields(world, instruction="Pick up the cube with the left gripper."),
    )
    assert new.number == 2 and new.content_hash != old.content_hash
    assert TaskVersion.objects.get(pk=old.pk).instruction == old.instruction


def test_patching_a_locked_version_over_the_api_is_409(api, world):
    version = task_versions.lock_task_version(
        actor=world.a.admin, version=world.a.task.versions.get()
    )
    response = api(world.a.admin).patch(
        f"/api/v1/task-versions/{version.pk}/", {"instruction": "changed"}
    )
    assert response.status_code == 409
    assert response.json()["error"] == "task_version_locked"
    response = api(world.a.admin).post(
        f"/api/v1/tasks/{world.a.task.pk}/versions",
        {
            "instruction": "changed",
            "time_limit_s": 60,
            "criteria": PICK_CRITERIA,
            "allowed_embodiments": [world.a.embodiment.name],
        },
    )
    assert response.status_code == 201 and response.json()["number"] == 2


def test_invalid_criteria_are_refused_with_the_problem_path(world):
    bad = PICK_CRITERIA | {"stages": [{"id": "reach", "description": "x", "weight": 0.4}]}
    with pytest.raises(InvalidInput) as caught:
        make_task(world.a.team, world.a.admin, world.a.embodiment, criteria=bad)
    assert any("/stages" in message for message in caught.value.fields["criteria"])


def test_an_operator_cannot_create_tasks(world):
    with pytest.raises(NotPermitted):
        make_task(world.a.team, world.a.operator, world.a.embodiment)


def test_an_embodiment_in_use_cannot_be_deleted(world):
    with pytest.raises(StillReferenced):
        embodiments.delete_embodiment(actor=world.a.admin, embodiment=world.a.embodiment)


def test_every_write_leaves_an_audit_record_with_before_and_after(world):
    robot = robots.update_robot(actor=world.a.admin, robot=world.a.robot, site="Bench 9")
    event = AuditEvent.objects.filter(object_id=str(robot.pk), action="update").get()
    assert event.before["site"] == "" and event.after["site"] == "Bench 9"
    assert event.actor_label == f"user:{world.a.admin.username}"


def test_audit_snapshots_never_hold_key_hashes(world):
    for event in AuditEvent.objects.filter(object_type="core.robotapikey"):
        assert "key_hash" not in (event.after or {})


def test_erasing_an_operator_identity_keeps_the_pseudonym(world):
    operator = operators.create_operator(
        actor=world.a.admin,
        team=world.a.team,
        full_name="Ada Lovelace",
        email="ada@example.org",
        consent_version="2026-01",
    )
    erasure.erase_operator(actor=world.a.admin, operator=operator)
    operator.refresh_from_db()
    assert operator.code.startswith("OP-")
    assert not OperatorIdentity.objects.filter(operator=operator).exists()
    event = AuditEvent.objects.get(object_id=str(operator.pk), action="erase")
    assert "Ada" not in str(event.after) and "ada@" not in str(event.after)


def test_heartbeat_is_only_for_the_robot_itself(world):
    with pytest.raises(NotPermitted):
        robots.record_heartbeat(actor=world.a.admin, robot=world.a.robot)


@pytest.mark.parametrize(
    "path,body",
    [
        (
            "robots",
            lambda w: {
                "team": w.a.team.slug,
                "embodiment": w.a.embodiment.name,
                "name": w.a.robot.name,
            },
        ),
        (
            "embodiments",
            lambda w: {
                "team": w.a.team.slug,
                "name": w.a.embodiment.name,
                "spec": w.a.embodiment.spec,
            },
        ),
        ("conditions", lambda w: {"team": w.a.team.slug, "factor": "lighting", "level": "dim"}),
    ],
)
def test_creating_a_second_object_with_a_taken_name_is_409_and_stores_nothing(
    api, world, path, body
):
    client = api(world.a.admin)
    if path == "conditions":
        assert client.post(f"/api/v1/{path}/", body(world)).status_code == 201
    before = AuditEvent.objects.count()
    response = client.post(f"/api/v1/{path}/", body(world))
    assert response.status_code == 409, response.json()
    assert response.json()["error"] == "conflict" and "already" in response.json()["detail"]
    assert AuditEvent.objects.count() == before
