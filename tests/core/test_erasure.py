"""Erasing an operator (the right to be forgotten, core/services/erasure.py): afterwards no API
answer, page, audit event, stored field, export or recording names the person; the
pseudonym's episodes stay or go as the team's policy says; another operator's data is
untouched; another team's admin gets 404; nothing happens without the confirmation."""

from __future__ import annotations

import json
import tarfile

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.test import Client

from core.errors import Conflict
from core.models import AuditEvent, DataRequest, Membership, Operator, OperatorIdentity, Team
from core.privacy import CLASSIFICATION
from core.services import data_requests, erasure, operators, teams
from evaluation.models import Trial, TrialReport
from evaluation.services import trials
from teleop import datasets
from teleop.models import DatasetExport, Episode, Label
from teleop.services import labels, sessions
from teleop.views import recording_token
from tests.core.factories import make_user
from tests.evaluation.factories import make_campaign, make_policy_version, robot_actor
from tests.teleop.recordings import ready_episode_row, record_episode, upload_over_api

pytestmark = pytest.mark.django_db
USERNAME, FULL_NAME, EMAIL = "olgakowalska", "Olga Kowalska", "olga.kowalska@example.org"
NEEDLES = (USERNAME, FULL_NAME, EMAIL)


def _names_the_person(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    lowered = text.lower()
    return [needle for needle in NEEDLES if needle.lower() in lowered]


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(world):
    """Team a: operator OP-ER1 (the person to erase: account, name and e-mail) and OP-KEPT
    (another person), each with a session opened by themselves; the person labels an
    episode row (no file) of their session."""
    a = world.a
    person = make_user(a.team, Membership.Role.OPERATOR, username=USERNAME)
    other = make_user(a.team, Membership.Role.OPERATOR, username="pawelnowak")
    erased = operators.create_operator(
        actor=a.admin, team=a.team, code="OP-ER1", user=person, full_name=FULL_NAME, email=EMAIL
    )
    kept = operators.create_operator(
        actor=a.admin,
        team=a.team,
        code="OP-KEPT",
        user=other,
        full_name="Pawel Nowak",
        email="pawel@example.org",
    )
    version = a.task.versions.get()
    mine = sessions.open_session(
        actor=person, robot=a.robot, task_version=version, operator_code=erased.code
    )
    theirs = sessions.open_session(
        actor=other, robot=a.robot, task_version=version, operator_code=kept.code
    )
    return {
        "person": person,
        "other": other,
        "erased": erased,
        "kept": kept,
        "sessions": [mine, theirs],
    }


@pytest.fixture
def scene(api, world, people, tmp_path, settings, django_capture_on_commit_callbacks):
    """`people`, and real episodes: each operator records two (uploaded and processed,
    recordings built); the person labels their own and one of the other's and discards
    one, reports a trial of a campaign; a researcher builds an export of everything."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    a = world.a
    person, other = people["person"], people["other"]
    mine, theirs = people["sessions"]
    client = api(key=a.robot_key)

    def upload(session, name):
        data = record_episode(tmp_path / f"{name}.h5", seconds=1.0, operator=session.operator.code)
        return Episode.objects.get(
            pk=upload_over_api(
                client, session, data.read_bytes(), django_capture_on_commit_callbacks
            )
        )

    own = [upload(mine, "own-1"), upload(mine, "own-2")]
    others = [upload(theirs, "other-1"), upload(theirs, "other-2")]
    with django_capture_on_commit_callbacks(execute=True):
        labels.label_episode(actor=person, episode=own[0], outcome="success")
        labels.label_episode(actor=person, episode=others[0], outcome="failure")
        labels.label_episode(actor=other, episode=others[1], outcome="success")
        labels.discard_episode(actor=person, episode=own[1], reason="camera blocked")
    policy_version = make_policy_version(a)
    campaign = make_campaign(a, policy_versions=[policy_version])
    trial = trials.next_trial(actor=robot_actor(a.robot), campaign=campaign)
    trials.report_trial_result(actor=person, trial=trial, outcome="success", episode=own[0])
    view = datasets.create_view(actor=a.researcher, team=a.team, name="everything")
    with django_capture_on_commit_callbacks(execute=True):
        export = datasets.start_export(
            actor=a.researcher, version=view.versions.get(), format="robomimic", images="none"
        )
    export.refresh_from_db()
    assert export.state == DatasetExport.State.DONE
    for episode in (*own, *others):
        episode.refresh_from_db()
        assert episode.state == "ready" and episode.rerun_file
    assert _names_the_person(_rrd(own[0])) and _names_the_person(_rrd(others[0]))
    return {
        **people,
        "own": own,
        "others": others,
        "campaign": campaign,
        "trial": trial,
        "view": view,
        "export": export,
    }


def _rrd(episode) -> bytes:
    with default_storage.open(episode.rerun_file, "rb") as f:
        return f.read()


def _erase_from_the_page(world, scene, captured):
    page = f"/operators/{scene['erased'].pk}/erase"
    admin = _client(world.a.admin)
    with captured(execute=True):
        response = admin.post(page, {"confirm": scene["erased"].code})
    assert response.status_code == 302, response.content.decode()[:2000]
    return admin


def _api_answers(admin_api, scene) -> list[str]:
    """Every API answer the team's admin gets about the team's operators, sessions,
    episodes (with labels), trials (with reports) and audit trail."""
    paths = ["/api/v1/operators/", "/api/v1/sessions/", "/api/v1/episodes/"]
    paths += [f"/api/v1/sessions/{s.pk}" for s in scene["sessions"]]
    for episode in Episode.objects.all():
        paths += [f"/api/v1/episodes/{episode.pk}", f"/api/v1/episodes/{episode.pk}/labels"]
    paths += [f"/api/v1/trials/?campaign={scene['campaign'].pk}"]
    for trial in Trial.objects.filter(reported_at__isnull=False):
        paths += [f"/api/v1/trials/{trial.pk}", f"/api/v1/trials/{trial.pk}/reports"]
    paths += [f"/api/v1/campaigns/{scene['campaign'].pk}"]
    answers = []
    for path in paths:
        response = admin_api.get(path)
        assert response.status_code == 200, path
        answers.append(path + " " + response.content.decode())
    url = "/api/v1/audit-events/?limit=1000"
    while url:
        body = admin_api.get(url).json()
        answers.append(json.dumps(body))
        url = body.get("next") and body["next"].split("testserver")[1]
    return answers


def _pages(admin, scene) -> list[str]:
    paths = ["/operators/", f"/campaigns/{scene['campaign'].pk}/"]
    paths += [f"/teleop/sessions/{s.pk}/" for s in scene["sessions"]]
    paths += [f"/episodes/{e.pk}/" for e in Episode.objects.all()]
    paths += [f"/trials/{t.pk}/" for t in Trial.objects.filter(reported_at__isnull=False)]
    paths += ["/episodes/", f"/datasets/{scene['view'].pk}/"]
    pages = []
    for path in paths:
        response = admin.get(path)
        assert response.status_code == 200, path
        pages.append(path + " " + response.content.decode())
    return pages


def _every_stored_field() -> list[str]:
    """Every row of every classified model, as text (the audit trail among them)."""
    from django.apps import apps

    rows = []
    for label in CLASSIFICATION:
        model = apps.get_model(label)
        for row in model.objects.values():
            rows.append(f"{label} {row}")
    return rows


def _export_bytes(world, scene, captured) -> list[bytes]:
    """Every finished export's file, and one built after the erasure."""
    with captured(execute=True):
        datasets.start_export(
            actor=world.a.researcher,
            version=scene["view"].versions.order_by("-number").first(),
            format="lerobot",
        )
    found = []
    for export in DatasetExport.objects.filter(state=DatasetExport.State.DONE):
        with default_storage.open(export.file, "rb") as f:
            data = f.read()
        if export.format == DatasetExport.Format.LEROBOT:
            with tarfile.open(fileobj=default_storage.open(export.file, "rb")) as tar:
                for member in tar.getmembers():
                    if member.isfile():
                        data += tar.extractfile(member).read()
        found.append(data)
    assert len(found) == 2
    return found


@pytest.mark.slow  # four real episodes processed and replayed: ~50 s
def test_after_erasure_nothing_names_the_person_and_the_rest_stays_as_it_was(
    world, api, scene, django_capture_on_commit_callbacks
):
    other_label = Label.objects.get(episode=scene["others"][1])
    other_key = Episode.objects.get(pk=scene["others"][1].pk).rerun_file
    old_keys = {e.pk: e.rerun_file for e in (scene["own"][0], scene["others"][0])}
    old_tokens = {pk: recording_token(Episode.objects.get(pk=pk)) for pk in old_keys}
    admin = _erase_from_the_page(world, scene, django_capture_on_commit_callbacks)

    found = []
    for text in _api_answers(api(world.a.admin), scene):
        found += [(text[:120], n) for n in _names_the_person(text)]
    for text in _pages(admin, scene):
        found += [(text[:120], n) for n in _names_the_person(text)]
    for text in _every_stored_field():
        found += [(text[:120], n) for n in _names_the_person(text)]
    for data in _export_bytes(world, scene, django_capture_on_commit_callbacks):
        found += [("export", n) for n in _names_the_person(data)]
    for episode in Episode.objects.exclude(rerun_file=""):
        found += [(f"recording {episode.pk}", n) for n in _names_the_person(_rrd(episode))]
    assert not found, found

    # The recordings that named the person were rebuilt under new keys; the old objects and
    # the replay links handed out before are gone.
    for pk, old_key in old_keys.items():
        episode = Episode.objects.get(pk=pk)
        assert episode.rerun_file and episode.rerun_file != old_key
        assert not default_storage.exists(old_key)
        response = Client().get(f"/episodes/{pk}/recording.rrd?token={old_tokens[pk]}")
        assert response.status_code == 404
        assert b"operator:OP-ER1" in _rrd(episode)

    # The account, its memberships and the identity are gone; the pseudonym stays, inactive.
    assert not get_user_model().objects.filter(username=USERNAME).exists()
    assert not Membership.objects.filter(user_id=scene["person"].pk).exists()
    operator = Operator.objects.get(pk=scene["erased"].pk)
    assert operator.user_id is None and not operator.active
    assert not OperatorIdentity.objects.filter(operator=operator).exists()
    # What stays says the erasure happened, when, by whom, for which pseudonym.
    event = AuditEvent.objects.get(action=AuditEvent.Action.ERASE, object_id=str(operator.pk))
    assert event.actor_user == world.a.admin and event.object_repr == "OP-ER1"
    assert event.after["erased"] == "OP-ER1" and event.after["episodes"] == "kept"
    # The labels and the trial report name the pseudonym.
    assert Label.objects.filter(labeler_label="operator:OP-ER1").count() == 2
    assert TrialReport.objects.get(trial=scene["trial"]).reporter_label == "operator:OP-ER1"
    assert Trial.objects.get(pk=scene["trial"].pk).reported_by == "operator:OP-ER1"

    # Policy keep: the pseudonym's episodes stay. The other person: account, identity,
    # labels and recording as they were; the export as built (it never held names).
    assert Episode.objects.filter(operator=scene["erased"]).count() == 2
    assert Episode.objects.get(pk=scene["own"][1].pk).discarded_by == "operator:OP-ER1"
    assert get_user_model().objects.filter(pk=scene["other"].pk, is_active=True).exists()
    identity = OperatorIdentity.objects.get(operator=scene["kept"])
    assert identity.full_name == "Pawel Nowak"
    assert Label.objects.get(pk=other_label.pk).labeler_label == "user:pawelnowak"
    assert Episode.objects.get(pk=scene["others"][1].pk).rerun_file == other_key
    assert DatasetExport.objects.get(pk=scene["export"].pk).state == DatasetExport.State.DONE
    assert Operator.objects.get(pk=scene["kept"].pk).user_id == scene["other"].pk


@pytest.mark.slow  # four real episodes processed and replayed: ~50 s
def test_policy_delete_deletes_the_pseudonyms_episodes_and_marks_exports_stale(
    world, scene, django_capture_on_commit_callbacks
):
    erasure.set_erased_episodes(
        actor=world.a.admin, team=world.a.team, policy=Team.ErasedEpisodes.DELETE
    )
    own = scene["own"]
    files = [Episode.objects.get(pk=e.pk).file for e in own]
    export_file = scene["export"].file
    _erase_from_the_page(world, scene, django_capture_on_commit_callbacks)
    assert not Episode.objects.filter(operator=scene["erased"]).exists()
    assert not any(default_storage.exists(key) for key in files)
    assert not default_storage.exists(export_file)
    export = DatasetExport.objects.get(pk=scene["export"].pk)
    assert export.state == DatasetExport.State.STALE and not export.file
    version = scene["view"].versions.get()
    assert not set(version.episode_ids) & {str(e.pk) for e in own}
    # The trial keeps its outcome without the episode; the other operator's episodes stay.
    trial = Trial.objects.get(pk=scene["trial"].pk)
    assert trial.outcome == "success" and trial.episode_id is None
    assert Episode.objects.filter(operator=scene["kept"]).count() == 2


def test_the_page_says_what_will_happen_and_erases_only_with_the_code_typed(world, people):
    labels.label_episode(
        actor=people["person"], episode=ready_episode_row(people["sessions"][0]), outcome="success"
    )
    admin = _client(world.a.admin)
    page = f"/operators/{people['erased'].pk}/erase"
    asked = admin.get(page)
    text = asked.content.decode()
    assert asked.status_code == 200 and "cannot be undone" in text
    assert "Episodes recorded under the pseudonym: <strong>1</strong>, kept" in text
    assert "Labels naming the person: <strong>1</strong>" in text
    assert "Sessions naming the person: <strong>1</strong>" in text
    events_before = AuditEvent.objects.count()
    for body in ({}, {"confirm": "yes"}, {"confirm": "OP-KEPT"}):
        refused = admin.post(page, body)
        assert refused.status_code == 400
        assert "Nothing was erased" in refused.content.decode()
    assert OperatorIdentity.objects.filter(operator=people["erased"]).exists()
    assert get_user_model().objects.filter(username=USERNAME).exists()
    assert AuditEvent.objects.count() == events_before
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.ERASE).exists()


def test_search_finds_operators_by_part_of_a_code_name_or_email_in_any_case(world, people):
    admin = _client(world.a.admin)
    for query in ("er1", "KOWALSKA", "olga.kowalska@EXAMPLE", "olgak"):
        text = admin.get("/operators/", {"q": query}).content.decode()
        assert "OP-ER1" in text and "OP-KEPT" not in text, query
    assert "OP-KEPT" in admin.get("/operators/", {"q": "nowak"}).content.decode()


def test_another_teams_admin_gets_404_and_members_who_do_not_manage_cannot_erase(
    world, api, people
):
    operator = people["erased"]
    stranger = _client(world.b.admin)
    assert stranger.get(f"/operators/{operator.pk}/erase").status_code == 404
    response = stranger.post(f"/operators/{operator.pk}/erase", {"confirm": operator.code})
    assert response.status_code == 404
    url = f"/api/v1/operators/{operator.pk}/erasure"
    assert api(world.b.admin).get(url).status_code == 404
    assert api(world.b.admin).post(url, {"confirm": operator.code}).status_code == 404
    assert api(world.a.researcher).post(url, {"confirm": operator.code}).status_code == 403
    assert _client(world.a.researcher).get(f"/operators/{operator.pk}/erase").status_code == 404
    assert OperatorIdentity.objects.filter(operator=operator).exists()


def test_the_api_previews_then_erases_once_confirmed(world, api, people):
    url = f"/api/v1/operators/{people['erased'].pk}/erasure"
    client = api(world.a.admin)
    data_requests.request_access(actor=world.a.admin, operator=people["erased"])
    membership = Membership.objects.get(user=people["person"])
    LogEntry.objects.create(  # the Django admin's own log, of an admin adding the membership
        user=world.a.admin,
        content_type=ContentType.objects.get_for_model(Membership),
        object_id=str(membership.pk),
        object_repr=str(membership),
        action_flag=ADDITION,
    )
    preview = client.get(url).json()
    assert preview["erased"] is False and preview["episodes"] == "keep"
    assert any(s["what"] == "sessions naming the person" for s in preview["steps"])
    refused = client.post(url, {"confirm": "nope"}, format="json")
    assert refused.status_code == 400 and refused.json()["fields"]["confirm"]
    assert OperatorIdentity.objects.filter(operator=people["erased"]).exists()
    done = client.post(url, {"confirm": "OP-ER1"}, format="json")
    assert done.status_code == 200 and done.json()["erased"] is True
    assert not OperatorIdentity.objects.filter(operator=people["erased"]).exists()
    # The access archive held the identity: the request is gone with it.
    assert not DataRequest.objects.filter(operator=people["erased"]).exists()
    assert not LogEntry.objects.filter(object_repr__icontains=USERNAME).exists()


def test_an_account_another_team_uses_is_only_a_superusers_to_erase(world, people):
    teams.add_member(
        actor=None, team=world.b.team, user=people["person"], role=Membership.Role.OPERATOR
    )
    text = _client(world.a.admin).get(f"/operators/{people['erased'].pk}/erase").content.decode()
    assert "also belongs to another team" in text
    with pytest.raises(Conflict):
        erasure.erase_operator(actor=world.a.admin, operator=people["erased"])
    assert get_user_model().objects.filter(username=USERNAME).exists()
