"""Collection protocols: the service's checks (targets, durations, cameras of the task
version's embodiments) and the pages that list and create them."""

from itertools import count

import pytest
from django.test import Client

from core.errors import InvalidInput
from core.models import Visibility
from core.services import conditions as condition_services
from core.services import task_versions
from teleop.forms import SessionForm
from teleop.models import CollectionProtocol
from teleop.services import protocols
from tests.core.factories import ARM_SPEC, make_embodiment

pytestmark = pytest.mark.django_db
_levels = count(1)


def _conditions(tw, *levels):
    return [
        condition_services.create_condition(
            actor=tw.admin, team=tw.team, factor="lighting", level=level
        )
        for level in levels
    ]


def _create(world, **changes):
    (bright,) = _conditions(world.a, f"bright-{next(_levels)}")
    fields = {
        "actor": world.a.researcher,
        "team": world.a.team,
        "name": "pick data",
        "targets": [(bright, 10)],
    }
    if "task_version" not in changes:
        fields["task_version"] = world.a.task.versions.get()
    return protocols.create_protocol(**{**fields, **changes})


# --- The service ------------------------------------------------------------------------------


def test_a_researcher_creates_a_protocol_shared_with_another_team(world):
    protocol = _create(
        world,
        required_cameras=["cam_wrist"],
        min_duration_s=2,
        max_duration_s=30,
        visibility=Visibility.SHARED,
        shared_with=[world.b.team],
    )
    assert protocol.required_cameras == ["cam_wrist"]
    assert list(protocol.shared_with.all()) == [world.b.team]
    assert protocol.task_version.is_locked


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"targets": []}, "targets"),
        ({"min_duration_s": 10, "max_duration_s": 5}, "max_duration_s"),
        ({"required_cameras": ["cam_thermal"]}, "required_cameras"),
    ],
)
def test_the_service_refuses_a_broken_protocol_naming_the_field(world, changes, field):
    with pytest.raises(InvalidInput) as refused:
        _create(world, **changes)
    assert field in refused.value.fields
    assert not CollectionProtocol.objects.exists()


def test_a_required_camera_must_be_on_every_allowed_embodiment(world):
    one_camera = make_embodiment(
        world.a.team, world.a.admin, spec={**ARM_SPEC, "cameras": ARM_SPEC["cameras"][:1]}
    )
    task = world.a.task
    version = task_versions.create_task_version(
        actor=world.a.admin,
        task=task,
        instruction="Pick it, on either arm.",
        time_limit_s=60,
        criteria=task.versions.get().criteria,
        allowed_embodiments=[world.a.embodiment, one_camera],
    )
    assert protocols.protocol_cameras(version) == ["cam_high"]
    with pytest.raises(InvalidInput) as refused:
        _create(world, task_version=version, required_cameras=["cam_wrist"])
    assert "cam_wrist" in refused.value.fields["required_cameras"][0]
    assert _create(world, task_version=version, required_cameras=["cam_high"])


# --- The pages --------------------------------------------------------------------------------


def _as(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _form(world, conditions, **changes):
    data = {
        "team": world.a.team.pk,
        "name": "pick data",
        "task_version": world.a.task.versions.get().pk,
        "instructions": "Vary the cube's position.",
        "min_control_hz": "",
        "min_duration_s": "2",
        "max_duration_s": "30",
        "required_cameras": ["cam_high"],
        "visibility": "private",
        "targets-TOTAL_FORMS": "3",
        "targets-INITIAL_FORMS": "0",
        "targets-MIN_NUM_FORMS": "0",
        "targets-MAX_NUM_FORMS": "1000",
    }
    for i, condition in enumerate(conditions):
        data[f"targets-{i}-condition"] = condition.pk
        data[f"targets-{i}-target_count"] = "5"
    return {**data, **changes}


def test_pages_need_sign_in(world):
    for path in ("/protocols/", "/protocols/new"):
        response = _as().get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_form_offers_the_embodiments_cameras_and_other_teams(world):
    page = _as(world.a.researcher).get("/protocols/new").content.decode()
    assert 'type="checkbox" name="required_cameras" value="cam_wrist"' in page
    assert "protocol-cameras" in page  # each version's cameras, for the page script
    assert world.b.team.name in page
    shared_with = page[page.index('data-field="shared_with"') :]
    shared_with = shared_with[: shared_with.index("</fieldset>")]
    assert world.a.team.name not in shared_with  # not offered its own team


def test_the_task_version_in_the_address_is_chosen(world):
    version = world.a.task.versions.get()
    response = _as(world.a.researcher).get(f"/protocols/new?task_version={version.pk}")
    assert response.context["form"]["task_version"].value() == str(version.pk)
    assert f'<option value="{version.pk}" selected>' in response.content.decode()
    junk = _as(world.a.researcher).get("/protocols/new?task_version=nonsense")
    assert junk.status_code == 200
    assert f'<option value="{version.pk}" selected>' not in junk.content.decode()


def test_a_researcher_creates_a_protocol_in_the_page(world):
    bright, dim = _conditions(world.a, "bright", "dim")
    client = _as(world.a.researcher)
    response = client.post("/protocols/new", _form(world, [bright, dim]))
    assert response.status_code == 302 and response["Location"] == "/protocols/"
    protocol = CollectionProtocol.objects.get()
    assert protocol.required_cameras == ["cam_high"] and protocol.max_duration_s == 30
    assert {(t.condition, t.target_count) for t in protocol.targets.all()} == {
        (bright, 5),
        (dim, 5),
    }
    listing = client.get("/protocols/").content.decode()
    assert "pick data" in listing and "lighting: dim ×5" in listing


@pytest.mark.parametrize(
    ("changes", "error_id", "message"),
    [
        ({"min_duration_s": "10", "max_duration_s": "5"}, "id_max_duration_s_error", "below"),
        ({"required_cameras": ["cam_thermal"]}, "id_required_cameras_error", "cam_thermal"),
        (
            {"targets-0-condition": "", "targets-0-target_count": ""},
            "targets_error",
            "at least one condition",
        ),
        ({"targets-0-target_count": ""}, None, "How many accepted episodes"),
        ({"targets-0-condition": ""}, None, "Choose the condition of this target."),
    ],
)
def test_bad_input_is_answered_beside_the_field_and_nothing_is_saved(
    world, changes, error_id, message
):
    (bright,) = _conditions(world.a, "bright")
    data = _form(world, [bright], **changes)
    response = _as(world.a.researcher).post("/protocols/new", data)
    assert response.status_code == 400
    page = response.content.decode()
    if error_id:
        assert f'id="{error_id}"' in page
        page = page[page.index(f'id="{error_id}"') :]
    assert message in page
    assert not CollectionProtocol.objects.exists()


def test_a_refused_protocol_never_reaches_the_operators_menu(world):
    (bright,) = _conditions(world.a, "bright")
    _as(world.a.admin).post(
        "/protocols/new", _form(world, [bright], min_duration_s="10", max_duration_s="5")
    )
    assert not SessionForm(user=world.a.operator).fields["protocol"].queryset.exists()


def test_operators_and_strangers_may_not_create_protocols(world):
    (bright,) = _conditions(world.a, "bright")
    for user in (world.a.operator, world.stranger):
        client = _as(user)
        assert client.get("/protocols/new").status_code == 403
        assert client.post("/protocols/new", _form(world, [bright])).status_code == 403
        assert "New protocol" not in client.get("/protocols/").content.decode()
    assert not CollectionProtocol.objects.exists()


def test_a_researcher_cannot_create_for_another_team(world):
    (bright,) = _conditions(world.a, "bright")
    response = _as(world.b.researcher).post("/protocols/new", _form(world, [bright]))
    assert response.status_code == 400
    assert 'id="id_team_error"' in response.content.decode()
    assert not CollectionProtocol.objects.exists()


def test_another_teams_private_protocol_is_not_listed(world):
    _create(world, name="secret plan")
    assert "secret plan" not in _as(world.b.admin).get("/protocols/").content.decode()
    assert "secret plan" in _as(world.a.operator).get("/protocols/").content.decode()


def test_every_problem_of_the_form_is_answered_at_once(world):
    (bright,) = _conditions(world.a, "bright")
    data = _form(world, [bright], name="", min_duration_s="10", max_duration_s="5")
    response = _as(world.a.researcher).post("/protocols/new", data)
    page = response.content.decode()
    assert 'id="id_name_error"' in page and 'id="id_max_duration_s_error"' in page


def test_the_api_refuses_a_camera_the_embodiment_lacks_naming_the_field(world, api):
    (bright,) = _conditions(world.a, "bright")
    body = {
        "team": world.a.team.slug,
        "name": "pick data",
        "task_version": str(world.a.task.versions.get().pk),
        "required_cameras": ["cam_thermal"],
        "targets": [{"condition": str(bright.pk), "target_count": 5}],
    }
    response = api(world.a.researcher).post("/api/v1/protocols/", body, format="json")
    assert response.status_code == 400
    assert "cam_thermal" in response.json()["fields"]["required_cameras"][0]
    assert not CollectionProtocol.objects.exists()
