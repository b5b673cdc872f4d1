"""Dataset views and exports over their life: a new version from the view's page, archive
and unarchive (pages and API), delete an export with its file (pages and API), and the
robomimic default a training script would pick (84x84 images, gzip a frame at a time)."""

import h5py
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from core.models import AuditEvent
from teleop import datasets
from teleop.models import DatasetExport, DatasetView, Episode, Label
from tests.teleop.recordings import ready_episode_row
from tests.teleop.test_datasets import ready_episodes  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def view(world, session):
    labelled = ready_episode_row(session)
    ready_episode_row(session)
    Label.objects.create(episode=labelled, outcome="success", labeler_label="t")
    return datasets.create_view(
        actor=world.a.researcher,
        team=world.a.team,
        name="successes",
        filters={"outcome": "success"},
    )


def _done_export(view) -> DatasetExport:
    export = DatasetExport.objects.create(
        view_version=view.versions.get(), format="robomimic", created_by="t"
    )
    key = default_storage.save(f"exports/{export.pk}.hdf5", ContentFile(b"bytes"))
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.DONE, file=key)
    export.refresh_from_db()
    return export


# --- A new version from the page ---------------------------------------------------------------


def test_the_view_page_saves_changed_filters_and_additions_as_a_new_version(world, session, view):
    extra = ready_episode_row(session)
    client = _client(world.a.researcher)
    page = client.get(f"/datasets/{view.pk}/").content.decode()
    assert "Save as v2" in page
    assert '<option value="success" selected>' in page  # starts from v1's filters
    response = client.post(
        f"/datasets/{view.pk}/versions", {"outcome": "success", "includes": str(extra.pk)}
    )
    assert response.status_code == 302
    latest = view.versions.order_by("-number").first()
    assert latest.number == 2 and latest.includes == [str(extra.pk)]
    assert str(extra.pk) in latest.episode_ids and len(latest.episode_ids) == 2
    assert latest.filters == {"outcome": "success"}

    same = client.post(
        f"/datasets/{view.pk}/versions",
        {"outcome": "success", "includes": str(extra.pk)},
        follow=True,
    )
    assert "Nothing changed" in same.content.decode()
    assert view.versions.count() == 2


def test_a_bad_new_version_is_answered_beside_the_field_and_saves_nothing(world, session, view):
    client = _client(world.a.researcher)
    not_an_id = client.post(f"/datasets/{view.pk}/versions", {"includes": "nonsense"})
    assert not_an_id.status_code == 400
    assert 'id="id_includes_error"' in not_an_id.content.decode()
    assert "Not an episode id: nonsense" in not_an_id.content.decode()
    unknown = "00000000-0000-0000-0000-000000000000"
    missing = client.post(f"/datasets/{view.pk}/versions", {"includes": unknown})
    assert missing.status_code == 400
    assert "must be ready episodes of the team" in missing.content.decode()
    assert view.versions.count() == 1


def test_only_authors_see_and_use_the_new_version_form(world, view):
    operator = _client(world.a.operator)
    assert "Save as v2" not in operator.get(f"/datasets/{view.pk}/").content.decode()
    operator.post(f"/datasets/{view.pk}/versions", {"outcome": "failure"})
    assert view.versions.count() == 1
    assert _client(world.b.admin).post(f"/datasets/{view.pk}/versions").status_code == 404


# --- Archive -----------------------------------------------------------------------------------


def test_an_archived_view_leaves_the_list_until_shown_and_comes_back_unarchived(world, view):
    client = _client(world.a.researcher)
    client.post(f"/datasets/{view.pk}/archive", {"archive": "1"})
    view.refresh_from_db()
    assert view.archived_at is not None
    link = f'href="/datasets/{view.pk}/"'
    listed = client.get("/datasets/").content.decode()
    assert link not in listed and "Show archived views (1)" in listed
    shown = client.get("/datasets/?archived=1").content.decode()
    assert link in shown and "archived</span>" in shown
    assert "Unarchive" in client.get(f"/datasets/{view.pk}/").content.decode()
    client.post(f"/datasets/{view.pk}/archive", {"archive": "0"})
    view.refresh_from_db()
    assert view.archived_at is None
    assert link in client.get("/datasets/").content.decode()
    actions = list(
        AuditEvent.objects.filter(object_id=str(view.pk)).values_list("action", flat=True)
    )
    assert "archive" in actions and "unarchive" in actions


def test_an_operator_cannot_archive_and_another_team_cannot_reach_the_view(world, view):
    _client(world.a.operator).post(f"/datasets/{view.pk}/archive", {"archive": "1"})
    view.refresh_from_db()
    assert view.archived_at is None
    assert _client(world.b.admin).post(f"/datasets/{view.pk}/archive").status_code == 404


def test_the_api_archives_lists_without_archived_and_unarchives(api, world, view):
    client = api(world.a.researcher)
    archived = client.post(f"/api/v1/dataset-views/{view.pk}/archive")
    assert archived.status_code == 200 and archived.json()["archived_at"]
    assert client.get("/api/v1/dataset-views/").json()["count"] == 0
    everything = client.get("/api/v1/dataset-views/?include_archived=true").json()
    assert [v["id"] for v in everything["results"]] == [str(view.pk)]
    assert client.get(f"/api/v1/dataset-views/{view.pk}/").status_code == 200
    back = client.post(f"/api/v1/dataset-views/{view.pk}/unarchive")
    assert back.status_code == 200 and back.json()["archived_at"] is None
    assert api(world.a.operator).post(f"/api/v1/dataset-views/{view.pk}/archive").status_code == 403
    assert DatasetView.objects.get(pk=view.pk).archived_at is None


# --- Delete an export --------------------------------------------------------------------------


def test_deleting_an_export_asks_first_then_removes_the_row_and_its_file(
    world, view, django_capture_on_commit_callbacks
):
    export = _done_export(view)
    client = _client(world.a.researcher)
    assert "Delete…" in client.get(f"/datasets/{view.pk}/").content.decode()
    asked = client.post(f"/exports/{export.pk}/delete")
    assert asked.status_code == 200 and "cannot be undone" in asked.content.decode()
    assert DatasetExport.objects.filter(pk=export.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):  # the file goes after commit
        done = client.post(f"/exports/{export.pk}/delete", {"confirm": "yes"})
    assert done.status_code == 302
    assert not DatasetExport.objects.filter(pk=export.pk).exists()
    assert not default_storage.exists(export.file)
    event = AuditEvent.objects.get(action="delete", object_id=str(export.pk))
    assert event.before["file"] == export.file


def test_an_export_being_built_is_not_deleted_and_operators_cannot_delete(api, world, view):
    export = _done_export(view)
    assert api(world.a.operator).delete(f"/api/v1/exports/{export.pk}/").status_code == 403
    _client(world.a.operator).post(f"/exports/{export.pk}/delete", {"confirm": "yes"})
    assert DatasetExport.objects.filter(pk=export.pk).exists()
    queued = DatasetExport.objects.create(
        view_version=view.versions.get(), format="robomimic", created_by="t"
    )
    refused = api(world.a.researcher).delete(f"/api/v1/exports/{queued.pk}/")
    assert refused.status_code == 409 and "still being built" in refused.json()["detail"]
    assert api(world.b.admin).delete(f"/api/v1/exports/{export.pk}/").status_code == 404


def test_the_api_deletes_an_export_and_its_file(
    api, world, view, django_capture_on_commit_callbacks
):
    export = _done_export(view)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(world.a.researcher).delete(f"/api/v1/exports/{export.pk}/")
    assert response.status_code == 204
    assert not DatasetExport.objects.filter(pk=export.pk).exists()
    assert not default_storage.exists(export.file)


# --- The robomimic default -----------------------------------------------------------------------


def test_an_export_defaults_to_84x84_gzip_and_the_api_takes_a_size(api, world, view):
    client = api(world.a.researcher)
    url = f"/api/v1/dataset-view-versions/{view.versions.get().pk}/exports"
    default = client.post(url, {"format": "robomimic"}, format="json").json()
    assert (default["images"], default["image_size"]) == ("gzip", 84)
    native = client.post(url, {"format": "robomimic", "image_size": None}, format="json").json()
    assert native["image_size"] is None
    lzf = client.post(url, {"format": "robomimic", "images": "lzf", "image_size": 128}).json()
    assert (lzf["images"], lzf["image_size"]) == ("lzf", 128)
    lerobot = client.post(url, {"format": "lerobot"}).json()
    assert (lerobot["images"], lerobot["image_size"]) == ("raw", None)
    too_big = client.post(url, {"format": "robomimic", "image_size": 4096})
    assert too_big.status_code == 400 and "image_size" in too_big.json()["fields"]


def test_the_export_form_chooses_size_and_compression(world, view):
    client = _client(world.a.researcher)
    page = client.get(f"/datasets/{view.pk}/").content.decode()
    assert '<option value="84" selected>' in page and '<option value="gzip" selected>' in page
    client.post(
        f"/datasets/{view.pk}/", {"format": "robomimic", "image_size": "128", "images": "lzf"}
    )
    client.post(
        f"/datasets/{view.pk}/", {"format": "robomimic", "image_size": "native", "images": "raw"}
    )
    made = list(DatasetExport.objects.order_by("created_at").values_list("image_size", "images"))
    assert made == [(128, "lzf"), (None, "raw")]


@pytest.mark.slow
def test_a_default_robomimic_export_holds_84x84_images_gzipped_a_frame_a_chunk(
    api,
    world,
    ready_episodes,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="train")
    with django_capture_on_commit_callbacks(execute=True):
        response = api(world.a.researcher).post(
            f"/api/v1/dataset-view-versions/{view.versions.get().pk}/exports",
            {"format": "robomimic"},
        )
    export = DatasetExport.objects.get(pk=response.json()["id"])
    assert export.state == "done", export.error
    with default_storage.open(export.file) as stored, h5py.File(stored, "r") as f:
        images = [ds for ds in f["data/demo_0/obs"].values() if ds.name.endswith("_image")]
        assert images
        for ds in images:
            assert ds.shape[1:] == (84, 84, 3) and ds.chunks == (1, 84, 84, 3)
            assert ds.compression == "gzip" and ds.compression_opts == 4
    assert Episode.objects.count() == 3
