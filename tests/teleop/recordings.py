"""Real episode files for tests, written by our own writer (no binary fixtures)."""

from __future__ import annotations

import functools
import uuid
from pathlib import Path

import numpy as np

from proving_ground.episode.spec import encode_jpeg
from proving_ground.episode.writer import EpisodeWriter
from tests.core.factories import ARM_SPEC


@functools.cache
def distinct_frames(width: int = 640, height: int = 480, count: int = 6) -> tuple[bytes, ...]:
    """A few different JPEG frames (noise over a gradient), encoded once per test run."""
    rng = np.random.default_rng(7)
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    frames = []
    for _ in range(count):
        noise = rng.normal(0, 25, (height, width, 3))
        image = np.clip(gradient + noise, 0, 255).astype(np.uint8)
        frames.append(encode_jpeg(image, quality=80))
    return tuple(frames)


def record_episode(
    path: Path,
    *,
    spec: dict = ARM_SPEC,
    seconds: float = 2.0,
    episode_id: str | None = None,
    robot: str = "robot",
    task_version: str = "task-v1",
    operator: str = "OP-TEST",
    embodiment: str = "arm",
    stages: tuple[tuple[str, float], ...] = (("reach", 0.5), ("grasp", 1.0)),
    frames: tuple[bytes, ...] | None = None,
) -> Path:
    """Record a synthetic episode: joints at the spec's control rate, every camera at its fps
    cycling through `frames` (encoded, of the cameras' size; default `distinct_frames`),
    stage events; returns the final path."""
    hz = spec["control_hz"]
    episode_id = episode_id or str(uuid.uuid4())
    frames = frames or distinct_frames()
    joints = spec["action"]["shape"][0]
    with EpisodeWriter(
        path,
        spec,
        episode_id=episode_id,
        robot=robot,
        task_version=task_version,
        operator=operator,
        embodiment=spec.get("name") or embodiment,
    ) as writer:
        steps = int(seconds * hz)
        for i in range(steps):
            t = i / hz
            q = np.full(joints, np.sin(t), dtype=np.float32)
            writer.add_step(t, {"qpos": q, "qvel": np.cos(q)}, q)
        for cam in spec["cameras"]:
            for j in range(int(seconds * cam["fps"])):
                writer.add_frame(cam["name"], j / cam["fps"], frames[j % len(frames)])
        for stage, t in stages:
            writer.add_event("stage", stage, t)
    return path


def ready_episode_row(session, condition=None):
    """An episode row as processing leaves it, for tests of labels, progress and pages
    (processing itself is tested with real files)."""
    from teleop.models import Episode

    return Episode.objects.create(
        id=uuid.uuid4(),
        session=session,
        team_id=session.team_id,
        robot=session.robot,
        task_version=session.task_version,
        operator=session.operator,
        condition=condition,
        declared_size_bytes=1,
        declared_sha256="0" * 64,
        state=Episode.State.READY,
    )


def stored_upload_bytes(upload) -> bytes:
    """What the server holds of an upload: its stored parts, joined in offset order."""
    from django.core.files.storage import default_storage

    data = b""
    for part in upload.parts.order_by("offset"):
        with default_storage.open(part.key, "rb") as f:
            data += f.read()
    return data


def upload_parts_left(upload) -> list[str]:
    """Keys still stored under an upload's prefix (dropped once processed or refused)."""
    from django.core.files.storage import default_storage

    try:
        return default_storage.listdir(f"uploads/{upload.pk}")[1]
    except FileNotFoundError:
        return []


def checked_episode(session, lifted: str):
    """A ready episode of `checked_session` whose success check `lifted` has status `lifted`
    ("passed", "failed" or "not_evaluable")."""
    episode = ready_episode_row(session)
    episode.check_results = [
        {"check_id": "no-nan", "type": "finite", "status": "passed", "message": "all finite"},
        {"check_id": "lifted", "type": "finite", "status": lifted, "message": f"lift {lifted}"},
    ]
    episode.save(update_fields=["check_results"])
    return episode


def upload_over_api(client, session, data: bytes, capture) -> str:
    """Upload episode bytes into `session` as a robot does: create the episode, send the file
    in one tus PATCH, and run the processing queued on commit (`capture` is pytest-django's
    `django_capture_on_commit_callbacks`). Returns the episode id."""
    import hashlib
    import uuid

    body = {
        "id": str(uuid.uuid4()),
        "session": str(session.pk),
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    url = client.post("/api/v1/episodes/", body).json()["upload_url"].split("testserver")[1]
    with capture(execute=True):
        client.generic(
            "PATCH",
            url,
            data=data,
            content_type="application/offset+octet-stream",
            HTTP_UPLOAD_OFFSET="0",
            HTTP_TUS_RESUMABLE="1.0.0",
        )
    return body["id"]
