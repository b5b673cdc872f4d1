"""The Django admin refuses what the services refuse: its forms call the services' checks
(protocols: targets, durations, cameras; embodiments: the spec), and what it cannot create
correctly (a task without its first version, a benchmark without its cells, a campaign
without its schedule) it sends to the page that can."""

import json

import pytest
from django.urls import reverse

from core.models import Embodiment, Task
from core.services import conditions as condition_services
from teleop.forms import SessionForm
from teleop.models import CollectionProtocol
from tests.core.factories import ARM_SPEC, superuser

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client):
    user = superuser()
    client.force_login(user)
    return user


def _protocol_data(world, conditions=(), **changes):
    data = {
        "team": world.a.team.pk,
        "name": "cube data",
        "task_version": world.a.task.versions.get().pk,
        "instructions": "",
        "min_control_hz": "",
        "min_duration_s": "",
        "max_duration_s": "",
        "required_cameras": "",
        "active": "on",
        "visibility": "private",
        "targets-TOTAL_FORMS": str(max(1, len(conditions))),
        "targets-INITIAL_FORMS": "0",
        "targets-MIN_NUM_FORMS": "0",
        "targets-MAX_NUM_FORMS": "1000",
    }
    for i, condition in enumerate(conditions):
        data[f"targets-{i}-condition"] = condition.pk
        data[f"targets-{i}-target_count"] = "5"
    return {**data, **changes}


def _condition(world, level="bright"):
    return condition_services.create_condition(
        actor=world.a.admin, team=world.a.team, factor="lighting", level=level
    )


ADD_PROTOCOL = reverse("admin:teleop_collectionprotocol_add")


@pytest.mark.parametrize(
    ("changes", "with_target", "message"),
    [
        ({}, False, "Add at least one condition with a target count."),
        ({"min_duration_s": "10", "max_duration_s": "5"}, True, "is below the minimum"),
        ({"required_cameras": "cam_high, cam_thermal"}, True, "cam_thermal"),
    ],
)
def test_the_admin_refuses_a_protocol_the_service_refuses(
    root, client, world, changes, with_target, message
):
    conditions = [_condition(world)] if with_target else []
    response = client.post(ADD_PROTOCOL, _protocol_data(world, conditions, **changes))
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    assert not CollectionProtocol.objects.exists()
    # And so the operator's protocol menu offers nothing broken.
    assert not SessionForm(user=world.a.operator).fields["protocol"].queryset.exists()


def test_the_admin_saves_a_valid_protocol_with_its_cameras(root, client, world):
    condition = _condition(world)
    data = _protocol_data(world, [condition], required_cameras="cam_wrist", max_duration_s="30")
    response = client.post(ADD_PROTOCOL, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    protocol = CollectionProtocol.objects.get()
    assert protocol.required_cameras == ["cam_wrist"]
    assert protocol.targets.get().condition == condition
    assert protocol.task_version.is_locked
    # Its change page shows the cameras as text, not a JSON box.
    page = client.get(
        reverse("admin:teleop_collectionprotocol_change", args=[protocol.pk])
    ).content.decode()
    assert 'value="cam_wrist"' in page


def test_the_admin_refuses_removing_a_protocols_last_target(root, client, world):
    condition = _condition(world)
    client.post(ADD_PROTOCOL, _protocol_data(world, [condition]))
    protocol = CollectionProtocol.objects.get()
    target = protocol.targets.get()
    data = _protocol_data(
        world,
        **{
            "targets-TOTAL_FORMS": "1",
            "targets-INITIAL_FORMS": "1",
            "targets-0-id": target.pk,
            "targets-0-protocol": protocol.pk,
            "targets-0-condition": condition.pk,
            "targets-0-target_count": "5",
            "targets-0-DELETE": "on",
        },
    )
    del data["task_version"]  # read-only once the protocol exists
    response = client.post(
        reverse("admin:teleop_collectionprotocol_change", args=[protocol.pk]), data
    )
    assert response.status_code == 200
    assert "Add at least one condition with a target count." in response.content.decode()
    assert protocol.targets.count() == 1


def test_the_admin_refuses_sharing_a_protocol_with_its_own_team(root, client, world):
    data = _protocol_data(
        world, [_condition(world)], visibility="shared", shared_with=[world.a.team.pk]
    )
    response = client.post(ADD_PROTOCOL, data)
    assert response.status_code == 200
    assert "owns the protocol" in response.content.decode()
    assert not CollectionProtocol.objects.exists()


def test_the_admin_refuses_an_embodiment_spec_with_the_services_messages(root, client, world):
    spec = {**ARM_SPEC, "cameras": [{"name": "cam_high", "width": 0, "height": 480, "fps": 30}]}
    data = {
        "team": world.a.team.pk,
        "name": "bad-arm",
        "description": "",
        "spec": json.dumps(spec),
        "visibility": "public",
    }
    response = client.post(reverse("admin:core_embodiment_add"), data)
    assert response.status_code == 200
    assert "/cameras/0/width: 0 is less than the minimum of 1" in response.content.decode()
    assert not Embodiment.objects.filter(name="bad-arm").exists()
    response = client.post(
        reverse("admin:core_embodiment_add"), {**data, "spec": json.dumps(ARM_SPEC)}
    )
    assert response.status_code == 302
    assert Embodiment.objects.get(name="bad-arm").spec == ARM_SPEC


@pytest.mark.parametrize(
    ("admin_name", "page"),
    [
        ("core_task", "/tasks/new"),
        ("evaluation_benchmark", "/benchmarks/new"),
        ("evaluation_campaign", "/campaigns/new"),
    ],
)
def test_add_in_the_admin_is_offered_and_leads_to_the_page(root, client, admin_name, page):
    changelist = client.get(reverse(f"admin:{admin_name}_changelist")).content.decode()
    assert reverse(f"admin:{admin_name}_add") in changelist  # the "Add" button
    response = client.get(reverse(f"admin:{admin_name}_add"))
    assert response.status_code == 302 and response["Location"] == page


def test_adding_a_task_in_the_admin_leads_to_the_task_page(root, client, world):
    before = Task.objects.count()
    response = client.get(reverse("admin:core_task_add"))
    assert response.status_code == 302 and response["Location"] == "/tasks/new"
    response = client.post(
        reverse("admin:core_task_add"),
        {"team": world.a.team.pk, "slug": "shell", "name": "Shell", "visibility": "public"},
    )
    assert response.status_code == 302 and response["Location"] == "/tasks/new"
    assert Task.objects.count() == before  # no empty shell
