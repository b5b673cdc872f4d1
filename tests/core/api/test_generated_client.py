"""A client generated from the OpenAPI schema by a third-party generator (openapi-python-client,
pinned in requirements-dev.txt) works against a live server: the schema is good enough to
build a client on, not merely valid."""

import hashlib
import importlib
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from core.services import operators
from tests.evaluation.factories import make_campaign, make_policy_version

pytestmark = pytest.mark.slow

PACKAGE = "pg_generated_client"
# No post hooks (they would run ruff from PATH on the generated code); the generator knows
# no binary media types but application/octet-stream, so the file downloads (HDF5, tar, zip) and
# the tus chunk upload are generated as that.
GENERATOR_CONFIG = f"""
package_name_override: {PACKAGE}
post_hooks: []
content_type_overrides:
  application/x-hdf5: application/octet-stream
  application/x-tar: application/octet-stream
  application/zip: application/octet-stream
  application/offset+octet-stream: application/octet-stream
"""


def _generator() -> list[str]:
    """The generator's command, from the interpreter running the tests (its venv)."""
    script = Path(sys.executable).with_name("openapi-python-client")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "openapi_python_client"]


@pytest.fixture
def generated_client(live_server, tmp_path, monkeypatch):
    """The client package generated from the schema the live server serves, imported."""
    schema = requests.get(f"{live_server.url}/api/schema/?format=json", timeout=30)
    schema.raise_for_status()
    (tmp_path / "openapi.json").write_bytes(schema.content)
    (tmp_path / "config.yaml").write_text(GENERATOR_CONFIG)
    result = subprocess.run(
        [
            *_generator(),
            "generate",
            "--path",
            str(tmp_path / "openapi.json"),
            "--config",
            str(tmp_path / "config.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "out" / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The generator warns about each part of the schema it could not turn into code.
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    monkeypatch.syspath_prepend(str(tmp_path / "out"))
    importlib.invalidate_caches()
    yield importlib.import_module(PACKAGE)
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
        del sys.modules[name]
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def _api(tag: str, operation: str):
    """A generated operation module: `sync`, `sync_detailed`..."""
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation}")


def test_a_generated_client_works_against_a_live_server(
    transactional_db, live_server, generated_client
):
    from tests.core import factories

    world = factories.build_world()
    team = world.a
    operator = operators.create_operator(actor=team.admin, team=team.team)
    task_version = team.task.versions.get()
    campaign = make_campaign(team, policy_versions=[make_policy_version(team)], blinded=True)

    client = generated_client.AuthenticatedClient(
        base_url=live_server.url, token=team.robot_key, prefix="Api-Key"
    )
    models = importlib.import_module(f"{PACKAGE}.models")

    # Create something: a session, then episodes (ids chosen by the client).
    sessions_create = _api("sessions", "sessions_create")
    session = sessions_create.sync(
        client=client,
        body=models.SessionInRequest(
            robot=team.robot.pk, task_version=task_version.pk, operator=operator.code
        ),
    )
    assert isinstance(session, models.SessionOut), session
    assert session.robot == team.robot.pk and session.status.value == "open"
    episodes_create = _api("episodes", "episodes_create")
    created = []
    for n in range(3):
        data = f"episode {n}".encode()
        answer = episodes_create.sync_detailed(
            client=client,
            body=models.EpisodeInRequest(
                id=uuid.uuid4(),
                session=session.id,
                size_bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            ),
            idempotency_key=f"episode-{n}",
        )
        assert answer.status_code == 201, answer.content
        assert isinstance(answer.parsed, models.EpisodeOut)
        assert answer.parsed.upload_url.startswith(f"{live_server.url}/api/v1/uploads/")
        created.append(answer.parsed.id)

    # List episodes, a page at a time, by cursor.
    episodes_list = _api("episodes", "episodes_list")
    seen, cursor = [], None
    while True:
        page = episodes_list.sync(client=client, session=str(session.id), limit=2, cursor=cursor)
        assert isinstance(page, models.PaginatedEpisodeOutList), page
        seen += [episode.id for episode in page.results]
        if not page.next_:
            break
        cursor = parse_qs(urlsplit(page.next_).query)["cursor"][0]
    assert seen == created[::-1]  # newest first, none twice

    # Retrieve a campaign: the robot is blinded, and gets the blinded shape.
    got = _api("campaigns", "campaigns_retrieve").sync(client=client, id=campaign.pk)
    assert isinstance(got, models.BlindCampaignOut), got
    assert got.id == campaign.pk and got.blinded_view is True and len(got.aliases) == 1

    # List a task's versions: one array, not a page.
    versions = _api("tasks", "tasks_versions_list").sync(client=client, id=team.task.pk)
    assert [v.id for v in versions] == [task_version.pk]
    assert versions[0].criteria is not None

    # A documented error answer, parsed: 404 for another team's private task, 400 with
    # the fields for bad input.
    missing = _api("tasks", "tasks_retrieve").sync_detailed(
        client=client, id=world.b.private_task.pk
    )
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorOut) and missing.parsed.error == "not_found"
    refused = sessions_create.sync_detailed(
        client=client,
        body=models.SessionInRequest(
            robot=team.robot.pk, task_version=uuid.uuid4(), operator=operator.code
        ),
    )
    assert refused.status_code == 400 and isinstance(refused.parsed, models.ErrorOut)
    assert refused.parsed.error == "invalid" and "task_version" in refused.parsed.fields
