"""Dataset views and exports through the services, the job, the API and the command."""

import hashlib
import tarfile
import uuid
from io import StringIO

import h5py
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

from core.errors import InvalidInput, NotPermitted
from teleop import datasets
from teleop.models import DatasetExport, Episode
from teleop.services import labels
from tests.teleop.recordings import ready_episode_row, record_episode

pytestmark = pytest.mark.django_db
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}


@pytest.fixture
def ready_episodes(api, world, session, tmp_path, settings, django_capture_on_commit_callbacks):
    """Three real episodes uploaded and processed; two labelled success, one failure."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    client = api(key=world.a.robot_key)
    episodes = []
    for i, outcome in enumerate(["success", "success", "failure"]):
        data = record_episode(tmp_path / f"e{i}.h5", seconds=1.0).read_bytes()
        body = {
            "id": str(uuid.uuid4()),
            "session": str(session.pk),
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        url = client.post("/api/v1/episodes/", body).json()["upload_url"].split("testserver")[1]
        with django_capture_on_commit_callbacks(execute=True):
            client.generic(
                "PATCH",
                url,
                data=data,
                content_type="application/offset+octet-stream",
                HTTP_UPLOAD_OFFSET="0",
                **TUS,
            )
            episode = Episode.objects.get(pk=body["id"])
            labels.label_episode(actor=world.a.operator, episode=episode, outcome=outcome)
        episode.refresh_from_db()
        assert episode.state == "ready" and episode.rerun_file
        episodes.append(episode)
    return episodes


def test_a_view_version_freezes_the_episodes_its_filters_resolved_to(world, ready_episodes):
    view = datasets.create_view(
        actor=world.a.researcher, team=world.a.team, name="wins", filters={"outcome": "success"}
    )
    first = view.versions.get()
    assert first.episode_ids == [str(e.pk) for e in ready_episodes[:2]]
    labels.label_episode(actor=world.a.operator, episode=ready_episodes[2], outcome="success")
    first.refresh_from_db()
    assert len(first.episode_ids) == 2  # a version never changes
    second = datasets.create_view_version(
        actor=world.a.researcher,
        view=view,
        filters={"outcome": "success"},
        excludes=[ready_episodes[0].pk],
    )
    assert second.number == 2
    assert second.episode_ids == [str(e.pk) for e in ready_episodes[1:]]


def test_operators_cannot_curate_and_bad_definitions_are_refused(world, ready_episodes):
    with pytest.raises(NotPermitted):
        datasets.create_view(actor=world.a.operator, team=world.a.team, name="x")
    with pytest.raises(InvalidInput):
        datasets.create_view(
            actor=world.a.researcher, team=world.a.team, name="x", filters={"colour": "red"}
        )
    with pytest.raises(InvalidInput):
        datasets.create_view(
            actor=world.a.researcher,
            team=world.a.team,
            name="x",
            trims={str(ready_episodes[0].pk): [0.5, 0.1]},
        )


@pytest.mark.slow
def test_export_job_builds_both_formats_and_they_download_over_the_api(
    api, world, ready_episodes, django_capture_on_commit_callbacks
):
    client = api(world.a.researcher)
    view = client.post(
        "/api/v1/dataset-views/",
        {
            "team": world.a.team.slug,
            "name": "all",
            "filters": {},
            "trims": {str(ready_episodes[0].pk): [0.0, 0.5]},
        },
    ).json()
    version_id = view["latest_version"]["id"]
    for format in ("robomimic", "lerobot"):
        with django_capture_on_commit_callbacks(execute=True):
            export = client.post(
                f"/api/v1/dataset-view-versions/{version_id}/exports", {"format": format}
            ).json()
        done = client.get(f"/api/v1/exports/{export['id']}/").json()
        assert done["state"] == "done", done
        assert done["num_episodes"] == 3 and done["checksum"]
        response = client.get(done["download_url"])
        assert response.status_code == 200
        assert response["X-Checksum-Sha256"] == done["checksum"]
        payload = b"".join(response.streaming_content)
        if format == "robomimic":
            import io

            with h5py.File(io.BytesIO(payload), "r") as f:
                assert sorted(f["data"]) == ["demo_0", "demo_1", "demo_2"]
        else:
            import io

            with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
                assert any(name.endswith("meta/info.json") for name in tar.getnames())
    assert api(world.b.admin).get(f"/api/v1/exports/{export['id']}/").status_code == 404


def test_export_view_command_writes_a_robomimic_file(world, ready_episodes, tmp_path):
    datasets.create_view(actor=world.a.researcher, team=world.a.team, name="cmd")
    out = StringIO()
    call_command(
        "export_view", "cmd", "--format", "robomimic", "--out", str(tmp_path / "x"), stdout=out
    )
    assert "Exported 3 episodes" in out.getvalue()
    with h5py.File(tmp_path / "x" / "dataset.hdf5", "r") as f:
        assert f["data"].attrs["total"] > 0
    assert DatasetExport.objects.count() == 0  # the command writes files, not export rows


def _image_datasets(f) -> list:
    return [ds for ds in f["data/demo_0/obs"].values() if ds.name.endswith("_image")]


@pytest.mark.slow  # gzip on three episodes' frames: ~13 s
@pytest.mark.parametrize(("images", "compressions"), [("gzip", {"gzip"}), ("none", set())])
def test_a_robomimic_export_holds_images_as_asked(
    api, world, ready_episodes, django_capture_on_commit_callbacks, images, compressions
):
    client = api(world.a.researcher)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="imgs")
    version = view.versions.get()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/dataset-view-versions/{version.pk}/exports",
            {"format": "robomimic", "images": images},
        )
    assert response.status_code == 201, response.json()
    export = DatasetExport.objects.get(pk=response.json()["id"])
    assert (export.state, export.images) == ("done", images), export.error
    with default_storage.open(export.file) as stored, h5py.File(stored, "r") as f:
        assert {ds.compression for ds in _image_datasets(f)} == compressions
        assert len(_image_datasets(f)) == (2 if images != "none" else 0)


def test_an_images_choice_is_refused_for_lerobot_and_when_unknown(api, world, ready_episodes):
    client = api(world.a.researcher)
    version = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="v")
    url = f"/api/v1/dataset-view-versions/{version.versions.get().pk}/exports"
    lerobot = client.post(url, {"format": "lerobot", "images": "gzip"})
    assert lerobot.status_code == 400
    assert "AV1 video" in lerobot.json()["detail"]
    unknown = client.post(url, {"format": "robomimic", "images": "png"})
    assert unknown.status_code == 400 and "images" in unknown.json()["fields"]
    assert not DatasetExport.objects.exists()


def test_export_view_command_can_leave_images_out(world, ready_episodes, tmp_path):
    datasets.create_view(actor=world.a.researcher, team=world.a.team, name="noimg")
    call_command(
        "export_view",
        "noimg",
        "--format",
        "robomimic",
        "--images",
        "none",
        "--out",
        str(tmp_path / "x"),
        stdout=StringIO(),
    )
    with h5py.File(tmp_path / "x" / "dataset.hdf5", "r") as f:
        assert _image_datasets(f) == []


def test_a_failed_export_says_so_without_naming_files_on_the_server(
    api, world, session, monkeypatch
):
    ready_episode_row(session)
    view = datasets.create_view(actor=world.a.researcher, team=world.a.team, name="all")
    export = datasets.start_export(
        actor=world.a.researcher, version=view.versions.get(), format="robomimic"
    )

    def write_fails(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/srv/pg/var/media/episodes/x.h5")

    monkeypatch.setattr(datasets, "write_export", write_fails)
    with pytest.raises(FileNotFoundError):
        datasets.build_export(export_id=export.pk)
    answer = api(world.a.researcher).get(f"/api/v1/exports/{export.pk}/")
    assert answer.json()["state"] == "failed"
    assert "FileNotFoundError" in answer.json()["error"]
    assert "/srv/pg" not in answer.content.decode()
