"""Downloads are named from a slug of the view's name and the export's id, never from the
raw name: ASCII `filename`, RFC 6266 `filename*` for letters ASCII cannot spell, nothing a
header or a file system could misread."""

import re
from urllib.parse import unquote

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client

from teleop import datasets, file_serving
from teleop.models import DatasetExport
from tests.teleop.recordings import ready_episode_row

pytestmark = pytest.mark.django_db

HEADER = re.compile(
    r'^attachment; filename="(?P<ascii>[A-Za-z0-9._-]+)"'
    r"(; filename\*=UTF-8''(?P<utf8>[A-Za-z0-9%._-]+))?$"
)


def _done_export(world, session, name: str) -> DatasetExport:
    episode = ready_episode_row(session)
    view = datasets.create_view(
        actor=world.a.researcher, team=world.a.team, name=name, includes=[str(episode.pk)]
    )
    export = DatasetExport.objects.create(
        view_version=view.versions.get(), format="robomimic", created_by="t"
    )
    key = default_storage.save(f"exports/{export.pk}.hdf5", ContentFile(b"hdf5 bytes"))
    DatasetExport.objects.filter(pk=export.pk).update(state=DatasetExport.State.DONE, file=key)
    export.refresh_from_db()
    return export


@pytest.mark.parametrize(
    "name, ascii_slug, utf8_slug",
    [
        ("Wipe spill successes <i>it</i>", "wipe-spill-successes-it", None),
        ("../../etc/passwd", "etcpasswd", None),
        ('a "quoted"; name\r\nX-Evil: 1', "a-quoted-name-x-evil-1", None),
        ("Été à Zürich", "ete-a-zurich", "été-à-zürich"),
        ("把杯子放好", "", "把杯子放好"),
        ("<>///", "dataset", None),
        ("Cube \\ spill: v2?*", "cube-spill-v2", None),
    ],
)
def test_an_export_downloads_under_a_slug_of_its_view_and_its_id(
    world, session, name, ascii_slug, utf8_slug
):
    export = _done_export(world, session, name)
    client = Client()
    client.force_login(world.a.researcher)
    short = export.pk.hex[:8]
    for url in (f"/exports/{export.pk}/download", f"/api/v1/exports/{export.pk}/download"):
        response = client.get(url)
        assert response.status_code == 200, url
        header = response["Content-Disposition"]
        match = HEADER.match(header)
        assert match, header
        tail = f"v1-{short}-robomimic.hdf5"
        assert match["ascii"] == (f"{ascii_slug}-{tail}" if ascii_slug else tail)
        if utf8_slug is None:
            assert match["utf8"] is None
        else:
            assert unquote(match["utf8"]) == f"{utf8_slug}-{tail}"
        assert "/" not in unquote(header) and "\\" not in header
        assert b"".join(response.streaming_content) == b"hdf5 bytes"


def test_two_exports_of_one_version_download_under_different_names(world, session):
    first = _done_export(world, session, "same")
    second = DatasetExport.objects.create(
        view_version=first.view_version, format="robomimic", created_by="t"
    )
    assert datasets.export_filename(first) != datasets.export_filename(second)


def test_a_long_name_is_cut_and_keeps_the_id_and_suffix(world, session):
    export = _done_export(world, session, "x" * 190)
    name = datasets.export_filename(export)
    assert name == "x" * 60 + f"-v1-{export.pk.hex[:8]}-robomimic.hdf5"
    assert file_serving.content_disposition(name) == f'attachment; filename="{name}"'
