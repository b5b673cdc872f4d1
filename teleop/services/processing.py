"""Processing an uploaded episode: validation, checks, measurements, the protocol's gates."""

from __future__ import annotations

import logging
from contextlib import nullcontext

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from teleop import storage
from teleop.models import CollectionProtocol, Episode, Upload
from teleop.services.recordings import build_episode_recording

log = logging.getLogger(__name__)


# --- Processing -----------------------------------------------------------------------------


def process_episode(*, episode_id) -> Episode:
    """Validate an uploaded episode in a child process, measure it, run the task version's
    automatic checks, and store the file under its content address; or reject it and keep
    no file. Idempotent: an episode that is not `processing` is left as it is."""
    from proving_ground.checks import evaluate_episode_checks
    from proving_ground.episode.validate import validate_isolated

    with transaction.atomic():
        episode = (
            Episode.objects.select_for_update(of=("self",))
            .select_related("robot__embodiment", "task_version", "session__protocol")
            .get(pk=episode_id)
        )
        if episode.state != Episode.State.PROCESSING:
            return episode
        episode.processing_attempts += 1
        episode.processing_started_at = timezone.now()
        episode.save(update_fields=["processing_attempts", "processing_started_at", "updated_at"])
    upload = episode.uploads.filter(state=Upload.State.COMPLETE).first()
    parts = list(upload.parts.all()) if upload is not None else []
    if episode.file:  # a re-run after the file was stored
        source = storage.local_episode_file(episode.file)
    elif parts:
        source = storage.joined_upload_parts(parts, length=upload.length)
    elif upload is not None and (legacy := storage.legacy_staging_path(upload.pk)) is not None:
        source = nullcontext(legacy)  # completed before this release: checked then
    else:
        return _reject(episode, "file_missing", "The uploaded file is gone; upload it again.")

    try:
        with source as joined:
            path, sha256 = joined if isinstance(joined, tuple) else (joined, episode.sha256)
            if sha256 != episode.sha256:
                episode = _reject(
                    episode,
                    "file_missing",
                    "The stored parts of the upload do not add up to the uploaded file; "
                    "upload it again.",
                )
                storage.discard_upload_parts(upload.pk)
                return episode
            report = validate_isolated(
                path,
                # With its name, so a file recorded for another embodiment is refused.
                embodiment_spec={
                    **episode.robot.embodiment.spec,
                    "name": episode.robot.embodiment.name,
                },
                memory_mb=settings.VALIDATOR_MEMORY_MB,
                timeout_s=settings.VALIDATOR_TIMEOUT_S,
            )
            if not report.ok:
                errors = [p for p in report.problems if p.severity == "error"]
                episode = _reject(
                    episode, errors[0].code if errors else "invalid", report=report.to_dict()
                )
                if upload is not None:
                    storage.discard_upload_parts(upload.pk)
                return episode
            results = evaluate_episode_checks(
                path, episode.task_version.criteria, nominal_hz=episode.robot.embodiment.control_hz
            )
            key = episode.file or storage.store_episode_file(path, episode.sha256, move=True)
            # Stored before the row says so: a worker killed here re-runs from the file.
            Episode.objects.filter(pk=episode.pk).update(file=key)
    except storage.UploadPartsMissing as exc:
        return _reject(episode, "file_missing", f"{exc} Upload the file again.")

    flags = sorted(
        {p.code for p in report.problems if p.severity == "warning"}
        | set(_protocol_gate_flags(episode.session.protocol, report))
        | {f"check_failed:{r['check_id']}" for r in results if r["status"] == "failed"}
    )
    with transaction.atomic():
        Episode.objects.filter(pk=episode.pk).update(
            state=Episode.State.READY,
            file=key,
            num_steps=report.num_steps,
            duration_s=report.duration_s,
            measured_hz=report.measured_hz,
            camera_frame_counts=report.frame_counts,
            truncated=report.truncated,
            validation_report=report.to_dict(),
            quality_flags=flags,
            check_results=results,
            processed_at=timezone.now(),
            updated_at=timezone.now(),
        )
    if upload is not None:
        storage.discard_upload_parts(upload.pk)
    try:
        episode = build_episode_recording(episode_id=episode.pk)
    except Exception:  # the episode stays ready; the viewer shows that replay is missing
        log.exception("building the Rerun recording of episode %s failed", episode.pk)
        Episode.objects.filter(pk=episode.pk).update(
            quality_flags=sorted({*flags, "replay_unavailable"})
        )
    episode.refresh_from_db()
    return episode


def _reject(episode: Episode, code: str, message: str = "", *, report=None) -> Episode:
    report = report or {
        "ok": False,
        "problems": [{"code": code, "severity": "error", "path": "/", "message": message}],
    }
    Episode.objects.filter(pk=episode.pk).update(
        state=Episode.State.REJECTED,
        rejection_code=code,
        validation_report=report,
        processed_at=timezone.now(),
        updated_at=timezone.now(),
    )
    episode.refresh_from_db()
    log.info("episode %s rejected: %s", episode.pk, code)
    return episode


def _protocol_gate_flags(protocol: CollectionProtocol | None, report) -> list[str]:
    if protocol is None:
        return []
    flags = []
    if protocol.min_control_hz and (report.measured_hz or 0) < protocol.min_control_hz:
        flags.append("below_protocol_control_rate")
    if protocol.min_duration_s and (report.duration_s or 0) < protocol.min_duration_s:
        flags.append("shorter_than_protocol")
    if protocol.max_duration_s and (report.duration_s or 0) > protocol.max_duration_s:
        flags.append("longer_than_protocol")
    missing = set(protocol.required_cameras) - set(report.frame_counts or {})
    if missing:
        flags.append("missing_required_camera")
    return flags
