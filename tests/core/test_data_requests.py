"""The right of access: an operator's archive (`pg-access/1`) holds their data and nobody
else's, is downloaded once by whoever asked, expires, and every step is audited
(docs/privacy.md, "Access and portability")."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.utils import timezone

from core import access_archive
from core.models import AuditEvent, DataRequest
from core.services import data_requests, operators
from evaluation.services import trials
from teleop.services import labels, sessions
from tests.evaluation.factories import make_campaign, make_policy_version
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def immediate(settings):
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@pytest.fixture
def people(world):
    """Olga (team a's operator account, linked to OP-OLGA, with an identity) and Otto
    (another operator of team a, OP-OTTO): each recorded an episode and labelled it; Olga
    also scored an evaluation trial."""
    from tests.core.factories import make_user

    olga = world.a.operator
    otto = make_user(world.a.team, "operator", username="otto")
    found = {}
    for user, code, name in [(olga, "OP-OLGA", "Olga Example"), (otto, "OP-OTTO", "Otto Other")]:
        operator = operators.create_operator(
            actor=world.a.admin,
            team=world.a.team,
            code=code,
            user=user,
            full_name=name,
            email=f"{user.username}@example.org",
            consent_version="v3",
        )
        session = sessions.open_session(
            actor=user,
            robot=world.a.robot,
            task_version=world.a.task.versions.get(),
            operator_code=code,
        )
        episode = ready_episode_row(session)
        labels.label_episode(
            actor=user, episode=episode, outcome="success", notes=f"note by {user.username}"
        )
        found[code] = (operator, session, episode)
    campaign = make_campaign(world.a, policy_versions=[make_policy_version(world.a)])
    trial = trials.next_trial_for_robot(actor=olga, campaign=campaign, robot=world.a.robot)
    trials.report_trial_result(actor=olga, trial=trial, outcome="success", notes="olga scored")
    return {"olga": olga, "otto": otto, **found, "trial": trial}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _build(api, user, operator, django_capture_on_commit_callbacks, **extra) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        answer = api(user).post(
            "/api/v1/data-requests/", {"operator": str(operator.pk), **extra}, format="json"
        )
    assert answer.status_code == 201, answer.json()
    return api(user).get(f"/api/v1/data-requests/{answer.json()['id']}/").json()


def _download(client, request_id):
    answer = client.get(f"/api/v1/data-requests/{request_id}/download")
    content = b"".join(answer.streaming_content) if answer.status_code == 200 else b""
    return answer, content


def _tables(content: bytes) -> tuple[dict, dict[str, str]]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        files = {name.split("/", 1)[1]: archive.read(name).decode() for name in archive.namelist()}
    return json.loads(files["data.json"])["tables"], files


def test_the_archive_holds_exactly_the_operators_data(
    api, world, people, immediate, django_capture_on_commit_callbacks
):
    olga_op, olga_session, olga_episode = people["OP-OLGA"]
    _, otto_session, otto_episode = people["OP-OTTO"]
    made = _build(api, world.a.admin, olga_op, django_capture_on_commit_callbacks)
    assert (made["state"], made["progress"], made["operator"]) == ("ready", 100, "OP-OLGA")
    assert made["download_url"].endswith(f"/api/v1/data-requests/{made['id']}/download")

    answer, content = _download(api(world.a.admin), made["id"])
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/zip"
    assert 'filename="pg-access-OP-OLGA.zip"' in answer["Content-Disposition"]
    tables, files = _tables(content)

    assert tables["identity"][0]["full_name"] == "Olga Example"
    assert tables["identity"][0]["email"] == f"{people['olga'].username}@example.org"
    assert tables["identity"][0]["consent_version"] == "v3"
    assert tables["account"][0]["username"] == people["olga"].username
    assert [m["role"] for m in tables["memberships"]] == ["operator"]
    assert [s["id"] for s in tables["sessions"]] == [str(olga_session.pk)]
    assert [e["id"] for e in tables["episodes"]] == [str(olga_episode.pk)]
    assert tables["episodes"][0]["licence"] == "internal"
    assert tables["episodes"][0]["outcome"] == "success"
    assert [(label["episode"], label["notes"]) for label in tables["labels_given"]] == [
        (str(olga_episode.pk), f"note by {people['olga'].username}")
    ]
    assert [t["id"] for t in tables["trials"]] == [str(people["trial"].pk)]
    assert "policy_version" not in tables["trials"][0]  # aliases only: no unblinding
    assert [r["notes"] for r in tables["trial_reports_given"]] == ["olga scored"]
    assert tables["session_quality"][0]["episodes"] == 1
    assert tables["session_quality"][0]["acceptance_rate"] == 1.0
    assert {e["relation"] for e in tables["audit_events"]} == {"about_you", "by_you"}

    # Nobody else's data: not Otto's pseudonym, name, account, session, episode or label.
    everything = "\n".join(files.values())
    for theirs in [
        "OP-OTTO",
        "Otto Other",
        "otto@example.org",
        "note by otto",
        str(otto_session.pk),
        str(otto_episode.pk),
        f"user:{world.a.admin.username}",
        world.a.admin.username,
    ]:
        assert theirs not in everything, theirs

    # Every table as CSV too, described in the README, listed in the manifest.
    manifest = json.loads(files["manifest.json"])
    assert manifest["schema"] == access_archive.SCHEMA == "pg-access/1"
    for name, rows in tables.items():
        parsed = list(csv.DictReader(io.StringIO(files[f"{name}.csv"])))
        assert len(parsed) == len(rows) == manifest["tables"][name]["rows"]
        assert f"## {name}" in files["README.md"]


def test_it_is_downloaded_once_by_whoever_asked_then_gone(
    api, world, people, immediate, django_capture_on_commit_callbacks
):
    made = _build(api, world.a.admin, people["OP-OLGA"][0], django_capture_on_commit_callbacks)
    request = DataRequest.objects.get(pk=made["id"])
    key = request.file
    assert default_storage.exists(key)
    # Olga sees the request about her, but only the admin who asked may download it.
    assert api(people["olga"]).get(f"/api/v1/data-requests/{made['id']}/").status_code == 200
    assert _download(api(people["olga"]), made["id"])[0].status_code == 403

    first, _ = _download(api(world.a.admin), made["id"])
    assert first.status_code == 200
    assert not default_storage.exists(key)  # deleted once sent
    second, _ = _download(api(world.a.admin), made["id"])
    assert second.status_code == 410
    assert second.json()["error"] == "gone"
    assert api(world.a.admin).get(f"/api/v1/data-requests/{made['id']}/").json()["state"] == (
        "downloaded"
    )
    # The page's link answers the same.
    page = _client(world.a.admin).get(f"/data-requests/{made['id']}/download")
    assert page.status_code == 410


def test_an_archive_expires_and_is_deleted(
    api, world, people, immediate, django_capture_on_commit_callbacks
):
    made = _build(api, world.a.admin, people["OP-OLGA"][0], django_capture_on_commit_callbacks)
    other = _build(api, world.a.admin, people["OP-OLGA"][0], django_capture_on_commit_callbacks)
    past = timezone.now() - timedelta(seconds=1)
    DataRequest.objects.filter(pk__in=[made["id"], other["id"]]).update(expires_at=past)
    keys = [DataRequest.objects.get(pk=pk).file for pk in (made["id"], other["id"])]

    # On access: 410, and the file is gone.
    assert _download(api(world.a.admin), made["id"])[0].status_code == 410
    assert not default_storage.exists(keys[0])
    # By the job system's cleanup.
    from core.jobs import requeue_lost_work

    assert requeue_lost_work(grace_s=0)["expire_access_archives"] == 1
    assert not default_storage.exists(keys[1])
    assert set(DataRequest.objects.values_list("state", flat=True)) == {"expired"}


def test_every_step_is_audited_without_personal_data(
    api, world, people, immediate, django_capture_on_commit_callbacks
):
    made = _build(api, world.a.admin, people["OP-OLGA"][0], django_capture_on_commit_callbacks)
    _download(api(world.a.admin), made["id"])
    events = AuditEvent.objects.filter(object_type="core.datarequest", object_id=made["id"])
    assert [e.after["step"] for e in events.order_by("created_at", "id")] == [
        "requested",
        "built",
        "downloaded",
    ]
    for event in events:
        text = json.dumps(event.after) + event.object_repr
        assert "Olga" not in text and "example.org" not in text
        assert people["olga"].username not in text
        assert event.after["operator"] == "OP-OLGA"


def test_an_operator_asks_for_their_own_archive_but_not_anothers(
    api, world, people, immediate, django_capture_on_commit_callbacks
):
    olga = people["olga"]
    made = _build(api, olga, people["OP-OLGA"][0], django_capture_on_commit_callbacks)
    assert made["requested_by_you"] is True
    answer, content = _download(api(olga), made["id"])
    assert answer.status_code == 200
    assert _tables(content)[0]["data_requests"][0]["requested_by"] == "you"

    refused = api(olga).post(
        "/api/v1/data-requests/", {"operator": str(people["OP-OTTO"][0].pk)}, format="json"
    )
    assert refused.status_code == 403
    assert (
        api(world.a.researcher)
        .post("/api/v1/data-requests/", {"operator": str(people["OP-OLGA"][0].pk)}, format="json")
        .status_code
        == 403
    )
    # Otto does not see Olga's request.
    assert api(people["otto"]).get(f"/api/v1/data-requests/{made['id']}/").status_code == 404


def test_another_teams_admin_gets_404_everywhere(
    api, world, people, immediate, django_capture_on_commit_callbacks
):
    operator = people["OP-OLGA"][0]
    made = _build(api, world.a.admin, operator, django_capture_on_commit_callbacks)
    outsider = api(world.b.admin)
    answer = outsider.post("/api/v1/data-requests/", {"operator": str(operator.pk)}, format="json")
    assert answer.status_code == 404
    assert outsider.get(f"/api/v1/data-requests/{made['id']}/").status_code == 404
    assert outsider.get(f"/api/v1/data-requests/{made['id']}/download").status_code == 404
    assert outsider.get("/api/v1/data-requests/").json()["results"] == []
    page = _client(world.b.admin)
    assert page.get(f"/data-requests/{made['id']}/download").status_code == 404
    assert "OP-OLGA" not in page.get("/data-requests/").content.decode()
    assert page.post("/data-requests/", {"operator": "OP-OLGA"}).status_code == 400
    assert DataRequest.objects.count() == 1


def test_admins_answer_a_request_from_the_page_with_files(
    world, people, immediate, django_capture_on_commit_callbacks
):
    episode = people["OP-OLGA"][2]
    default_storage.save("episodes/test/olga.h5", io.BytesIO(b"HDF5 bytes of olga"))
    type(episode).objects.filter(pk=episode.pk).update(file="episodes/test/olga.h5")
    admin = _client(world.a.admin)
    page = admin.get("/data-requests/?operator=OP-OLGA")
    assert page.status_code == 200 and "Olga Example" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        posted = admin.post("/data-requests/", {"operator": "OP-OLGA", "include_files": "on"})
    assert posted.status_code == 302
    rows = admin.get("/data-requests/rows").content.decode()
    assert "Download once" in rows
    request = DataRequest.objects.get()
    answer = admin.get(f"/data-requests/{request.pk}/download")
    content = b"".join(answer.streaming_content)
    tables, files = _tables(content)
    assert files[f"files/episodes/{episode.pk}.h5"] == "HDF5 bytes of olga"
    assert tables["episodes"][0]["file_in_archive"] == f"files/episodes/{episode.pk}.h5"
    assert [e["id"] for e in tables["episodes"]] == [str(episode.pk)]


def test_my_data_page_builds_the_operators_own_archive(
    world, people, immediate, django_capture_on_commit_callbacks
):
    olga = _client(people["olga"])
    page = olga.get("/me/data")
    assert page.status_code == 200 and "OP-OLGA" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert olga.post("/me/data", {"operator": "OP-OLGA"}).status_code == 302
    # Posting another operator's code changes nothing: the page asks for one's own only.
    with django_capture_on_commit_callbacks(execute=True):
        olga.post("/me/data", {"operator": "OP-OTTO"})
    assert list(DataRequest.objects.values_list("operator__code", flat=True)) == ["OP-OLGA"]
    assert "Download once" in olga.get("/data-requests/rows?mine=1").content.decode()
    # Not an admin: the admins' page is refused.
    assert olga.get("/data-requests/").status_code == 403


def test_a_build_that_fails_says_so_and_is_not_downloadable(api, world, people, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("/secret/path is full")

    monkeypatch.setattr(access_archive, "write_archive", broken)
    request = data_requests.request_access(actor=world.a.admin, operator=people["OP-OLGA"][0])
    with pytest.raises(OSError):
        data_requests.build_archive(request_id=request.pk)
    request.refresh_from_db()
    assert request.state == "failed" and "/secret" not in request.error
    assert _download(api(world.a.admin), request.pk)[0].status_code == 410


def test_a_build_whose_job_was_lost_is_queued_again(world, people, settings):
    from core.jobs import requeue_lost_work

    request = data_requests.request_access(actor=world.a.admin, operator=people["OP-OLGA"][0])
    DataRequest.objects.filter(pk=request.pk).update(
        created_at=timezone.now() - timedelta(minutes=5)
    )
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    assert requeue_lost_work(grace_s=60)["access_archives_unfinished"] == 1
    request.refresh_from_db()
    assert request.state == "ready" and default_storage.exists(request.file)
