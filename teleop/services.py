"""Every write of the recording app: sessions, episodes, uploads, processing, labels.

Rules enforced here, before anything is saved:
- a robot records only on itself; people record as operators or admins of the robot's team;
- an episode is added only to an open session, whose robot's embodiment the task version
  allows (checked when the session opens; the version is locked from then on);
- uploads take chunks one at a time under a short lease, at the current offset only;
- processing is idempotent and runs after the upload's transaction commits.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import random
import time
import uuid
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core import access, job_queue
from core.errors import InvalidInput, NotPermitted
from core.models import Condition, Membership, Operator, Robot, TaskVersion
from core.services import audit, task_versions
from teleop import storage
from teleop.errors import (
    ChecksumMismatch,
    ChunkTooLarge,
    EmbodimentNotAllowed,
    EpisodeIdConflict,
    SessionClosed,
    UploadBusy,
    UploadExpired,
    UploadNotActive,
    UploadOffsetMismatch,
)
from teleop.models import (
    CollectionProtocol,
    Episode,
    Label,
    ProtocolTarget,
    Session,
    Upload,
    UploadPart,
)
from teleop.resumable_sha256 import ResumableSHA256

log = logging.getLogger(__name__)
Role = Membership.Role
READ_PIECE_BYTES = 1024 * 1024


def _may_record_on(actor, robot: Robot) -> bool:
    if access.is_robot(actor):
        return actor.robot.pk == robot.pk
    return access.has_role(actor, robot.team_id, Role.OPERATOR, Role.ADMIN)


def _require_recorder(actor, robot: Robot) -> None:
    if not _may_record_on(actor, robot):
        raise NotPermitted(
            "Only the robot itself, or an operator or admin of its team, may record on this robot."
        )


# --- Sessions -------------------------------------------------------------------------------


def open_session(
    *,
    actor,
    robot: Robot,
    task_version: TaskVersion,
    operator_code: str,
    kind: str = Session.Kind.TELEOP,
    protocol: CollectionProtocol | None = None,
) -> Session:
    """Open a session. Raises NotPermitted, InvalidInput (unknown operator, retired robot,
    protocol for another task), EmbodimentNotAllowed. Locks the task version."""
    _require_recorder(actor, robot)
    if robot.status != Robot.Status.ACTIVE:
        raise InvalidInput(f"Robot '{robot}' is {robot.status}, not active.")
    operator = Operator.objects.filter(
        code=operator_code, team_id=robot.team_id, active=True
    ).first()
    if operator is None:
        raise InvalidInput(
            f"No active operator '{operator_code}' in the robot's team.",
            fields={"operator": ["Unknown operator code."]},
        )
    if not task_version.allowed_embodiments.filter(pk=robot.embodiment_id).exists():
        raise EmbodimentNotAllowed(
            f"Task version {task_version} does not allow embodiment '{robot.embodiment}'."
        )
    if protocol is not None and protocol.task_version_id != task_version.pk:
        raise InvalidInput(
            "The protocol is for another task version.",
            fields={"protocol": ["Protocol and task version differ."]},
        )
    with transaction.atomic():
        session = Session.objects.create(
            team_id=robot.team_id,
            operator=operator,
            robot=robot,
            task_version=task_version,
            protocol=protocol,
            kind=kind,
            opened_by=access.actor_label(actor),
        )
        task_versions.lock_task_version(actor=actor, version=task_version)
        audit.record_audit(actor=actor, action="create", obj=session, after=audit.snapshot(session))
    return session


def close_session(*, actor, session: Session) -> Session:
    """Close a session (idempotent): no new episodes; uploads under way may finish."""
    _require_recorder(actor, session.robot)
    with transaction.atomic():
        session = Session.objects.select_for_update().get(pk=session.pk)
        if session.status == Session.Status.OPEN:
            session.status = Session.Status.CLOSED
            session.closed_at = timezone.now()
            session.save(update_fields=["status", "closed_at"])
            audit.record_audit(
                actor=actor,
                action="update",
                obj=session,
                before={"status": "open"},
                after={"status": "closed"},
            )
    return session


def next_condition(*, session: Session, rng: random.Random | None = None) -> Condition | None:
    """The condition to set up next: drawn at random among the protocol's conditions still
    short of their target, so coverage stays balanced. None without a protocol or when every
    target is met."""
    from teleop.selectors import protocol_progress

    if session.protocol_id is None:
        return None
    short = [row for row in protocol_progress(session.protocol) if row.accepted < row.target]
    if not short:
        return None
    # Weighted by what is missing: the emptiest condition is the likeliest next.
    chosen = (rng or random.SystemRandom()).choices(
        short, weights=[row.target - row.accepted for row in short]
    )[0]
    return Condition.objects.get(pk=chosen.condition_id)


# --- Episodes and uploads -------------------------------------------------------------------


def create_episode(
    *,
    actor,
    episode_id,
    session: Session,
    size_bytes: int,
    sha256: str,
    condition: Condition | None = None,
) -> tuple[Episode, Upload, bool]:
    """Register an episode the client recorded and open its upload.

    Idempotent by the client's id: the same id with the same content returns the existing
    episode (and its active upload, or a new one if none is active). Returns
    (episode, upload, created). Raises NotPermitted, SessionClosed, InvalidInput,
    EpisodeIdConflict (the id exists with other content)."""
    _require_recorder(actor, session.robot)
    sha256 = sha256.lower()
    if size_bytes <= 0 or size_bytes > settings.MAX_EPISODE_BYTES:
        raise InvalidInput(
            f"size_bytes must be between 1 and {settings.MAX_EPISODE_BYTES}.",
            fields={"size_bytes": ["Out of range."]},
        )
    existing = Episode.objects.filter(pk=episode_id).first()
    if existing is not None:
        same = (
            existing.session_id == session.pk
            and existing.declared_sha256 == sha256
            and existing.declared_size_bytes == size_bytes
        )
        if not same:
            raise EpisodeIdConflict(f"Episode {episode_id} exists with other content.")
        return existing, _active_or_new_upload(existing), False
    if session.status != Session.Status.OPEN:
        raise SessionClosed("The session is closed; open a new one.")
    if (
        condition is not None
        and session.protocol_id is not None
        and not (
            ProtocolTarget.objects.filter(
                protocol_id=session.protocol_id, condition=condition
            ).exists()
        )
    ):
        raise InvalidInput(
            "This condition is not part of the session's protocol.",
            fields={"condition": ["Not in the protocol."]},
        )
    with transaction.atomic():
        episode, created = Episode.objects.get_or_create(
            pk=episode_id,
            defaults={
                "session": session,
                "team_id": session.team_id,
                "robot_id": session.robot_id,
                "task_version_id": session.task_version_id,
                "operator_id": session.operator_id,
                "condition": condition,
                "declared_size_bytes": size_bytes,
                "declared_sha256": sha256,
            },
        )
        if not created:  # lost a race with an identical retry
            return create_episode(
                actor=actor,
                episode_id=episode_id,
                session=session,
                size_bytes=size_bytes,
                sha256=sha256,
                condition=condition,
            )
        upload = _new_upload(episode)
        audit.record_audit(actor=actor, action="create", obj=episode, after=audit.snapshot(episode))
    return episode, upload, True


def _new_upload(episode: Episode) -> Upload:
    return Upload.objects.create(
        episode=episode,
        length=episode.declared_size_bytes,
        expires_at=timezone.now() + timedelta(hours=settings.UPLOAD_EXPIRY_HOURS),
    )


def _active_or_new_upload(episode: Episode) -> Upload:
    with transaction.atomic():
        Episode.objects.select_for_update().get(pk=episode.pk)
        upload = episode.uploads.filter(state=Upload.State.ACTIVE).first()
        if upload is not None:
            return upload
        done = episode.uploads.filter(state=Upload.State.COMPLETE).first()
        if done is not None or episode.state != Episode.State.CREATED:
            return done or episode.uploads.first()
        return _new_upload(episode)


def create_upload(*, actor, episode: Episode) -> Upload:
    """tus creation: an upload of the episode's file starting at offset 0 (a tus client that
    creates an upload sends from 0, and resumes with HEAD on the URL it was given).

    The episode's active upload is returned if it has received nothing and no chunk is
    arriving; otherwise it is terminated (its parts dropped) and a new one opened. Raises
    NotPermitted, UploadNotActive (the episode's file was already received)."""
    _require_recorder(actor, episode.robot)
    with transaction.atomic():
        episode = Episode.objects.select_for_update().get(pk=episode.pk)
        if episode.state not in (Episode.State.CREATED, Episode.State.UPLOADING):
            raise UploadNotActive(
                f"The episode's file was already received (the episode is {episode.state})."
            )
        now = timezone.now()
        active = episode.uploads.select_for_update().filter(state=Upload.State.ACTIVE).first()
        if active is not None:
            untouched = (
                active.offset == 0
                and active.expires_at > now
                and (active.lease_expires_at is None or active.lease_expires_at <= now)
            )
            if untouched:
                return active
            active.state = Upload.State.TERMINATED
            active.save(update_fields=["state", "updated_at"])
            replaced = active.pk
            transaction.on_commit(lambda: storage.discard_upload_parts(replaced))
        Episode.objects.filter(pk=episode.pk, state=Episode.State.UPLOADING).update(
            state=Episode.State.CREATED
        )
        return _new_upload(episode)


def _require_uploader(actor, upload: Upload) -> None:
    _require_recorder(actor, upload.episode.robot)


def parse_checksum_header(value: str | None) -> tuple[str, bytes] | None:
    """`Upload-Checksum: <sha1|sha256> <base64>` → (algorithm, digest). tus 1.0 requires a
    server with the checksum extension to take sha1; sha256 is what our client sends.
    Raises InvalidInput otherwise."""
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_DIGEST_BYTES:
        raise InvalidInput("Upload-Checksum must use sha1 or sha256.")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except ValueError as exc:
        raise InvalidInput("Upload-Checksum is not valid base64.") from exc
    if len(digest) != CHECKSUM_DIGEST_BYTES[algorithm]:
        raise InvalidInput(f"Upload-Checksum is not a {algorithm} digest.")
    return algorithm, digest


CHECKSUM_DIGEST_BYTES = {"sha1": 20, "sha256": 32}


def _lease_seconds() -> int:
    return settings.UPLOAD_CHUNK_LEASE_S


def _take_chunk_lease(*, actor, upload_id, offset: int, length: int) -> tuple[Upload, uuid.UUID]:
    """Check the chunk against the upload and lease the upload to this request.

    One short UPDATE, committed at once: no transaction or row lock stays open while the
    chunk's bytes arrive. A chunk racing for the same upload finds the lease taken (or the
    offset moved) and gets UploadBusy / UploadOffsetMismatch."""
    upload = Upload.objects.select_related("episode", "episode__robot").get(pk=upload_id)
    _require_uploader(actor, upload)
    if upload.state != Upload.State.ACTIVE:
        raise UploadNotActive(f"The upload is {upload.state}.")
    now = timezone.now()
    if upload.expires_at <= now:
        raise UploadExpired("The upload expired; create the episode's upload again.")
    if offset + length > upload.length:
        raise ChunkTooLarge("The chunk goes past the declared Upload-Length.")
    token = uuid.uuid4()
    taken = (
        Upload.objects.filter(pk=upload_id, state=Upload.State.ACTIVE, offset=offset)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now))
        .update(lease_token=token, lease_expires_at=now + timedelta(seconds=_lease_seconds()))
    )
    if taken:
        upload.refresh_from_db()  # the hash state as of this offset
        return upload, token
    current = Upload.objects.get(pk=upload_id)
    if current.state != Upload.State.ACTIVE:
        raise UploadNotActive(f"The upload is {current.state}.")
    if current.offset != offset:
        raise UploadOffsetMismatch(
            f"Upload-Offset {offset} does not match the server's offset {current.offset}."
        )
    wait_s = max(1, math.ceil((current.lease_expires_at - now).total_seconds()))
    raise UploadBusy("Another chunk of this upload is being received; retry.", retry_after_s=wait_s)


def _extend_chunk_lease(upload_id, token) -> bool:
    """Keep the lease while bytes keep arriving. False when it was lost (it expired and
    another request took the upload, or the upload was terminated)."""
    until = timezone.now() + timedelta(seconds=_lease_seconds())
    return bool(
        Upload.objects.filter(pk=upload_id, lease_token=token, state=Upload.State.ACTIVE).update(
            lease_expires_at=until
        )
    )


def _release_chunk_lease(upload_id, token) -> None:
    Upload.objects.filter(pk=upload_id, lease_token=token).update(
        lease_token=None, lease_expires_at=None
    )


def receive_chunk(
    *,
    actor,
    upload_id,
    offset: int,
    length: int,
    stream: BinaryIO,
    checksum: tuple[str, bytes] | None = None,
) -> Upload:
    """Receive one chunk of `length` bytes (any size) read from `stream` at `offset`.

    Any web process takes any chunk: the bytes go to a scratch file on this machine (1 MiB
    pieces, never the chunk in memory) and into the default storage as `UploadPart`s of at
    most `storage.UPLOAD_PART_MAX_BYTES`, each stored as it fills, so neither memory nor the
    scratch file grows with the chunk; the whole file's SHA-256 state advances as the bytes
    pass. Without a checksum each full part is recorded (the offset moved) as soon as it is
    stored, so a request that dies later (a web process killed by its timeout) loses at most
    one part; with one, the parts are recorded once the whole chunk has matched it. If the
    client disconnects mid-chunk, what arrived is kept (unless a checksum was sent, which
    cannot be verified on part of a chunk), so it can resume from the new offset. On the
    last byte the upload completes without reading the file again (see `_complete_upload`).
    Raises NotPermitted, UploadBusy, UploadOffsetMismatch, UploadNotActive, UploadExpired,
    ChunkTooLarge (past the upload's length), ChecksumMismatch, InvalidInput."""
    upload, token = _take_chunk_lease(
        actor=actor, upload_id=upload_id, offset=offset, length=length
    )
    lease = _ChunkLease(upload.pk, token)
    parts: list[tuple[int, int, str]] = []  # (offset, size, key) stored, not yet recorded
    try:
        whole = ResumableSHA256.from_state(upload.sha256_state)
        chunk_hash = hashlib.new(checksum[0]) if checksum is not None else None
        received = 0
        while received < length:
            wanted = min(storage.UPLOAD_PART_MAX_BYTES, length - received)
            with storage.chunk_scratch_file() as scratch:
                got = _receive_into(scratch, stream, wanted, whole, chunk_hash, lease)
                if got:
                    scratch.seek(0)
                    key = storage.save_upload_part(upload.pk, offset + received, scratch)
                    parts.append((offset + received, got, key))
            received += got
            if checksum is None and got == wanted and received < length:
                upload = _record_chunk(upload, token, parts[0][0], parts, whole, lease=lease)
                parts = []
            else:
                lease.keep()
            if got < wanted:
                break  # the client went away; keep what arrived
        if checksum is not None and (received < length or chunk_hash.digest() != checksum[1]):
            if received < length:
                raise InvalidInput("The chunk ended early; nothing of it was kept.")
            raise ChecksumMismatch(f"The chunk's {checksum[0]} does not match Upload-Checksum.")
        if not parts:
            return upload
        return _record_chunk(upload, token, parts[0][0], parts, whole)
    except BaseException:
        for _, _, key in parts:
            storage.delete_upload_part(key)
        raise
    finally:
        _release_chunk_lease(upload.pk, token)


class _ChunkLease:
    """Keeps a chunk's lease on its upload while the chunk's bytes arrive and are stored."""

    def __init__(self, upload_id, token):
        self.upload_id, self.token = upload_id, token
        self.renew_every_s = max(1, _lease_seconds() // 3)
        self.renewed_at = time.monotonic()

    def keep(self) -> None:
        """Renew the lease when a third of it has passed; UploadBusy if it was lost."""
        if time.monotonic() - self.renewed_at <= self.renew_every_s:
            return
        if not _extend_chunk_lease(self.upload_id, self.token):
            raise UploadBusy("This chunk took too long and lost its turn; retry it.")
        self.renewed_at = time.monotonic()

    def until(self):
        """A renewed lease's end (and it counts as renewed now)."""
        self.renewed_at = time.monotonic()
        return timezone.now() + timedelta(seconds=_lease_seconds())


def _receive_into(scratch, stream, length: int, whole, chunk_hash, lease: _ChunkLease) -> int:
    """Copy up to `length` bytes from `stream` to `scratch`, hashing them; returns how many
    arrived (fewer when the client went away)."""
    received = 0
    while received < length:
        piece = stream.read(min(READ_PIECE_BYTES, length - received))
        if not piece:
            break
        scratch.write(piece)
        whole.update(piece)
        if chunk_hash is not None:
            chunk_hash.update(piece)
        received += len(piece)
        lease.keep()
    return received


def _record_chunk(
    upload: Upload,
    token,
    offset: int,
    parts: list[tuple[int, int, str]],
    whole,
    *,
    lease: _ChunkLease | None = None,
) -> Upload:
    """Advance the offset and hash state past stored parts (from `offset`), in one short
    transaction, if this request still holds the lease; then complete the upload on its
    last byte. The lease is released, or renewed when `lease` is given (more parts of the
    chunk are coming)."""
    received = sum(size for _, size, _ in parts)
    with transaction.atomic():
        moved = Upload.objects.filter(
            pk=upload.pk, lease_token=token, state=Upload.State.ACTIVE, offset=offset
        ).update(
            offset=offset + received,
            sha256_state=whole.state(),
            lease_token=token if lease is not None else None,
            lease_expires_at=lease.until() if lease is not None else None,
            updated_at=timezone.now(),
        )
        if not moved:
            raise UploadBusy("This chunk lost its turn (it took too long, or the upload ended).")
        UploadPart.objects.bulk_create(
            UploadPart(upload=upload, offset=at, size_bytes=size, key=key)
            for at, size, key in parts
        )
        Episode.objects.filter(pk=upload.episode_id, state=Episode.State.CREATED).update(
            state=Episode.State.UPLOADING
        )
        upload.refresh_from_db()
        if upload.offset == upload.length:
            _complete_upload(upload, whole.hexdigest())
    return upload


def _complete_upload(upload: Upload, actual_sha256: str) -> None:
    """Inside the last chunk's transaction: compare the whole file's SHA-256 (carried from
    chunk to chunk) with the declared one; queue processing after commit, or reject the
    episode and drop the parts."""
    episode = Episode.objects.select_for_update().get(pk=upload.episode_id)
    upload.state = Upload.State.COMPLETE
    upload.completed_at = timezone.now()
    upload.save(update_fields=["state", "completed_at", "updated_at"])
    if actual_sha256 != episode.declared_sha256:
        episode.state = Episode.State.REJECTED
        episode.rejection_code = "checksum_mismatch"
        episode.validation_report = {
            "ok": False,
            "problems": [
                {
                    "code": "checksum_mismatch",
                    "severity": "error",
                    "path": "/",
                    "message": f"The file's SHA-256 is {actual_sha256}, not the declared "
                    f"{episode.declared_sha256}.",
                }
            ],
        }
        episode.save(update_fields=["state", "rejection_code", "validation_report", "updated_at"])
        upload_id = upload.pk
        transaction.on_commit(lambda: storage.discard_upload_parts(upload_id))
        return
    episode.state = Episode.State.PROCESSING
    episode.sha256 = actual_sha256
    episode.size_bytes = upload.length
    episode.save(update_fields=["state", "sha256", "size_bytes", "updated_at"])
    enqueue_processing(episode.pk)


def enqueue_processing(episode_id) -> None:
    """Queue the processing job once the current transaction commits."""
    job_queue.enqueue_on_commit("teleop.tasks.process_episode_job", str(episode_id))


def terminate_upload(*, actor, upload_id) -> None:
    """tus termination: drop the bytes; the episode goes back to `created`."""
    with transaction.atomic():
        # A chunk still arriving loses its lease with the state; its part is then dropped.
        upload = (
            Upload.objects.select_for_update(of=("self",))
            .select_related("episode", "episode__robot")
            .get(pk=upload_id)
        )
        _require_uploader(actor, upload)
        if upload.state != Upload.State.ACTIVE:
            raise UploadNotActive(f"The upload is {upload.state}.")
        upload.state = Upload.State.TERMINATED
        upload.save(update_fields=["state", "updated_at"])
        Episode.objects.filter(pk=upload.episode_id, state=Episode.State.UPLOADING).update(
            state=Episode.State.CREATED
        )
        upload_pk = upload.pk
        transaction.on_commit(lambda: storage.discard_upload_parts(upload_pk))


# --- Labels and discards --------------------------------------------------------------------


def label_episode(
    *,
    actor,
    episode: Episode,
    outcome: str,
    stages_reached: list[str] | None = None,
    failure_codes: list[str] | None = None,
    notes: str = "",
) -> Label:
    """Label an episode; the current label, if any, is superseded (history kept). Stages and
    failure codes must be those of the task version's criteria. Raises NotPermitted,
    InvalidInput."""

    if access.is_robot(actor) or not access.has_role(
        actor, episode.team_id, Role.OPERATOR, Role.ADMIN, Role.RESEARCHER
    ):
        raise NotPermitted("Only people of the episode's team label episodes.")
    if outcome not in Label.Outcome.values:
        raise InvalidInput(f"Unknown outcome '{outcome}'.", fields={"outcome": ["Unknown."]})
    stages_reached, failure_codes, score = task_versions.validate_judgement(
        criteria_spec=episode.task_version.criteria,
        stages_reached=stages_reached,
        failure_codes=failure_codes,
    )
    with transaction.atomic():
        Episode.objects.select_for_update().get(pk=episode.pk)
        now = timezone.now()
        Label.objects.filter(episode=episode, superseded_at=None).update(superseded_at=now)
        label = Label.objects.create(
            episode=episode,
            outcome=outcome,
            stages_reached=stages_reached,
            stage_score=score,
            failure_codes=failure_codes,
            notes=notes,
            labeler=actor,
            labeler_label=access.actor_label(actor),
        )
        audit.record_audit(
            actor=actor,
            action="create",
            obj=label,
            team=episode.team,
            after=audit.snapshot(label),
        )
        enqueue_recording(episode.pk)  # the timeline shows the current label
    return label


def discard_episode(*, actor, episode: Episode, reason: str) -> Episode:
    """Tombstone an episode with a reason; the row and the file stay. Raises NotPermitted,
    InvalidInput (no reason)."""
    if not reason.strip():
        raise InvalidInput("Say why the episode is discarded.", fields={"reason": ["Required."]})
    if not _may_record_on(actor, episode.robot) or access.is_robot(actor):
        raise NotPermitted("Only an operator or admin of the team discards episodes.")
    with transaction.atomic():
        episode = Episode.objects.select_for_update().get(pk=episode.pk)
        if episode.discarded_at is None:
            episode.discarded_at = timezone.now()
            episode.discard_reason = reason.strip()
            episode.discarded_by = access.actor_label(actor)
            episode.save(
                update_fields=["discarded_at", "discard_reason", "discarded_by", "updated_at"]
            )
            audit.record_audit(
                actor=actor,
                action="update",
                obj=episode,
                after={"discarded": True, "reason": reason.strip()},
            )
    return episode


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


# --- Collection protocols -------------------------------------------------------------------


def create_protocol(
    *,
    actor,
    team,
    name: str,
    task_version: TaskVersion,
    targets: list[tuple[Condition, int]],
    instructions: str = "",
    min_control_hz: float | None = None,
    min_duration_s: float | None = None,
    max_duration_s: float | None = None,
    required_cameras: list[str] | None = None,
    visibility: str = "private",
) -> CollectionProtocol:
    """A protocol with its per-condition targets. Team admins only; locks the task version.
    Raises NotPermitted, InvalidInput."""
    if not access.can_manage(actor, team.pk):
        raise NotPermitted("Only an admin of the team defines collection protocols.")
    if not targets:
        raise InvalidInput(
            "A protocol needs at least one condition target.", fields={"targets": ["At least one."]}
        )
    if len({condition.pk for condition, _ in targets}) != len(targets):
        raise InvalidInput("Each condition may appear once.", fields={"targets": ["Repeated."]})
    if min_duration_s and max_duration_s and min_duration_s > max_duration_s:
        raise InvalidInput("min_duration_s is above max_duration_s.")
    with transaction.atomic():
        protocol = CollectionProtocol.objects.create(
            team=team,
            name=name,
            task_version=task_version,
            instructions=instructions,
            min_control_hz=min_control_hz,
            min_duration_s=min_duration_s,
            max_duration_s=max_duration_s,
            required_cameras=list(required_cameras or []),
            visibility=visibility,
        )
        ProtocolTarget.objects.bulk_create(
            ProtocolTarget(protocol=protocol, condition=c, target_count=n) for c, n in targets
        )
        task_versions.lock_task_version(actor=actor, version=task_version)
        audit.record_audit(
            actor=actor, action="create", obj=protocol, after=audit.snapshot(protocol)
        )
    return protocol


# --- Rerun recordings -----------------------------------------------------------------------


def recording_key(episode: Episode) -> str:
    return f"recordings/{episode.pk}.rrd"


def build_episode_recording(*, episode_id) -> Episode:
    """Build (or rebuild) a ready episode's `.rrd` from its HDF5 file, with its current label
    and quality flags on the timeline; record the Rerun version, size and build time.
    Idempotent: the recording is replaced as a whole."""
    import tempfile

    from django.core.files import File
    from django.core.files.storage import default_storage

    from proving_ground import replay as rerun_export

    episode = Episode.objects.get(pk=episode_id)
    if episode.state != Episode.State.READY or not episode.file:
        return episode
    labels = [
        {
            "outcome": label.outcome,
            "stages_reached": label.stages_reached,
            "failure_codes": label.failure_codes,
            "notes": label.notes,
            "labeler": label.labeler_label,
            "created_at": label.created_at.isoformat(),
        }
        for label in Label.objects.filter(episode=episode, superseded_at=None)
    ]
    with tempfile.TemporaryDirectory(prefix="pg-rrd-") as tmp:
        out = Path(tmp) / "episode.rrd"
        with storage.local_episode_file(episode.file) as path:
            # Not fsynced: the file is copied into storage right away (that copy is durable).
            stats = rerun_export.build_recording(
                path, out, labels=labels, quality_flags=episode.quality_flags, durable=False
            )
        key = recording_key(episode)
        if default_storage.exists(key):
            default_storage.delete(key)
        with open(out, "rb") as f:
            stored = default_storage.save(key, File(f))
    Episode.objects.filter(pk=episode.pk).update(
        rerun_file=stored,
        rerun_version=stats.rerun_version,
        rerun_size_bytes=stats.size_bytes,
        rerun_build_s=stats.seconds,
    )
    episode.refresh_from_db()
    return episode


def enqueue_recording(episode_id) -> None:
    job_queue.enqueue_on_commit("teleop.tasks.build_recording_job", str(episode_id))
